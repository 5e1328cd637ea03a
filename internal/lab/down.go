package lab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Down stops every host and removes every process, mount, link, control
// group and file the lab made, including those of a lab whose state was
// lost.
func (l *Lab) Down() error {
	var errs []error
	st, err := l.Load()
	if err != nil {
		errs = append(errs, err)
		st = &State{}
	}
	pids := map[int]bool{}
	for _, h := range st.Hosts {
		if alive(h.PID) {
			pids[h.PID] = true
		}
	}
	// nspawn processes of this lab that the state does not know (a killed
	// up): found by their -D argument under the lab directory; and every
	// process whose root is inside the lab, the hosts' inits first: killing
	// a PID namespace's init kills everything in it, which killing nspawn
	// alone does not.
	for _, pid := range l.strayNspawns() {
		pids[pid] = true
	}
	for _, pid := range l.rootedInLab() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		pids[pid] = true
	}
	// Whatever else runs in the lab's control groups: they hold every
	// process the hosts' nspawns started.
	cgroups := l.Cgroups()
	for _, g := range cgroups {
		for _, pid := range cgroupProcs(g) {
			pids[pid] = true
		}
	}
	for pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for pid := range pids {
		for alive(pid) && !isZombie(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, m := range l.labMounts() {
		if err := syscall.Unmount(m, 0); err != nil {
			// Busy: detach now, the kernel frees it when the last user goes.
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
				errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
			}
		}
	}
	for _, g := range cgroups {
		if err := removeCgroup(g, 10*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	// Loop devices of disks no host mounted; a mounted one is released
	// with its host's mounts (autoclear).
	for _, dev := range l.labLoops() {
		_ = run("losetup", "--detach", dev)
	}
	for _, link := range labLinks() {
		// The kernel removes a host's veth when its namespace ends: one
		// that is gone by now is what was wanted.
		if err := run("ip", "link", "del", link); err != nil && linkExists(link) {
			errs = append(errs, err)
		}
	}
	if len(l.labMounts()) == 0 {
		if err := os.RemoveAll(l.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// rootedInLab returns the processes that run on the lab's hosts, seen from
// this machine: those whose root mount is a lab overlay. (Their
// /proc/PID/root reads "/" from here, since it is the root of their own
// mount namespace.)
func (l *Lab) rootedInLab() []int {
	entries, _ := os.ReadDir("/proc")
	marker := "upperdir=" + filepath.Join(l.Dir, "hosts") + "/"
	self, _ := os.Readlink("/proc/self/ns/mnt")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ns, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns/mnt"))
		if err != nil || ns == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "mountinfo"))
		if err != nil {
			continue
		}
		first, _, _ := strings.Cut(string(b), "\n")
		if f := strings.Fields(first); len(f) > 4 && f[4] == "/" && strings.Contains(first, marker) {
			out = append(out, pid)
		}
	}
	return out
}

func (l *Lab) strayNspawns() []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	prefix := filepath.Join(l.Dir, "hosts") + "/"
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "systemd-nspawn" {
			continue
		}
		for i, a := range args {
			if a == "-D" && i+1 < len(args) && strings.HasPrefix(args[i+1], prefix) {
				out = append(out, pid)
			}
		}
	}
	return out
}

// labLinks returns the lab's bridge and the bridge sides of its hosts.
func labLinks() []string {
	ifs, _ := net.Interfaces()
	var out []string
	for _, i := range ifs {
		if i.Name == Bridge {
			out = append(out, i.Name)
		}
	}
	// veths attached to the bridge go with it; vb-* left unattached are
	// removed by name only when their master is the lab bridge or gone.
	b, _ := exec.Command("ip", "-o", "link", "show", "master", Bridge).Output()
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 {
			name := strings.TrimSuffix(f[1], ":")
			if i := strings.IndexByte(name, '@'); i > 0 {
				name = name[:i]
			}
			out = append([]string{name}, out...)
		}
	}
	return out
}

// linkExists reports whether a network link of that name is there.
func linkExists(name string) bool {
	return exec.Command("ip", "link", "show", "dev", name).Run() == nil
}
