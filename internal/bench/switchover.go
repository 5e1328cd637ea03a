package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/runbook-dev/runbook/internal/lab"
)

var (
	switchover = flag.Bool("switchover", false, "measure the planned switchover on the lab instead (pg1 → pg2 and back, on one lab): runbook's pg-ha/switchover against the bare commands, with a client committing in a loop; needs the lab's requirements and holds its bridge")
	swLimit    = flag.Duration("switchover-limit", 13*time.Minute, "with --switchover: the longest the bench holds the lab; its commands are killed then and the lab taken down")
	swLayout   = flag.String("layout", lab.LayoutDebian, "with --switchover: the PostgreSQL packaging of pg1 and pg2 (debian, rhel, pgdg: where its programs, data and unit are)")
	eventsDir  = flag.String("events-dir", "", "with --switchover or --failover: keep each runbook run's JSON events in this directory")
)

// The ways a switchover is made.
const (
	swRunbook = "runbook: pg-ha/switchover"
	swBare    = "bare commands"
)

var swWays = []string{swRunbook, swBare}

// The switchover's direction: from the primary to its standby.
type swDirection struct{ from, to int } // lab host indexes: 0 pg1, 1 pg2

var swDirections = []swDirection{{0, 1}, {1, 0}}

func (d swDirection) String() string { return fmt.Sprintf("pg%d → pg%d", d.from+1, d.to+1) }

// swRound is one measured switchover.
type swRound struct {
	// phases in order; their sum is total.
	phases []phase
	// writable is from the start to writes available on the new primary
	// as the procedure sees it: runbook's wait for the new primary to
	// leave recovery ends, or the bare `pg_ctl promote -w` returns.
	writable time.Duration
	// firstCommit is from the start to the client's first commit on the
	// new primary; gap the client's longest time without a commit.
	firstCommit, gap time.Duration
	// healthy is from the start to the orchestrator answering healthy on
	// the new primary; total to the command's end.
	healthy, total time.Duration
	// slow are runbook's guards and steps of 100 ms or more.
	slow []phase
	// probeGaveUp says the old primary's unit start logged Debian's
	// pg_ctlcluster giving up its connection probes ("connection to the
	// database failed, disabling startup checks"): a warm standby answers
	// none, and pg_ctlcluster waits for 10 failures 0.5 s apart.
	probeGaveUp bool
}

// swLab is the lab of the switchover rounds and what runs against it.
type swLab struct {
	// ctx ends the bench's commands at its time limit.
	ctx context.Context
	b   *bench
	l   *lab.Lab
	env []string
	c   *lab.Committer
}

// runSwitchover brings one lab up (pg1 the primary, pg2 its synchronous
// standby, the orchestrator stand-in on orch using pg1), starts a client
// committing in a loop, and measures *runs rounds of each way, alternated:
// a round switches over pg1 → pg2 and back, so that every round starts
// from the same state. The lab goes down on every return and on a signal.
func (b *bench) runSwitchover() (err error) {
	downOnSignal(b.dir)
	l := &lab.Lab{Dir: *labDir}
	if !labDirSet() {
		l.Dir = "/var/tmp/runbook-bench-switchover"
	}
	holdLab(l)
	// The lab is shared: the bench holds it for a bounded time, whatever
	// hangs.
	ctx, cancel := context.WithTimeout(context.Background(), *swLimit)
	defer cancel()
	s := &swLab{ctx: ctx, b: b, l: l, env: append(os.Environ(), "RUNBOOK_REPLICATION_PASSWORD="+benchReplicationPassword)}
	defer func() {
		if s.c != nil {
			s.c.Stop()
		}
		if derr := releaseLab(l); derr != nil && err == nil {
			err = derr
		}
	}()
	if err := s.setUp(); err != nil {
		return err
	}
	got := map[string]map[swDirection][]swRound{}
	for _, way := range swWays {
		got[way] = map[swDirection][]swRound{}
	}
	for i := 0; i < *runs; i++ {
		for _, way := range swWays {
			for _, d := range swDirections {
				r, err := s.round(way, d, i+1)
				if err != nil {
					return fmt.Errorf("%s, %s, round %d: %w", way, d, i+1, err)
				}
				fmt.Fprintf(os.Stderr, "bench: %s, %s, round %d: writable %s, client %s (gap %s), healthy %s (load %s)\n",
					way, d, i+1, ms(r.writable), ms(r.firstCommit), ms(r.gap), ms(r.healthy), loadavg())
				got[way][d] = append(got[way][d], r)
			}
		}
	}
	s.c.Stop()
	last := lab.Address(swDirections[len(swDirections)-1].to)
	missing, err := s.c.Missing(last)
	if err != nil {
		return err
	}
	if missing != 0 {
		return fmt.Errorf("%d of the client's %d commits that returned are not on %s, the primary after the last round", missing, s.c.Count(), last)
	}
	printSwitchover(got, s.c.Count(), last)
	return nil
}

