package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// HostStatus is what status reports of a host.
type HostStatus struct {
	Host
	Running    bool
	SSH        bool
	Systemd    string
	PostgreSQL string
	Standin    string
}

// Status observes every host.
func (l *Lab) Status(ctx context.Context) ([]HostStatus, error) {
	st, err := l.Load()
	if err != nil {
		return nil, err
	}
	var out []HostStatus
	for _, h := range st.Hosts {
		s := HostStatus{Host: *h, Running: alive(h.PID) && !isZombie(h.PID), Systemd: "-", PostgreSQL: "-", Standin: "-"}
		if s.Running {
			if c, err := net.DialTimeout("tcp", h.Address+":22", time.Second); err == nil {
				s.SSH = true
				c.Close()
			}
			if b, err := l.Exec(ctx, h.Name, "systemctl", "is-system-running"); err == nil || len(b) > 0 {
				s.Systemd = strings.TrimSpace(string(b))
			}
			if b, err := l.Exec(ctx, h.Name, "systemctl", "is-active", LayoutOf(h).Unit+".service"); err == nil || len(b) > 0 {
				s.PostgreSQL = strings.TrimSpace(string(b))
			}
			if b, err := l.Exec(ctx, h.Name, "systemctl", "is-active", "inmanta-server.service"); err == nil || len(b) > 0 {
				s.Standin = strings.TrimSpace(string(b))
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// Faults a host can suffer.
const (
	FaultKill      = "kill"
	FaultStop      = "stop"
	FaultPartition = "partition"
	FaultHeal      = "heal"
	FaultStart     = "start"
)

// Fault powers a host off abruptly (kill), shuts it down (stop), cuts it off
// the network (partition), reconnects it (heal), or boots a stopped host
// again from its disk (start).
func (l *Lab) Fault(ctx context.Context, name, fault string) error {
	st, err := l.Load()
	if err != nil {
		return err
	}
	h, err := st.Host(name)
	if err != nil {
		return err
	}
	running := alive(h.PID) && !isZombie(h.PID)
	switch fault {
	case FaultKill, FaultStop:
		if !running {
			return fmt.Errorf("%s is not running", name)
		}
		// Killing the host's init ends its PID namespace at once: every
		// process dies as at a power cut, and nspawn exits. SIGRTMIN+4
		// asks systemd for an orderly poweroff.
		sig := syscall.SIGKILL
		if fault == FaultStop {
			sig = syscall.Signal(34 + 4)
		}
		ld, err := leader(h.PID)
		if err != nil {
			return err
		}
		if err := syscall.Kill(ld, sig); err != nil {
			return err
		}
		return l.waitGone(h)
	case FaultPartition:
		return run("ip", "link", "set", vethName(name), "down")
	case FaultHeal:
		return run("ip", "link", "set", vethName(name), "up")
	case FaultStart:
		if running {
			return fmt.Errorf("%s is already running", name)
		}
		if err := l.boot(h); err != nil {
			return err
		}
		if err := l.save(st); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
		defer cancel()
		return waitTCP(ctx, h.Address+":22")
	}
	return fmt.Errorf("unknown fault %q: kill, stop, partition, heal or start", fault)
}

func (l *Lab) waitGone(h *Host) error {
	deadline := time.Now().Add(60 * time.Second)
	for alive(h.PID) && !isZombie(h.PID) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not stop", h.Name)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// Memory returns the proportional set size of every process running on
// the lab's hosts, in bytes: what the hosts together cost this machine.
func (l *Lab) Memory() (int64, error) {
	var total int64
	for _, pid := range l.rootedInLab() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			continue // the process ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "Pss:" {
				kb, err := strconv.ParseInt(f[1], 10, 64)
				if err == nil {
					total += kb * 1024
				}
			}
		}
	}
	return total, nil
}
