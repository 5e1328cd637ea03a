package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/runbook-dev/runbook/internal/lab"
)

var (
	failover = flag.Bool("failover", false, "measure the failover on the lab instead (power cut of pg1 → the orchestrator healthy on pg2): runbook against the bare commands; needs the lab's requirements and holds its bridge")
	labDir   = flag.String("lab-dir", "/var/tmp/runbook-bench-failover", "the lab's directory for --failover")
)

// failoverRound is one measured failover on a fresh lab.
type failoverRound struct {
	// down is how long a TCP connection from here to the old primary's
	// SSH port took to fail after the power cut: the network's report.
	down time.Duration
	// phases in order, and the total from the power cut's end.
	phases []phase
	total  time.Duration
}

type phase struct {
	name string
	d    time.Duration
}

// runFailover measures *runs rounds of each, alternated, each on a fresh
// lab with pg1 the primary, pg2 its synchronous standby and the
// orchestrator stand-in on orch using pg1.
func (b *bench) runFailover() error {
	var rb, bare []failoverRound
	for i := 0; i < *runs; i++ {
		for _, way := range []bool{true, false} {
			r, err := b.failoverRound(way)
			if err != nil {
				return err
			}
			if way {
				rb = append(rb, r)
			} else {
				bare = append(bare, r)
			}
		}
	}
	med := func(rs []failoverRound, f func(failoverRound) time.Duration) time.Duration {
		var ds []time.Duration
		for _, r := range rs {
			ds = append(ds, f(r))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	fmt.Printf("Median of %d rounds each, runbook and the bare commands alternated, each on a fresh lab (pg1 powered off by `lab fault pg1 kill`).\n\n", *runs)
	fmt.Println("| phase | runbook | bare commands |")
	fmt.Println("|---|---|---|")
	for i := range rb[0].phases {
		fmt.Printf("| runbook: %s | %s | |\n", rb[0].phases[i].name, ms(med(rb, func(r failoverRound) time.Duration { return r.phases[i].d })))
	}
	for i := range bare[0].phases {
		fmt.Printf("| bare: %s | | %s |\n", bare[0].phases[i].name, ms(med(bare, func(r failoverRound) time.Duration { return r.phases[i].d })))
	}
	rbTotal, bareTotal := med(rb, func(r failoverRound) time.Duration { return r.total }), med(bare, func(r failoverRound) time.Duration { return r.total })
	fmt.Printf("| **power cut → orchestrator healthy on pg2** | **%s** | **%s** |\n", ms(rbTotal), ms(bareTotal))
	fmt.Printf("\nThe network's report of pg1 down (a TCP connection from here to its SSH port failing), in the bare rounds: %s (each: %s).\n", ms(med(bare, func(r failoverRound) time.Duration { return r.down })), downs(bare))
	fmt.Printf("runbook / (bare commands + the network's report) = %.2f\n", float64(rbTotal)/float64(bareTotal))
	for i, r := range rb {
		fmt.Printf("\nrunbook round %d:", i+1)
		for _, p := range r.phases {
			fmt.Printf(" %s %s;", p.name, ms(p.d))
		}
		fmt.Println()
	}
	return nil
}

func downs(rs []failoverRound) string {
	var s []string
	for _, r := range rs {
		s = append(s, ms(r.down))
	}
	return strings.Join(s, ", ")
}

// failoverRound sets a lab up, powers pg1 off and fails over with runbook
// (withRunbook) or with the bare commands.
func (b *bench) failoverRound(withRunbook bool) (r failoverRound, err error) {
	ctx := context.Background()
	l := &lab.Lab{Dir: *labDir}
	if _, err := l.Up(ctx, lab.Options{Hosts: []string{"pg1", "pg2", "orch"}, Orchestrator: "orch", Standin: b.runbook}); err != nil {
		return r, fmt.Errorf("lab up: %w", err)
	}
	defer func() {
		if derr := l.Down(); derr != nil && err == nil {
			err = fmt.Errorf("lab down: %w", derr)
		}
	}()
	inv := l.InventoryPath()
	env := append(os.Environ(), "RUNBOOK_REPLICATION_PASSWORD=Bench-repl-pw-7q")
	rb := func(args ...string) error {
		c := exec.Command(b.runbook, append([]string{args[0], "-i", inv, "--state-dir", b.file("state")}, args[1:]...)...)
		c.Env = env
		out, err := c.CombinedOutput()
		if err != nil {
			return fmt.Errorf("runbook %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	for _, p := range []string{"pg-ha/configure-primary", "pg-ha/configure-standby"} {
		if err := rb("run", p, "-p", "primary=pg1", "-p", "standby=pg2", "-p", "layout=debian"); err != nil {
			return r, err
		}
	}
	if err := l.Fault(ctx, "pg1", lab.FaultKill); err != nil {
		return r, err
	}
	start := time.Now()
	step := func(name string, f func() error) error {
		t := time.Now()
		err := f()
		r.phases = append(r.phases, phase{name, time.Since(t)})
		return err
	}
	pg1, pg2, orch := lab.Address(0), lab.Address(1), lab.Address(2)
	if withRunbook {
		if err := step("promote-standby (guards, evidence, recheck, promotion, checks)", func() error {
			return rb("run", "pg-ha/promote-standby", "-p", "standby=pg2", "-p", "old_primary=pg1", "-p", "layout=debian", "--yes")
		}); err != nil {
			return r, err
		}
		if err := step("failover-database (guards, stop, database.cfg, start, healthy, connected)", func() error {
			return rb("run", "orchestrator/failover-database", "-p", "orchestrator=orch", "-p", "new_primary=pg2", "-p", "layout=debian")
		}); err != nil {
			return r, err
		}
	} else {
		ssh := func(host, line string) error {
			c := exec.Command("ssh", "-i", l.KeyFile(), "-o", "UserKnownHostsFile="+l.KnownHosts(), "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "root@"+host, line)
			out, err := c.CombinedOutput()
			if err != nil {
				return fmt.Errorf("ssh %s %s: %v\n%s", host, line, err, out)
			}
			return nil
		}
		if err := step("the network reports pg1 down (TCP to its SSH port)", func() error {
			t := time.Now()
			c, err := net.DialTimeout("tcp", pg1+":22", 10*time.Second)
			r.down = time.Since(t)
			if err == nil {
				c.Close()
				return errors.New("pg1 answers after the power cut")
			}
			return nil
		}); err != nil {
			return r, err
		}
		if err := step("ssh pg2 pg_ctl promote -w", func() error {
			return ssh(pg2, "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl promote -w -D /var/lib/postgresql/15/main")
		}); err != nil {
			return r, err
		}
		if err := step("ssh orch: stop, sed database.cfg, start", func() error {
			return ssh(orch, "systemctl stop inmanta-server && sed -i 's/^host=.*/host="+pg2+"/' /etc/inmanta/inmanta.d/database.cfg && systemctl start inmanta-server")
		}); err != nil {
			return r, err
		}
		if err := step("health polled every 10ms until 200", func() error {
			deadline := time.Now().Add(2 * time.Minute)
			for time.Now().Before(deadline) {
				if resp, err := http.Get("http://" + orch + ":8888/api/v2/health"); err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						return nil
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
			return errors.New("the orchestrator never became healthy")
		}); err != nil {
			return r, err
		}
	}
	r.total = time.Since(start)
	return r, nil
}