// benchReplicationPassword is the replication role's password in the
// bench's labs.
const benchReplicationPassword = "Bench-repl-pw-7q"

func labDirSet() bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "lab-dir" })
	return set
}

// setUp brings the lab up, configures the pair and starts the client.
func (s *swLab) setUp() error {
	up := time.Now()
	if _, ok := lab.Layouts[*swLayout]; !ok {
		return fmt.Errorf("--layout %q: want debian, rhel or pgdg", *swLayout)
	}
	opt := lab.Options{Hosts: []string{"pg1", "pg2", "orch"}, Orchestrator: "orch", Standin: s.b.runbook,
		Layouts: map[string]string{"pg1": *swLayout, "pg2": *swLayout}}
	if _, err := s.l.Up(s.ctx, opt); err != nil {
		return fmt.Errorf("lab up: %w", err)
	}
	fmt.Fprintf(os.Stderr, "bench: lab up in %s\n", ms(time.Since(up)))
	for _, p := range []string{"pg-ha/configure-primary", "pg-ha/configure-standby"} {
		if _, err := s.runbook("run", p, "-p", "primary=pg1", "-p", "standby=pg2", "-p", "layout="+*swLayout); err != nil {
			return err
		}
	}
	// The stand-in may have given up while its writes waited for pg2 to
	// stream (synchronous_standby_names is set before): it starts again,
	// on pg1, before the rounds.
	if _, err := s.ssh(lab.Address(2), "systemctl reset-failed inmanta-server; systemctl restart inmanta-server && "+healthPoll); err != nil {
		return fmt.Errorf("the orchestrator after the pair's configuration: %w", err)
	}
	password, err := s.ssh(lab.Address(2), "sed -n 's/^password=//p' /etc/inmanta/inmanta.d/database.cfg")
	if err != nil {
		return err
	}
	if _, err := s.ssh(lab.Address(0), `cd / && runuser -u postgres -- `+lab.Layouts[*swLayout].Bin+`/psql -qX -d inmanta -c 'CREATE TABLE bench_rows (id int PRIMARY KEY, at timestamptz DEFAULT now())' -c 'ALTER TABLE bench_rows OWNER TO inmanta'`); err != nil {
		return err
	}
	s.c = &lab.Committer{
		DSN:   "port=5432 dbname=inmanta user=inmanta password=" + strings.TrimSpace(password) + " sslmode=disable connect_timeout=2",
		Hosts: []string{lab.Address(0), lab.Address(1)},
		Table: "bench_rows",
	}
	s.c.Start(1)
	return nil
}

// runbook runs the CLI on the lab's inventory and returns its standard
// output.
func (s *swLab) runbook(args ...string) ([]byte, error) {
	c := exec.CommandContext(s.ctx, s.b.runbook, append([]string{args[0], "-i", s.l.InventoryPath(), "--state-dir", s.b.file("state")}, args[1:]...)...)
	c.Env = s.env
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		if s.ctx.Err() != nil {
			err = fmt.Errorf("%w (the bench's limit --switchover-limit=%s)", err, *swLimit)
		}
		return out.Bytes(), fmt.Errorf("runbook %s: %v\n%s%s", strings.Join(args, " "), err, tail(out.Bytes()), errb.Bytes())
	}
	return out.Bytes(), nil
}

