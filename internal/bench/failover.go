package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/runbook-dev/runbook/internal/lab"
)

var (
	failover = flag.Bool("failover", false, "measure the failover on the lab instead (power cut of pg1 → the orchestrator healthy on pg2): runbook against the bare commands; needs the lab's requirements and holds its bridge")
	labDir   = flag.String("lab-dir", "/var/tmp/runbook-bench-failover", "the lab's directory for --failover (and for --switchover, whose default is /var/tmp/runbook-bench-switchover)")
)

// The ways a round fails over.
const (
	wayBare     = "bare commands"
	wayTwo      = "runbook: promote-standby, failover-database"
	wayFailover = "runbook: orchestrator/failover"
)

var ways = []string{wayTwo, wayFailover, wayBare}

// failoverRound is one measured failover on a fresh lab.
type failoverRound struct {
	// down is how long a TCP connection from here to the old primary's
	// SSH port took to fail after the power cut: the network's report.
	down time.Duration
	// phases in order, and the total from the power cut's end.
	phases []phase
	total  time.Duration
	// slow are runbook's guards and steps that took 100 ms or more.
	slow []phase
	// labUp is how long the lab took to come up (not measured time).
	labUp time.Duration
}

type phase struct {
	name string
	d    time.Duration
}

// The lab a round has up, torn down by a signal (interrupt, terminate)
// before the bench exits, so that no lab stays up after it.
var (
	labMu  sync.Mutex
	labNow *lab.Lab
)

// downOnSignal takes the lab down and removes the bench's directory dir on
// an interrupt, a terminate or a hangup, then exits.
func downOnSignal(dir string) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sig
		labMu.Lock()
		if labNow != nil {
			fmt.Fprintf(os.Stderr, "bench: %v: taking the lab down\n", s)
			if err := labNow.Down(); err != nil {
				fmt.Fprintln(os.Stderr, "bench: lab down:", err)
			}
		}
		os.RemoveAll(dir)
		os.Exit(130)
	}()
}

// holdLab makes l the lab a signal takes down.
func holdLab(l *lab.Lab) {
	labMu.Lock()
	defer labMu.Unlock()
	labNow = l
}

// releaseLab takes the held lab l down and says what went wrong: its
// Down failing, or something of it left behind.
func releaseLab(l *lab.Lab) error {
	labMu.Lock()
	defer labMu.Unlock()
	defer func() { labNow = nil }()
	if err := l.Down(); err != nil {
		return fmt.Errorf("lab down: %w", err)
	}
	if left := labLeft(l); left != "" {
		return fmt.Errorf("lab down left %s", left)
	}
	return nil
}

// runFailover measures *runs rounds of each way, alternated, each on a
// fresh lab with pg1 the primary, pg2 its synchronous standby and the
// orchestrator stand-in on orch using pg1.
func (b *bench) runFailover() error {
	downOnSignal(b.dir)
	got := map[string][]failoverRound{}
	for i := 0; i < *runs; i++ {
		for _, way := range ways {
			r, err := b.failoverRound(way)
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", way, i+1, err)
			}
			fmt.Fprintf(os.Stderr, "bench: %s, round %d: %s (lab up %s; load %s)\n", way, i+1, ms(r.total), ms(r.labUp), loadavg())
			got[way] = append(got[way], r)
		}
	}
	med := medianBy[failoverRound]
	fmt.Printf("Median of %d rounds of each way, the ways alternated, each round on a fresh lab (pg1 powered off by `lab fault pg1 kill`); load average at the end %s.\n\n", *runs, loadavg())
	fmt.Println("| way | phase | median |")
	fmt.Println("|---|---|---|")
	for _, way := range ways {
		rs := got[way]
		for i := range rs[0].phases {
			fmt.Printf("| %s | %s | %s |\n", way, rs[0].phases[i].name, ms(med(rs, func(r failoverRound) time.Duration { return r.phases[i].d })))
		}
		fmt.Printf("| %s | **power cut → orchestrator healthy on pg2** | **%s** |\n", way, ms(med(rs, func(r failoverRound) time.Duration { return r.total })))
	}
	bare := got[wayBare]
	bareTotal := med(bare, func(r failoverRound) time.Duration { return r.total })
	fmt.Printf("\nThe network's report of pg1 down (a TCP connection from here to its SSH port failing), in the bare rounds: %s (each: %s); it is part of the bare total.\n", ms(med(bare, func(r failoverRound) time.Duration { return r.down })), each(bare, func(r failoverRound) time.Duration { return r.down }))
	for _, way := range ways {
		rs := got[way]
		fmt.Printf("%s: each round %s", way, each(rs, func(r failoverRound) time.Duration { return r.total }))
		if way != wayBare {
			fmt.Printf("; / (bare commands + the network's report) = %.2f", float64(med(rs, func(r failoverRound) time.Duration { return r.total }))/float64(bareTotal))
		}
		fmt.Println()
	}
	for _, way := range ways[:2] {
		for i, r := range got[way] {
			fmt.Printf("\n%s, round %d, guards and steps of 100 ms or more:", way, i+1)
			for _, p := range r.slow {
				fmt.Printf(" %s %s;", p.name, ms(p.d))
			}
			fmt.Println()
		}
	}
	return nil
}

