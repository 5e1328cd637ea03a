// Package lab boots throwaway Linux hosts on this machine for rehearsals
// and tests: each a systemd-nspawn container booting a copy-on-write
// overlay of the machine's own root, with a real systemd, OpenSSH and
// PostgreSQL 15, its own address on a bridge, its own host key.
package lab

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The lab's network: a bridge of its own and addresses in a range it
// creates itself.
const (
	Bridge     = "rblab0"
	Subnet     = "10.231.0"
	Gateway    = Subnet + ".1"
	DefaultDir = "/var/lib/runbook-lab"
)

// Lab is a set of hosts under one state directory.
type Lab struct {
	Dir string
	Log io.Writer
}

// Host is one lab host.
type Host struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// PID is the systemd-nspawn process; 0 when the host is not running.
	PID int `json:"pid"`
	// Layout is how PostgreSQL is laid out (LayoutDebian, LayoutRHEL,
	// LayoutPGDG); empty is Debian's.
	Layout string `json:"layout,omitempty"`
}

// State is what the lab records of itself, so that down, status and a
// later up know what exists.
type State struct {
	Hosts []*Host `json:"hosts"`
}

func (l *Lab) logf(format string, args ...any) {
	if l.Log != nil {
		fmt.Fprintf(l.Log, format+"\n", args...)
	}
}

func (l *Lab) statePath() string          { return filepath.Join(l.Dir, "state.json") }
func (l *Lab) hostDir(name string) string { return filepath.Join(l.Dir, "hosts", name) }
func (l *Lab) root(name string) string    { return filepath.Join(l.hostDir(name), "root") }

// KeyFile is the private key the hosts accept for root.
func (l *Lab) KeyFile() string { return filepath.Join(l.Dir, "id_ed25519") }

// KnownHosts holds the hosts' keys.
func (l *Lab) KnownHosts() string { return filepath.Join(l.Dir, "known_hosts") }

// InventoryPath is where up writes the inventory unless told otherwise.
func (l *Lab) InventoryPath() string { return filepath.Join(l.Dir, "inventory.yaml") }

// Load reads the lab's state; a missing state is an empty lab.
func (l *Lab) Load() (*State, error) {
	b, err := os.ReadFile(l.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return &State{}, nil
	}
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("lab state %s: %w", l.statePath(), err)
	}
	return &st, nil
}

func (l *Lab) save(st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := l.statePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, l.statePath())
}

// Host returns the host with the given name.
func (st *State) Host(name string) (*Host, error) {
	var names []string
	for _, h := range st.Hosts {
		if h.Name == name {
			return h, nil
		}
		names = append(names, h.Name)
	}
	return nil, fmt.Errorf("no lab host %q (hosts: %s)", name, strings.Join(names, ", "))
}

// Requirement is something the lab needs from this machine.
type Requirement struct {
	What, Fix string
	OK        bool
}

// Check lists what the lab needs and whether this machine has it.
func Check() []Requirement {
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	fsHas := func(fs string) bool {
		b, _ := os.ReadFile("/proc/filesystems")
		return strings.Contains(string(b), "\t"+fs+"\n")
	}
	_, nspawn := exec.LookPath("systemd-nspawn")
	return []Requirement{
		{"running as root", "run it with sudo", os.Geteuid() == 0},
		{"systemd-nspawn", "apt-get install -y systemd-container", nspawn == nil},
		{"overlayfs", "modprobe overlay", fsHas("overlay")},
		{"PostgreSQL 15", "apt-get install -y postgresql-15", exists("/usr/lib/postgresql/15/bin/postgres") && exists("/etc/postgresql/15/main/postgresql.conf")},
		{"OpenSSH server", "apt-get install -y openssh-server", exists("/usr/sbin/sshd")},
		{"iproute2 and util-linux (ip, nsenter)", "apt-get install -y iproute2 util-linux", lookPath("ip") && lookPath("nsenter")},
	}
}

func lookPath(p string) bool { _, err := exec.LookPath(p); return err == nil }

// MissingRequirements returns an error naming every missing requirement
// with the command that installs it.
func MissingRequirements() error {
	var missing []string
	for _, r := range Check() {
		if !r.OK {
			missing = append(missing, fmt.Sprintf("%s (%s)", r.What, r.Fix))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the lab needs: %s", strings.Join(missing, "; "))
	}
	return nil
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// leader returns the PID of the container's init: the child of the
// systemd-nspawn process.
func leader(nspawnPID int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", nspawnPID, nspawnPID))
	if err != nil {
		return 0, err
	}
	// While it starts, nspawn has a short-lived "outer" child besides the
	// container's init: the init is the child in a network namespace of its
	// own (every lab host has a private network).
	own, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", nspawnPID))
	if err != nil {
		return 0, err
	}
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil && ns != own {
			return pid, nil
		}
	}
	return 0, errors.New("the container has not started yet")
}

func alive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

// runningLeader is the PID that nsenter enters for the lab host name: the
// host's init, which must be running.
func (l *Lab) runningLeader(name string) (int, error) {
	st, err := l.Load()
	if err != nil {
		return 0, err
	}
	h, err := st.Host(name)
	if err != nil {
		return 0, err
	}
	if !alive(h.PID) {
		return 0, fmt.Errorf("lab host %s is not running", name)
	}
	return leader(h.PID)
}

// Exec runs a command inside a host and returns its combined output.
func (l *Lab) Exec(ctx context.Context, name string, argv ...string) ([]byte, error) {
	ld, err := l.runningLeader(name)
	if err != nil {
		return nil, err
	}
	args := append([]string{"-t", strconv.Itoa(ld), "-a", "--"}, argv...)
	return exec.CommandContext(ctx, "nsenter", args...).CombinedOutput()
}

// ExecInteractive runs a command inside a host with the given standard
// streams, returning its exit code.
func (l *Lab) ExecInteractive(ctx context.Context, name string, stdin io.Reader, stdout, stderr io.Writer, argv ...string) (int, error) {
	ld, err := l.runningLeader(name)
	if err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(ld), "-a", "--"}, argv...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	return 0, err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// waitTCP waits until addr accepts TCP connections.
func waitTCP(ctx context.Context, addr string) error {
	for {
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", addr, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// labMounts returns the overlay mounts under the lab directory, deepest
// first.
func (l *Lab) labMounts() []string {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	prefix := filepath.Clean(l.Dir) + "/"
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 1 && strings.HasPrefix(fields[1], prefix) {
			out = append(out, fields[1])
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}