// tail is the end of a long output, for an error.
func tail(b []byte) []byte {
	if len(b) > 4000 {
		return append([]byte("...\n"), b[len(b)-4000:]...)
	}
	return b
}

// ssh runs a shell line as root on a lab host, as an operator types it,
// and returns its standard output.
func (s *swLab) ssh(host, line string) (string, error) {
	c := exec.CommandContext(s.ctx, "ssh", "-i", s.l.KeyFile(), "-o", "UserKnownHostsFile="+s.l.KnownHosts(), "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "root@"+host, line)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		return out.String(), fmt.Errorf("ssh %s %s: %v\n%s%s", host, line, err, out.Bytes(), errb.Bytes())
	}
	return out.String(), nil
}

// settle waits, unmeasured, until the pair is as a round starts: the
// standby streams synchronously from the primary, the orchestrator is
// healthy, and the client commits on the primary.
func (s *swLab) settle(d swDirection) error {
	from, to := lab.Address(d.from), lab.Address(d.to)
	if _, err := s.ssh(from, `cd / && for i in $(seq 600); do r=$(runuser -u postgres -- `+lab.Layouts[*swLayout].Bin+`/psql -XAtq -c "SELECT state || ' ' || sync_state FROM pg_stat_replication WHERE application_name = 'inmanta' AND host(client_addr) = '`+to+`'"); [ "$r" = "streaming sync" ] && exit 0; sleep 0.1; done; echo "the standby is not streaming sync: ${r:-absent}" >&2; exit 1`); err != nil {
		return fmt.Errorf("before the round: %w", err)
	}
	if _, err := s.ssh(lab.Address(2), healthPoll); err != nil {
		return fmt.Errorf("before the round, the orchestrator: %w", err)
	}
	if _, err := s.c.WaitOn(d.from, time.Now(), 20, 60*time.Second); err != nil {
		return fmt.Errorf("before the round: %w", err)
	}
	return nil
}

// healthPoll asks the orchestrator's health on its machine every 10 ms
// until it says 200 (the API listens on orch's loopback only, as the
// server's does).
const healthPoll = "for i in $(seq 12000); do curl -sf -o /dev/null http://127.0.0.1:8888/api/v2/health && exit 0; sleep 0.01; done; exit 1"

// round makes one switchover one way and measures it.
func (s *swLab) round(way string, d swDirection, n int) (r swRound, err error) {
	if err := s.settle(d); err != nil {
		return r, err
	}
	start := time.Now()
	switch way {
	case swRunbook:
		err = s.runbookSwitchover(&r, d, start, n)
	case swBare:
		err = s.bareSwitchover(&r, d)
	}
	if err != nil {
		return r, err
	}
	end := time.Now()
	r.total = end.Sub(start)
	// Unmeasured: what the old primary's unit logged at its start.
	logged, err := s.ssh(lab.Address(d.from), fmt.Sprintf("journalctl -u %s --since @%d -o cat --no-pager | grep -c 'disabling startup checks' || true", lab.Layouts[*swLayout].Unit, start.Unix()))
	if err != nil {
		return r, err
	}
	r.probeGaveUp = strings.TrimSpace(logged) != "0"
	first, err := s.c.WaitOn(d.to, start, 1, 30*time.Second)
	if err != nil {
		return r, err
	}
	r.firstCommit = first.Sub(start)
	r.gap = s.c.LongestGap(start, first)
	return r, nil
}

// runbookSwitchover runs pg-ha/switchover and reads its phases from its
// JSON events.
func (s *swLab) runbookSwitchover(r *swRound, d swDirection, start time.Time, n int) error {
	out, err := s.runbook("run", "pg-ha/switchover", "-p", fmt.Sprintf("primary=pg%d", d.from+1), "-p", fmt.Sprintf("standby=pg%d", d.to+1),
		"-p", "orchestrator=orch", "-p", "layout="+*swLayout, "--output", "json")
	if *eventsDir != "" {
		name := fmt.Sprintf("switchover-round%d-pg%d-pg%d.jsonl", n, d.from+1, d.to+1)
		if werr := os.WriteFile(filepath.Join(*eventsDir, name), out, 0o644); werr != nil {
			fmt.Fprintln(os.Stderr, "bench: keeping the events:", werr)
		}
	}
	if err != nil {
		return err
	}
	return swPhases(r, start, time.Now(), out)
}