// labLeft says what of the lab is still there after its down: its
// bridge, its directory, a mount under it.
func labLeft(l *lab.Lab) string {
	var left []string
	if _, err := net.InterfaceByName(lab.Bridge); err == nil {
		left = append(left, "the bridge "+lab.Bridge)
	}
	if _, err := os.Stat(l.Dir); err == nil {
		left = append(left, "the directory "+l.Dir)
	}
	if b, _ := os.ReadFile("/proc/self/mounts"); bytes.Contains(b, []byte(l.Dir+"/")) {
		left = append(left, "mounts under "+l.Dir)
	}
	return strings.Join(left, ", ")
}

func each(rs []failoverRound, f func(failoverRound) time.Duration) string {
	var s []string
	for _, r := range rs {
		s = append(s, ms(f(r)))
	}
	return strings.Join(s, ", ")
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// failoverRound sets a lab up, powers pg1 off and fails over one way.
func (b *bench) failoverRound(way string) (r failoverRound, err error) {
	ctx := context.Background()
	l := &lab.Lab{Dir: *labDir}
	holdLab(l)
	defer func() {
		if derr := releaseLab(l); derr != nil && err == nil {
			err = derr
		}
	}()
	up := time.Now()
	if _, err := l.Up(ctx, lab.Options{Hosts: []string{"pg1", "pg2", "orch"}, Orchestrator: "orch", Standin: b.runbook}); err != nil {
		return r, fmt.Errorf("lab up: %w", err)
	}
	r.labUp = time.Since(up)
	inv := l.InventoryPath()
	env := append(os.Environ(), "RUNBOOK_REPLICATION_PASSWORD=Bench-repl-pw-7q")
	rb := func(args ...string) ([]byte, error) {
		c := exec.Command(b.runbook, append([]string{args[0], "-i", inv, "--state-dir", b.file("state")}, args[1:]...)...)
		c.Env = env
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		if err := c.Run(); err != nil {
			return nil, fmt.Errorf("runbook %s: %v\n%s%s", strings.Join(args, " "), err, out.Bytes(), errb.Bytes())
		}
		return out.Bytes(), nil
	}
	for _, p := range []string{"pg-ha/configure-primary", "pg-ha/configure-standby"} {
		if _, err := rb("run", p, "-p", "primary=pg1", "-p", "standby=pg2", "-p", "layout=debian"); err != nil {
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
	runbook := func(name string, args ...string) error {
		return step(name, func() error {
			t := time.Now()
			out, err := rb(append([]string{"run"}, append(args, "--output", "json")...)...)
			if err != nil {
				return err
			}
			if *eventsDir != "" {
				b.roundN++
				f := fmt.Sprintf("failover-%02d-%s.jsonl", b.roundN, strings.ReplaceAll(args[0], "/", "-"))
				if werr := os.WriteFile(filepath.Join(*eventsDir, f), out, 0o644); werr != nil {
					fmt.Fprintln(os.Stderr, "bench: keeping the events:", werr)
				}
			}
			r.slow = append(r.slow, slowEvents(args[0], t, out)...)
			return nil
		})
	}
	switch way {
	case wayTwo:
		if err := runbook("promote-standby (guards, evidence, recheck, promotion, checks)",
			"pg-ha/promote-standby", "-p", "standby=pg2", "-p", "old_primary=pg1", "-p", "layout=debian", "--yes"); err != nil {
			return r, err
		}
		if err := runbook("failover-database (guards, stop, database.cfg, start, healthy, connected)",
			"orchestrator/failover-database", "-p", "orchestrator=orch", "-p", "new_primary=pg2", "-p", "layout=debian"); err != nil {
			return r, err
		}
	case wayFailover:
		if err := runbook("orchestrator/failover (every guard of both, stop, promotion, database.cfg, start, healthy, connected)",
			"orchestrator/failover", "-p", "orchestrator=orch", "-p", "standby=pg2", "-p", "old_primary=pg1", "-p", "layout=debian", "--yes"); err != nil {
			return r, err
		}
	case wayBare:
		if err := b.bareFailover(l, &r, step); err != nil {
			return r, err
		}
	}
	r.total = time.Since(start)
	return r, nil
}

// bareFailover is what an operator types without runbook: nothing checked
// but the network's word that pg1 is down.
func (b *bench) bareFailover(l *lab.Lab, r *failoverRound, step func(string, func() error) error) error {
	pg1, pg2, orch := lab.Address(0), lab.Address(1), lab.Address(2)
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
		return err
	}
	// Without the reset, the stand-in's first writes on pg2 would wait for
	// the synchronous standby that pg2 was.
	if err := step("ssh pg2: pg_ctl promote -w; synchronous_standby_names reset, reload", func() error {
		return ssh(pg2, "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl promote -w -D /var/lib/postgresql/15/main >/dev/null && "+
			"runuser -u postgres -- psql -qX -c \"ALTER SYSTEM SET synchronous_standby_names = ''\" -c 'SELECT pg_reload_conf()' >/dev/null")
	}); err != nil {
		return err
	}
	if err := step("ssh orch: stop, sed database.cfg, start", func() error {
		return ssh(orch, "systemctl stop inmanta-server && sed -i 's/^host=.*/host="+pg2+"/' /etc/inmanta/inmanta.d/database.cfg && systemctl start inmanta-server")
	}); err != nil {
		return err
	}
	// The API listens on orch's loopback address only, as the server's does.
	return step("ssh orch: health polled every 10 ms until 200", func() error {
		return ssh(orch, "for i in $(seq 12000); do curl -sf -o /dev/null http://127.0.0.1:8888/api/v2/health && exit 0; sleep 0.01; done; exit 1")
	})
}

// slowEvents reads a run's JSON events and returns its start-up (process
// start to the run's start), its guards' phase and every guard and step
// of 100 ms or more.
func slowEvents(playbook string, started time.Time, out []byte) []phase {
	var slow []phase
	var runStart, firstStep time.Time
	eachEvent(out, func(ev runEvent) {
		switch ev.Type {
		case "run-start":
			if runStart.IsZero() {
				runStart = ev.Time
			}
		case "step-start":
			if firstStep.IsZero() {
				firstStep = ev.Time
			}
		case "guard", "step-end":
			if ev.Duration >= 100*time.Millisecond {
				slow = append(slow, phase{fmt.Sprintf("%s %q [%s]", ev.Type, ev.Name, ev.Host), ev.Duration})
			}
		}
	})
	var head []phase
	if !runStart.IsZero() {
		head = append(head, phase{playbook + ": start-up to run-start", runStart.Sub(started)})
		if !firstStep.IsZero() {
			head = append(head, phase{playbook + ": run-start to the first step (guards)", firstStep.Sub(runStart)})
		}
	}
	return append(head, slow...)
}

// runEvent is what the benches read of one line of runbook's --output json.
type runEvent struct {
	Time     time.Time     `json:"time"`
	Type     string        `json:"type"`
	Playbook string        `json:"playbook"`
	ID       string        `json:"id"`
	Name     string        `json:"name"`
	Host     string        `json:"host"`
	Duration time.Duration `json:"duration_ns"`
}

// eachEvent calls f with each event of a run's JSON output, in order,
// passing over lines that are not events.
func eachEvent(out []byte, f func(runEvent)) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev runEvent
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			f(ev)
		}
	}
}
