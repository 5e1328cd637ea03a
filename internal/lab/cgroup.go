package lab

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Each host runs in a control group of its own, made by the lab before it
// starts the host's systemd-nspawn. Started with --keep-unit and
// --register=no, nspawn puts the container in a "payload" group under the
// group it was started in; the container's systemd takes that group as
// the root of its own tree (through a cgroup namespace) and makes its
// units' groups in it. Hosts started from one group would share that
// tree: the groups of a unit on one host would hold the processes of the
// same unit on every other host, which read as PID 0 from the first host's
// PID namespace, so its systemd could not kill the group (EIO) and a stop
// would leave processes behind. Under its own group a host's systemd owns
// its tree, as on a machine of its own.

// cgroupHierarchies returns where this machine mounts the hierarchies in
// which systemd, and so nspawn, tracks processes: the cgroup v2 hierarchy
// and, on a legacy or hybrid layout, the named v1 hierarchy "systemd".
func cgroupHierarchies() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out, err := parseCgroupHierarchies(f)
	if err == nil && len(out) == 0 {
		err = errors.New("no cgroup hierarchy of systemd is mounted (cgroup2, or cgroup with name=systemd)")
	}
	return out, err
}

// parseCgroupHierarchies reads a mountinfo file: the mount point of the
// named v1 hierarchy "systemd", then that of cgroup2, each if mounted.
func parseCgroupHierarchies(r io.Reader) ([]string, error) {
	var v1, v2 string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		a, b := strings.Fields(pre), strings.Fields(post)
		// A mount of a group below the hierarchy's root is not where
		// groups of the whole machine can be made.
		if !ok || len(a) < 5 || len(b) < 3 || a[3] != "/" {
			continue
		}
		switch {
		case b[0] == "cgroup2" && v2 == "":
			v2 = a[4]
		case b[0] == "cgroup" && v1 == "" && hasOption(b[2], "name=systemd"):
			v1 = a[4]
		}
	}
	var out []string
	for _, m := range []string{v1, v2} {
		if m != "" {
			out = append(out, m)
		}
	}
	return out, sc.Err()
}

func hasOption(opts, opt string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

// cgroupName is the name of the lab's group in each hierarchy, one per
// lab directory.
func (l *Lab) cgroupName() string {
	dir, err := filepath.Abs(l.Dir)
	if err != nil {
		dir = filepath.Clean(l.Dir)
	}
	sum := sha256.Sum256([]byte(dir))
	return "runbook-lab-" + hex.EncodeToString(sum[:4])
}

// Cgroups returns the lab's control groups that exist on this machine, one
// per hierarchy; each holds a group per host.
func (l *Lab) Cgroups() []string {
	hier, _ := cgroupHierarchies()
	var out []string
	for _, m := range hier {
		p := filepath.Join(m, l.cgroupName())
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// hostCgroups makes the host's empty group in every hierarchy, removing
// what an earlier boot of the host left there, and returns their paths.
func (l *Lab) hostCgroups(name string) ([]string, error) {
	hier, err := cgroupHierarchies()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range hier {
		p := filepath.Join(m, l.cgroupName(), name)
		if err := removeCgroup(p, 5*time.Second); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, fmt.Errorf("control group of %s: %w", name, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// cgroupProcs returns the processes in a group and every group below it.
func cgroupProcs(dir string) []int {
	var out []int
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				out = append(out, pid)
			}
		}
		return nil
	})
	return out
}

// removeCgroup removes a group and every group below it, deepest first. A
// group whose last processes are still exiting cannot be removed yet
// (EBUSY), nor one that something else is changing; it is tried again until
// the limit. It returns nil only when the group is gone.
func removeCgroup(dir string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		err := rmdirTree(dir)
		if _, serr := os.Lstat(dir); errors.Is(serr, fs.ErrNotExist) {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("remove control group %s: it is still there", dir)
		}
		if time.Now().After(deadline) {
			if procs := cgroupProcs(dir); len(procs) > 0 {
				err = fmt.Errorf("%w (processes in it: %v)", err, procs)
			}
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rmdirTree removes the directories under dir and dir itself, deepest
// first; a group's files go with its directory.
func rmdirTree(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove control group %s: %w", dirs[i], err)
		}
	}
	return nil
}