// The phases of pg-ha/switchover: each of its steps (by id) counts in the
// phase of the procedure it is part of; a phase runs from its first
// step's start to the next phase's.
var swStepPhase = map[string]string{
	"before":                "the primary's state looked at again",
	"orchestrator_stop":     "stop the orchestrator",
	"orchestrator_t0":       "stop the orchestrator",
	"checkpoint":            "CHECKPOINT, clean shutdown of the primary",
	"t0":                    "CHECKPOINT, clean shutdown of the primary",
	"stop":                  "CHECKPOINT, clean shutdown of the primary",
	"fence":                 "the old primary's unit masked",
	"shutdown":              "the standby holds the shutdown checkpoint",
	"received":              "the standby holds the shutdown checkpoint",
	"restore":               "the standby holds the shutdown checkpoint",
	"unfence":               "the standby holds the shutdown checkpoint",
	"restore_orchestrator":  "the standby holds the shutdown checkpoint",
	"refuse":                "the standby holds the shutdown checkpoint",
	"promote":               "promote (until the new primary takes writes)",
	"writable":              "promote (until the new primary takes writes)",
	"unavailable":           "what was done, printed; standby settings out of the new primary",
	"switched":              "what was done, printed; standby settings out of the new primary",
	"auto_conf":             "what was done, printed; standby settings out of the new primary",
	"upstream":              "the old primary's slot and pg_hba rules on the new primary, reload",
	"follow":                "the old primary follows: its own slot out, conninfo and slot, warm standby settings, standby.signal",
	"follow/started":        "the old primary's unit started (systemctl start)",
	"follow/in_recovery":    "until it streams (checked in recovery, no queries); synchronous_standby_names, reload, sync",
	"follow/streams":        "until it streams (checked in recovery, no queries); synchronous_standby_names, reload, sync",
	"follow/no_queries":     "until it streams (checked in recovery, no queries); synchronous_standby_names, reload, sync",
	"follow/synchronous":    "until it streams (checked in recovery, no queries); synchronous_standby_names, reload, sync",
	"orchestrator_config":   "database.cfg, start the orchestrator",
	"orchestrator_reset":    "database.cfg, start the orchestrator",
	"orchestrator_start":    "database.cfg, start the orchestrator",
	"orchestrator_healthy":  "until the orchestrator is healthy",
	"orchestrator_downtime": "the downtime printed, the run's end",
}

const swPlaybook = "pg-ha/switchover"

// swPhases reads a run's events: its start-up, its facts and guards, then
// the phases of swStepPhase, each from its first top-level step's start,
// with the times to writes available and to the orchestrator healthy.
func swPhases(r *swRound, start, end time.Time, out []byte) error {
	type mark struct {
		name string
		at   time.Time
	}
	var marks []mark
	var runStart, writable, healthy time.Time
	eachEvent(out, func(ev runEvent) {
		if (ev.Type == "guard" || ev.Type == "step-end") && ev.Duration >= 100*time.Millisecond {
			what := ev.ID
			if what == "" {
				what = ev.Type + " " + strconv.Quote(ev.Name)
			}
			r.slow = append(r.slow, phase{fmt.Sprintf("%s [%s]", what, ev.Host), ev.Duration})
		}
		// A step of an included playbook has the id of the step that
		// includes it, then its own: follow/started.
		top, _, _ := strings.Cut(ev.ID, "/")
		switch ev.Type {
		case "run-start":
			if runStart.IsZero() && ev.Playbook == swPlaybook {
				runStart = ev.Time
			}
		case "step-start":
			// An included playbook's step may have a phase of its own.
			name, ok := swStepPhase[ev.ID]
			if !ok {
				sub, _, _ := strings.Cut(strings.TrimPrefix(ev.ID, top+"/"), "/")
				name, ok = swStepPhase[top+"/"+sub]
			}
			if !ok {
				name, ok = swStepPhase[top]
			}
			if !ok {
				name = "step " + top
			}
			if len(marks) == 0 || marks[len(marks)-1].name != name {
				marks = append(marks, mark{name, ev.Time})
			}
		case "step-end":
			switch ev.ID {
			case "writable":
				writable = ev.Time
			case "orchestrator_healthy":
				healthy = ev.Time
			}
		}
	})
	if runStart.IsZero() || len(marks) == 0 || writable.IsZero() || healthy.IsZero() {
		return fmt.Errorf("the events of %s lack its run-start, its steps' starts, the end of its step writable or of orchestrator_healthy: was --output json given, were the step ids renamed?", swPlaybook)
	}
	r.phases = append(r.phases, phase{"start-up (the process until run-start)", runStart.Sub(start)},
		phase{"facts and guards (run-start to the first step)", marks[0].at.Sub(runStart)})
	for i, m := range marks {
		next := end
		if i+1 < len(marks) {
			next = marks[i+1].at
		}
		r.phases = append(r.phases, phase{m.name, next.Sub(m.at)})
	}
	r.writable, r.healthy = writable.Sub(start), healthy.Sub(start)
	return nil
}

// bareSwitchover is the same switchover as the commands an operator types
// over SSH, in the playbook's order, each as fast as it can be: nothing is
// checked but what the next command needs (the shutdown checkpoint's
// location, the old primary streaming before synchronous_standby_names).
// The slot is made with runbook's mark, so that the runbook rounds after
// take it as theirs; it is the same statement.
func (s *swLab) bareSwitchover(r *swRound, d swDirection) error {
	lay := lab.Layouts[*swLayout]
	from, to, orch := lab.Address(d.from), lab.Address(d.to), lab.Address(2)
	psql := "cd / && runuser -u postgres -- " + lay.Bin + "/psql -qX"
	var ckpt []string // the stopped primary's state, checkpoint location, timeline
	steps := []struct {
		name, host string
		line       func() string
		after      func(out string) error
		writable   bool // writes are available on the new primary once it returns
		// unitStart: the line ends by printing how long its systemctl
		// start took (ns), a phase of its own.
		unitStart bool
	}{
		{name: "ssh orch: stop the orchestrator", host: orch, line: func() string { return "systemctl stop inmanta-server" }},
		{name: "ssh primary: CHECKPOINT, stop (fast), pg_controldata", host: from,
			line: func() string {
				return psql + " -c CHECKPOINT >/dev/null && systemctl stop " + lay.Unit + " && LC_ALL=C " + lay.Bin + "/pg_controldata -D " + lay.Data +
					` | sed -n -e 's/^Database cluster state: *//p' -e 's/^Latest checkpoint location: *//p' -e "s/^Latest checkpoint's TimeLineID: *//p"`
			},
			after: func(out string) error {
				ckpt = strings.Split(strings.TrimSpace(out), "\n")
				if len(ckpt) != 3 || ckpt[0] != "shut down" {
					return fmt.Errorf("the primary's control file after its stop: %q, want shut down, a checkpoint location and a timeline", out)
				}
				return nil
			}},
		{name: "ssh standby: pg_waldump until the shutdown checkpoint is in its WAL (every 10 ms)", host: to,
			line: func() string {
				return "for i in $(seq 1000); do " + lay.Bin + "/pg_waldump -p " + lay.Data + "/pg_wal -t " + ckpt[2] + " -s " + ckpt[1] + " -n 1 2>/dev/null | grep -q CHECKPOINT_SHUTDOWN && exit 0; sleep 0.01; done; " +
					`echo "the shutdown checkpoint at ` + ckpt[1] + ` is not in the standby's WAL" >&2; exit 1`
			}},
		{name: "ssh standby: pg_ctl promote -w; primary_conninfo, primary_slot_name out of postgresql.auto.conf", host: to, writable: true,
			line: func() string {
				return "runuser -u postgres -- " + lay.Bin + "/pg_ctl promote -w -D " + lay.Data + " >/dev/null && " +
					"runuser -u postgres -- sed -i -e '/^primary_conninfo/d' -e '/^primary_slot_name/d' " + lay.Data + "/postgresql.auto.conf"
			}},
		{name: "ssh new primary: the old primary's slot (made reserving WAL)", host: to,
			line: func() string {
				return psql + ` -c "DO \$do\$ BEGIN IF NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = 'replication') THEN PERFORM pg_create_physical_replication_slot('replication', true); ` +
					`EXECUTE format('COPY (SELECT %L) TO %L', 'created by runbook for standby inmanta', current_setting('data_directory') || '/pg_replslot/replication/runbook'); END IF; END \$do\$"`
			}},
		{name: "ssh old primary: its own slot out; primary_conninfo, primary_slot_name, synchronous_standby_names '' in postgresql.auto.conf; standby.signal; start", host: from, unitStart: true,
			line: func() string {
				return "cd " + lay.Data + " && rm -rf pg_replslot/replication && sed -i -e '/^primary_conninfo/d' -e '/^primary_slot_name/d' -e '/^synchronous_standby_names/d' postgresql.auto.conf && " +
					`printf '%s\n' "primary_conninfo = 'user=replication password=` + benchReplicationPassword + ` host=` + to + ` port=5432 application_name=inmanta'" "primary_slot_name = 'replication'" "synchronous_standby_names = ''" >> postgresql.auto.conf && ` +
					"touch standby.signal && chown postgres:postgres postgresql.auto.conf standby.signal && t=$(date +%s%N) && systemctl start " + lay.Unit + " && echo $(( $(date +%s%N) - t ))"
			}},
		{name: "ssh new primary: until the old primary streams (every 10 ms); synchronous_standby_names = 'inmanta', reload", host: to,
			line: func() string {
				return `cd / && for i in $(seq 3000); do r=$(runuser -u postgres -- ` + lay.Bin + `/psql -XAtq -c "SELECT state FROM pg_stat_replication WHERE application_name = 'inmanta' AND host(client_addr) = '` + from + `'"); [ "$r" = streaming ] && break; sleep 0.01; done; ` +
					`[ "$r" = streaming ] || { echo "the old primary does not stream: ${r:-absent}" >&2; exit 1; }; ` +
					psql + ` -c "ALTER SYSTEM SET synchronous_standby_names = 'inmanta'" -c 'SELECT pg_reload_conf()' >/dev/null`
			}},
		{name: "ssh orch: sed database.cfg, start", host: orch,
			line: func() string {
				return "sed -i 's/^host=.*/host=" + to + "/' /etc/inmanta/inmanta.d/database.cfg && systemctl start inmanta-server"
			}},
		{name: "ssh orch: health polled every 10 ms until 200", host: orch, line: func() string { return healthPoll }},
	}
	start := time.Now()
	for _, st := range steps {
		t := time.Now()
		out, err := s.ssh(st.host, st.line())
		took := time.Since(t)
		if err != nil {
			r.phases = append(r.phases, phase{st.name, took})
			return err
		}
		if st.unitStart {
			ns, perr := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
			if perr != nil {
				return fmt.Errorf("ssh %s: the time of its systemctl start: %q", st.host, out)
			}
			r.phases = append(r.phases, phase{strings.TrimSuffix(st.name, "; start") + " (without the start)", took - time.Duration(ns)},
				phase{"the old primary's unit started (systemctl start, timed on the host)", time.Duration(ns)})
		} else {
			r.phases = append(r.phases, phase{st.name, took})
		}
		if st.after != nil {
			if err := st.after(out); err != nil {
				return err
			}
		}
		if st.writable {
			r.writable = time.Since(start)
		}
	}
	r.healthy = time.Since(start)
	return nil
}

// printSwitchover prints the switchover's table: per way and direction,
// the medians of each phase and of the totals.
func printSwitchover(got map[string]map[swDirection][]swRound, commits int, last string) {
	med := medianBy[swRound]
	eachOf := func(rs []swRound, f func(swRound) time.Duration) string {
		var s []string
		for _, r := range rs {
			s = append(s, ms(f(r)))
		}
		return strings.Join(s, ", ")
	}
	fmt.Printf("PostgreSQL laid out as %s packages it (unit %s).\n", *swLayout, lab.Layouts[*swLayout].Unit)
	fmt.Printf("Median of %d rounds of each way and direction, on one lab (pg1 → pg2 and back per round, the ways alternated), a client committing in a loop throughout (%d commits returned, every one of them on %s at the end); load average at the end %s.\n\n", *runs, commits, last, loadavg())
	head := "| way | phase |"
	sep := "|---|---|"
	for _, d := range swDirections {
		head += " " + d.String() + " |"
		sep += "---|"
	}
	fmt.Println(head)
	fmt.Println(sep)
	type total struct {
		name string
		f    func(swRound) time.Duration
	}
	totals := []total{
		{"**start → writes available on the new primary** (the procedure's view)", func(r swRound) time.Duration { return r.writable }},
		{"**start → the client's first commit on the new primary**", func(r swRound) time.Duration { return r.firstCommit }},
		{"**the client's longest time without a commit**", func(r swRound) time.Duration { return r.gap }},
		{"**start → orchestrator healthy on the new primary**", func(r swRound) time.Duration { return r.healthy }},
		{"start → the command's end", func(r swRound) time.Duration { return r.total }},
	}
	for _, way := range swWays {
		for _, name := range phaseNames(got[way]) {
			line := fmt.Sprintf("| %s | %s |", way, name)
			for _, d := range swDirections {
				line += " " + ms(med(got[way][d], func(r swRound) time.Duration { return phaseNamed(r, name) })) + " |"
			}
			fmt.Println(line)
		}
		for _, t := range totals {
			line := fmt.Sprintf("| %s | %s |", way, t.name)
			for _, d := range swDirections {
				line += fmt.Sprintf(" %s (%s) |", ms(med(got[way][d], t.f)), eachOf(got[way][d], t.f))
			}
			fmt.Println(line)
		}
	}
	fmt.Println()
	for _, d := range swDirections {
		rb, bare := got[swRunbook][d], got[swBare][d]
		fmt.Printf("%s: runbook / bare: writes available %.2f, the client's first commit %.2f, orchestrator healthy %.2f\n", d,
			ratio(med(rb, totals[0].f), med(bare, totals[0].f)), ratio(med(rb, totals[1].f), med(bare, totals[1].f)), ratio(med(rb, totals[3].f), med(bare, totals[3].f)))
	}
	gaveUp, rounds := 0, 0
	for _, way := range swWays {
		for _, d := range swDirections {
			for _, r := range got[way][d] {
				rounds++
				if r.probeGaveUp {
					gaveUp++
				}
			}
		}
	}
	fmt.Printf("The old primary's start: pg_ctlcluster logged \"connection to the database failed, disabling startup checks\" (its psql probes of a warm standby, 10 failures 0.5 s apart) in %d of %d switchovers.\n", gaveUp, rounds)
	for _, d := range swDirections {
		for i, r := range got[swRunbook][d] {
			fmt.Printf("\n%s, %s, round %d, guards and steps of 100 ms or more:", swRunbook, d, i+1)
			for _, p := range r.slow {
				fmt.Printf(" %s %s;", p.name, ms(p.d))
			}
			fmt.Println()
		}
	}
}

// phaseNames are the phases of a way's rounds, in the order they first
// appear (a phase only some rounds have is among them).
func phaseNames(byDir map[swDirection][]swRound) []string {
	var names []string
	seen := map[string]bool{}
	for _, d := range swDirections {
		for _, r := range byDir[d] {
			for _, p := range r.phases {
				if !seen[p.name] {
					seen[p.name] = true
					names = append(names, p.name)
				}
			}
		}
	}
	return names
}

// phaseNamed is a round's time in the phase of that name (0 when it has
// none).
func phaseNamed(r swRound, name string) time.Duration {
	var d time.Duration
	for _, p := range r.phases {
		if p.name == name {
			d += p.d
		}
	}
	return d
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
