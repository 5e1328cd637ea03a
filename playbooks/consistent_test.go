package playbooks_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/testpg"
)

// consistentGuard returns pg-ha/promote-standby's guard that refuses a
// standby short of its consistent recovery point: its name, where it
// stands among the guards, and its command, as bundled.
func consistentGuard(t *testing.T) (index int, command string) {
	t.Helper()
	doc := bundled[struct {
		Require []struct {
			Name    string `yaml:"name"`
			Assert  string `yaml:"assert"`
			SSHExec struct {
				Command  string `yaml:"command"`
				ReadOnly bool   `yaml:"read_only"`
			} `yaml:"ssh-exec"`
		} `yaml:"require"`
	}](t, "pg-ha/promote-standby")
	for i, g := range doc.Require {
		if strings.HasPrefix(g.Name, "the standby has reached a consistent state") {
			if !g.SSHExec.ReadOnly || g.Assert != "result.reachable && result.exit_code == 0" {
				t.Fatalf("the consistency guard must be read-only and pass only on exit 0: read_only %v, assert %q", g.SSHExec.ReadOnly, g.Assert)
			}
			return i, g.SSHExec.Command
		}
	}
	t.Fatal("pg-ha/promote-standby has no guard \"the standby has reached a consistent state\"")
	return 0, ""
}

// rejoinConsistent runs pg-ha/rejoin's wait for the node's consistency:
// one poll of its probe on data, as bundled, and whether the wait ends.
func rejoinConsistent(t *testing.T, data string) (string, bool) {
	t.Helper()
	doc := bundled[struct {
		Steps []struct {
			ID        string `yaml:"id"`
			WaitUntil struct {
				Probe struct {
					SSHExec struct {
						Command string `yaml:"command"`
					} `yaml:"ssh-exec"`
				} `yaml:"probe"`
				Until string `yaml:"until"`
			} `yaml:"wait-until"`
		} `yaml:"steps"`
	}](t, "pg-ha/rejoin")
	for _, st := range doc.Steps {
		if st.ID != "consistent" {
			continue
		}
		if st.WaitUntil.Until != `result.reachable && result.stdout startsWith "consistent"` {
			t.Fatalf("rejoin's consistent step waits until %q", st.WaitUntil.Until)
		}
		cmd := exec.Command("sh", "-c", st.WaitUntil.Probe.SSHExec.Command)
		cmd.Env = append(os.Environ(), "BIN="+testpg.Bin, "DATA="+data, "NODE=pg1", "WAL_CONSISTENT="+walConsistent(t))
		asPostgres(t, cmd)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("rejoin's consistent probe: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out)), strings.HasPrefix(string(out), "consistent")
	}
	t.Fatal("pg-ha/rejoin has no step consistent")
	return "", false
}

// walConsistent is the wal_consistent function of
// shared/consistent.vars.yaml, as bundled.
func walConsistent(t *testing.T) string {
	t.Helper()
	return sharedFunction(t, "consistent", "wal_consistent")
}

// sharedFunction returns the var name of the bundled
// shared/FILE.vars.yaml, which must hold the shell function of that name.
func sharedFunction(t *testing.T, file, name string) string {
	t.Helper()
	path := "shared/" + file + ".vars.yaml"
	fn := bundled[struct{ Vars map[string]yaml.Node }](t, path).Vars[name].Value
	if !strings.Contains(fn, name+"()") {
		t.Fatalf("%s: no %s function", path, name)
	}
	return fn
}

// asPostgres runs cmd as the postgres user when this process is root, as
// the playbook's become: postgres does.
func asPostgres(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if uid, gid, root := postgresIDs(t); root {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Dir = "/"
	}
}

// postgresIDs returns the postgres user's ids when this process is root
// (whose files and commands the tests hand to postgres); root is false
// otherwise, when everything already is the test user's.
func postgresIDs(t *testing.T) (uid, gid int, root bool) {
	t.Helper()
	if os.Geteuid() != 0 {
		return 0, 0, false
	}
	uid, gid, err := testpg.PostgresIDs()
	if err != nil {
		t.Fatal(err)
	}
	return uid, gid, true
}

// judgeConsistent runs the guard's command on the data directory data and
// returns its output and exit status.
func judgeConsistent(t *testing.T, data string) (string, int) {
	t.Helper()
	_, command := consistentGuard(t)
	cmd := exec.Command("sh", "-c", command)
	cmd.Env = append(os.Environ(), "BIN="+testpg.Bin, "DATA="+data, "NODE=pg1", "OLD=pg2", "WAL_CONSISTENT="+walConsistent(t))
	return statusAsPostgres(t, cmd)
}

// statusAsPostgres runs cmd as postgres (see asPostgres) and returns its
// output, trimmed, and its exit status; the test fails if it did not run.
func statusAsPostgres(t *testing.T, cmd *exec.Cmd) (string, int) {
	t.Helper()
	asPostgres(t, cmd)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out)), code
}

// pgCtl runs pg_ctl as postgres on data.
func pgCtl(t *testing.T, data string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(testpg.Bin, "pg_ctl"), append([]string{"-D", data}, args...)...)
	asPostgres(t, cmd)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// controlField is one field of pg_controldata's output for data.
func controlField(t *testing.T, data, name string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(testpg.Bin, "pg_controldata"), "-D", data)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	asPostgres(t, cmd)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_controldata: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("pg_controldata has no %q", name)
	return ""
}

// TestPromoteRefusesInconsistentStandby makes, with real PostgreSQL 15
// clusters, the standby the lab's failure left: an old primary rewound
// (pg_rewind from the live new primary, which sets the node's minimum
// recovery point to the new primary's WAL position at its end) that has
// the WAL only up to the last record before that point when the new
// primary loses power. rejoin's wait for consistency does not end on it
// (it passes a consistent standby). promote-standby's guard refuses it, with the server down and up, saying what it
// needs and what to do, and changes nothing (every file of the data
// directory kept, stopped; still a standby, running); the guard passes a
// consistent standby. The refusal is not spurious: pg_ctl promote on that
// node makes PostgreSQL exit with "WAL ends before consistent recovery
// point", as on the lab.
func TestPromoteRefusesInconsistentStandby(t *testing.T) {
	p := testpg.Start(t, "wal_level=replica", "max_wal_senders=5", "wal_log_hints=on", "wal_keep_size=1GB")
	q := testpg.StartStandby(t, p, "wal_log_hints=on", "hot_standby=off", "wal_keep_size=1GB")
	p.Psql(t, "CREATE TABLE t (v int)")
	caughtUp(t, p)
	// A consistent warm standby (hot_standby = off: no query answers), up.
	if out, code := judgeConsistent(t, q.Data); code != 0 || !strings.Contains(out, "consistent") {
		t.Errorf("a consistent standby, running: want passed, got status %d:\n%s", code, out)
	}
	if out, done := rejoinConsistent(t, q.Data); !done {
		t.Errorf("rejoin's wait on a consistent standby: want done, got:\n%s", out)
	}

	min := promoteAndRewind(t, p, q, "")
	// The new primary loses power: what it had not flushed is gone.
	if err := q.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The node received the new primary's WAL only up to the start of the
	// last record before that point (as the lab's node, 328 bytes short):
	// the rest of the segment, what it never got, is zeros.
	cut := cutLastRecord(t, p.Data, min)
	standbyOf(t, p, q, "off")

	want := func(out string, code int, when string) {
		t.Helper()
		if code != 1 || !strings.HasPrefix(out, "pg1 has not reached a consistent state: it needs WAL up to "+min+" on timeline 2 and holds it only up to "+cut+" (pg_waldump reading from ") ||
			!strings.Contains(out, "the rest is WAL it never received (the old primary pg2 had it") ||
			!strings.Contains(out, "promoting it would stop it") || !strings.Contains(out, "bring the old primary pg2 back") || !strings.Contains(out, "pg-ha/add-standby") {
			t.Errorf("%s: want refused (status 1) naming %s on timeline 2 and what to do, got status %d:\n%s", when, min, code, out)
		}
	}
	// Down: the guard reads the files and writes none.
	before := tree(t, p.Data)
	out, code := judgeConsistent(t, p.Data)
	want(out, code, "the rewound node, stopped")
	t.Log(out)
	after := tree(t, p.Data)
	for f, v := range before {
		if after[f] != v {
			t.Errorf("the guard changed %s", f)
		}
	}
	if len(after) != len(before) {
		t.Errorf("the guard made or removed files: %d entries, were %d", len(after), len(before))
	}

	// rejoin does not report such a node done: it waits, saying for what.
	if out, done := rejoinConsistent(t, p.Data); done || !strings.HasPrefix(out, "not yet: pg1 needs the WAL up to "+min+" on timeline 2 and holds it up to "+cut+" (pg_waldump reading from ") ||
		!strings.Contains(out, "invalid record length at "+cut+": wanted 24, got 0") {
		t.Errorf("rejoin's wait on the rewound node short of %s: want not yet, got:\n%s", min, out)
	}

	// Up, waiting for WAL from a primary that is gone.
	startStandby(t, p)
	out, code = judgeConsistent(t, p.Data)
	want(out, code, "the rewound node, running")
	if got := controlField(t, p.Data, "Database cluster state"); got != "in archive recovery" {
		t.Errorf("after the guard the node is %q, want still in archive recovery", got)
	}
	if _, err := os.Stat(filepath.Join(p.Data, "standby.signal")); err != nil {
		t.Errorf("after the guard: %v", err)
	}

	// What the guard spares: PostgreSQL ends recovery short of the
	// consistent point by stopping.
	promoteStops(t, p, "the rewound node")
}

// chownPostgres gives path to the postgres user when this process is
// root, as a file PostgreSQL made would be.
func chownPostgres(t *testing.T, path string) {
	t.Helper()
	if uid, gid, root := postgresIDs(t); root {
		if err := os.Chown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
}

// cutLastRecord zeros the node's WAL from the start of the last record
// that ends at or before min (on timeline 2) to the end of its segment,
// and returns that start.
func cutLastRecord(t *testing.T, data, min string) string {
	t.Helper()
	var hi, lo uint64
	if _, err := fmt.Sscanf(min, "%X/%X", &hi, &lo); err != nil {
		t.Fatal(err)
	}
	const segSize = 16 << 20
	end := hi<<32 | lo
	segno := (end - 1) / segSize
	seg := filepath.Join(data, "pg_wal", fmt.Sprintf("%08X%08X%08X", 2, segno/(1<<32/segSize), segno%(1<<32/segSize)))
	start := segno * segSize
	cmd := exec.Command(filepath.Join(testpg.Bin, "pg_waldump"), "-p", filepath.Join(data, "pg_wal"), "-t", "2",
		"-s", fmt.Sprintf("%X/%X", start>>32, start&0xFFFFFFFF), "-e", min)
	asPostgres(t, cmd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pg_waldump up to %s: %v\n%s", min, err, out)
	}
	last := ""
	for _, l := range strings.Split(string(out), "\n") {
		if i := strings.Index(l, " lsn: "); i >= 0 {
			last = strings.SplitN(l[i+6:], ",", 2)[0]
		}
	}
	if _, err := fmt.Sscanf(last, "%X/%X", &hi, &lo); err != nil {
		t.Fatalf("no record before %s in %s:\n%s", min, seg, out)
	}
	off := int64(hi<<32|lo) - int64(start)
	f, err := os.OpenFile(seg, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, segSize-off), off); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%X/%X", hi, lo)
}

// rewoundNode makes, with real clusters, an old primary p rewound by
// pg_rewind from the live new primary q (a promoted standby of p, with
// writes and a checkpoint after the promotion): lastly q runs last
// before the rewind, whose end is p's minimum recovery point. It returns
// p (stopped, with backup_label) and q (running) and p's minimum.
func rewoundNode(t *testing.T, last string) (p, q *testpg.Server, min string) {
	t.Helper()
	p = testpg.Start(t, "wal_level=replica", "max_wal_senders=5", "wal_log_hints=on", "wal_keep_size=1GB", "autovacuum=off")
	q = testpg.StartStandby(t, p, "wal_log_hints=on", "wal_keep_size=1GB", "autovacuum=off")
	p.Psql(t, "CREATE TABLE t (v int)")
	caughtUp(t, p)
	return p, q, promoteAndRewind(t, p, q, last)
}

// promoteAndRewind promotes q, the standby of p that has caught up with
// it; p writes after the switch point and stops, q writes and
// checkpoints, then runs last if given; pg_rewind rewinds p from q. It
// returns p's minimum recovery point, which must be on q's timeline 2.
func promoteAndRewind(t *testing.T, p, q *testpg.Server, last string) (min string) {
	t.Helper()
	if out, err := pgCtl(t, q.Data, "promote", "-w", "-t", "60"); err != nil {
		t.Fatalf("promoting the standby: %v\n%s", err, out)
	}
	// The old primary writes after the switch point: it must be rewound.
	p.Psql(t, "INSERT INTO t VALUES (-1)")
	stop(t, p)
	q.Psql(t, "INSERT INTO t SELECT generate_series(1, 10)")
	q.Psql(t, "CHECKPOINT")
	if last != "" {
		q.Psql(t, last)
	}
	rewind := exec.Command(filepath.Join(testpg.Bin, "pg_rewind"), "-D", p.Data,
		"--source-server=host="+q.Socket+" port="+strconv.Itoa(q.Port)+" user=postgres dbname=postgres")
	asPostgres(t, rewind)
	if out, err := rewind.CombinedOutput(); err != nil {
		t.Fatalf("pg_rewind: %v\n%s", err, out)
	}
	if tl := controlField(t, p.Data, "Min recovery ending loc's timeline"); tl != "2" {
		t.Fatalf("the rewound node's minimum recovery point is on timeline %s, want 2", tl)
	}
	return controlField(t, p.Data, "Minimum recovery ending location")
}

// asStandby makes the stopped node p a standby of q and starts it.
func asStandby(t *testing.T, p, q *testpg.Server, hotStandby string) {
	t.Helper()
	standbyOf(t, p, q, hotStandby)
	startStandby(t, p)
}

// standbyOf makes the stopped node p a standby of q: standby.signal, and
// the settings in postgresql.auto.conf.
func standbyOf(t *testing.T, p, q *testpg.Server, hotStandby string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(p.Data, "standby.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := "primary_conninfo = 'host=" + q.Socket + " port=" + strconv.Itoa(q.Port) + " user=postgres'\nhot_standby = " + hotStandby + "\nport = " + strconv.Itoa(p.Port) + "\nunix_socket_directories = '" + p.Dir + "'\nlisten_addresses = ''\n"
	if err := os.WriteFile(filepath.Join(p.Data, "postgresql.auto.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"standby.signal", "postgresql.auto.conf"} {
		chownPostgres(t, filepath.Join(p.Data, f))
	}
}

// startStandby starts the stopped node p, logging to standby.log; it is
// stopped when the test ends.
func startStandby(t *testing.T, p *testpg.Server) {
	t.Helper()
	if out, err := pgCtl(t, p.Data, "start", "-w", "-t", "60", "-l", filepath.Join(p.Dir, "standby.log")); err != nil {
		t.Fatalf("starting the rewound node: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = pgCtl(t, p.Data, "stop", "-m", "immediate") })
}

// lsn is the position of a WAL location X/Y.
func lsn(t *testing.T, s string) uint64 {
	t.Helper()
	var hi, lo uint64
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		t.Fatalf("WAL location %q: %v", s, err)
	}
	return hi<<32 | lo
}

// TestPromotePassesRewoundStandbyAtSegmentStart: a rewound node whose
// minimum recovery point is one where no WAL record begins between the
// start of its segment and it (after a segment switch on the new primary:
// the segment's start + 0x28; or the end of a record that began in the
// previous segment) holds the WAL once it streamed past that point, and
// is consistent. The guard passes it running as a standby (hot_standby
// off: its WAL read from the control file's REDO point, across the
// timeline switch; on: it accepts connections) and stopped by a crash
// (the WAL read), rejoin's wait ends, and pg_ctl promote succeeds once
// the new primary is gone.
func TestPromotePassesRewoundStandbyAtSegmentStart(t *testing.T) {
	const seg = 16 << 20
	for _, c := range []struct {
		name, last, hot string
		at              func(off uint64) bool
	}{
		{"after pg_switch_wal", "SELECT pg_switch_wal()", "off", func(off uint64) bool { return off == 0x28 }},
		{"after a record crossing into the segment",
			"SELECT pg_logical_emit_message(false, 'x', repeat('a', (16777216 - (pg_current_wal_insert_lsn() - '0/0') % 16777216 + 2000)::int))",
			"on", func(off uint64) bool { return off > 0x28 && off < 0x10000 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, q, min := rewoundNode(t, c.last)
			if off := lsn(t, min) % seg; !c.at(off) {
				t.Fatalf("the minimum recovery point %s is at offset %#x of its segment: not the case built", min, off)
			}
			// The new primary flushes past min (rejoin's flushed step).
			q.Psql(t, "SELECT txid_current()")
			asStandby(t, p, q, c.hot)
			standbyReached(t, q, "replay_lsn >= '"+min+"'", "the rewound node does not replay up to its minimum recovery point")
			// No record begins in min's segment before min: reading from
			// the segment's start finds none.
			start := lsn(t, min) / seg * seg
			dump := exec.Command(filepath.Join(testpg.Bin, "pg_waldump"), "-p", filepath.Join(p.Data, "pg_wal"), "-t", "2",
				"-s", fmt.Sprintf("%X/%X", start>>32, start&0xFFFFFFFF), "-e", min)
			asPostgres(t, dump)
			if out, err := dump.CombinedOutput(); err == nil || !strings.Contains(string(out), "could not find a valid record after") {
				t.Fatalf("pg_waldump from the start of %s's segment: want no record found, got %v:\n%s", min, err, out)
			}
			if got := controlField(t, p.Data, "Minimum recovery ending location"); got != min {
				t.Fatalf("the running node's minimum recovery point moved from %s to %s: not the case built", min, got)
			}
			want := "its WAL reads through from the REDO point of its latest checkpoint"
			if c.hot == "on" {
				want = "accepts connections"
			}
			out, code := judgeConsistent(t, p.Data)
			if code != 0 || !strings.Contains(out, want) {
				t.Errorf("the rewound node past its minimum recovery point, running (hot_standby %s): want passed (%s), got status %d:\n%s", c.hot, want, code, out)
			}
			t.Log(out)
			if out, done := rejoinConsistent(t, p.Data); !done {
				t.Errorf("rejoin's wait on the rewound node: want done, got:\n%s", out)
			}
			// Crashed: judged from its files alone.
			if out, err := pgCtl(t, p.Data, "stop", "-m", "immediate", "-w"); err != nil {
				t.Fatalf("stopping the node: %v\n%s", err, out)
			}
			out, code = judgeConsistent(t, p.Data)
			if code != 0 || !strings.Contains(out, "its WAL reads through from the REDO point of its latest checkpoint") {
				t.Errorf("the rewound node past its minimum recovery point, crashed: want passed, got status %d:\n%s", code, out)
			}
			if err := q.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if out, err := pgCtl(t, p.Data, "start", "-w", "-t", "60", "-l", filepath.Join(p.Dir, "standby.log")); err != nil {
				t.Fatalf("starting the node again: %v\n%s", err, out)
			}
			if out, err := pgCtl(t, p.Data, "promote", "-w", "-t", "60"); err != nil {
				t.Fatalf("pg_ctl promote on the node the guard passed: %v\n%s\n%s", err, out, mustRead(t, filepath.Join(p.Dir, "standby.log")))
			}
		})
	}
}

// TestPromoteRefusesGapBeforeMinSegment: a rewound node that holds the
// segment of its minimum recovery point whole, but whose WAL breaks off
// in an earlier segment it must replay (its tail zeros) is refused,
// stopped and running, saying where the WAL breaks and that WAL follows
// the gap; pg_ctl promote on it ends in "WAL ends before consistent
// recovery point".
func TestPromoteRefusesGapBeforeMinSegment(t *testing.T) {
	const seg = 16 << 20
	p, q, min := rewoundNode(t, "INSERT INTO t SELECT generate_series(1, 600000)")
	if err := q.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	segno := (lsn(t, min)-1)/seg - 1
	if from := lsn(t, controlField(t, p.Data, "Latest checkpoint's REDO location")); from/seg >= segno {
		t.Fatalf("the rewound node's WAL from %X to %s spans too few segments", from, min)
	}
	gap := filepath.Join(p.Data, "pg_wal", fmt.Sprintf("%08X%08X%08X", 2, segno/(1<<32/seg), segno%(1<<32/seg)))
	f, err := os.OpenFile(gap, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, seg/2), seg/2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	brk := fmt.Sprintf("%X/%X", (segno*seg+seg/2)>>32, (segno*seg+seg/2)&0xFFFFFFFF)
	if err := os.WriteFile(filepath.Join(p.Data, "standby.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	chownPostgres(t, filepath.Join(p.Data, "standby.signal"))
	want := func(out string, code int, when string) {
		t.Helper()
		if code != 1 || !strings.HasPrefix(out, "pg1 has not reached a consistent state: it needs the WAL up to "+min+" on timeline 2, and its WAL breaks off before that") ||
			!strings.Contains(out, "though it holds WAL after the break") || !strings.Contains(out, "promoting it would stop it") || strings.Contains(out, "pg2") {
			t.Errorf("%s: want refused (status 1) for the break near %s before %s, got status %d:\n%s", when, brk, min, code, out)
		}
	}
	out, code := judgeConsistent(t, p.Data)
	want(out, code, "the node with a gap, stopped")
	t.Log(out)
	if out, done := rejoinConsistent(t, p.Data); done {
		t.Errorf("rejoin's wait on the node with a gap: want not yet, got:\n%s", out)
	}
	asStandby(t, p, q, "off")
	out, code = judgeConsistent(t, p.Data)
	want(out, code, "the node with a gap, running")
	promoteStops(t, p, "the node with a gap")
}

// TestConsistentGuardSaysWhatItCannotJudge: promote-standby's guard
// refuses a data directory whose control file cannot be read, saying so
// and not blaming missing WAL on the old primary; and a node in archive
// recovery with recovery.signal and no standby.signal (a point-in-time
// restore), which it took for promoted.
func TestConsistentGuardSaysWhatItCannotJudge(t *testing.T) {
	gone := filepath.Join(t.TempDir(), "data")
	if out, code := judgeConsistent(t, gone); code != 1 || !strings.HasPrefix(out, "pg1 cannot be judged: pg_controldata cannot read "+gone) || strings.Contains(out, "pg2") {
		t.Errorf("no control file: want refused saying pg_controldata cannot read it, got status %d:\n%s", code, out)
	}
	p := testpg.Start(t, "wal_level=replica", "max_wal_senders=5")
	q := testpg.StartStandby(t, p, "hot_standby=off")
	if err := os.Rename(filepath.Join(q.Data, "standby.signal"), filepath.Join(q.Data, "recovery.signal")); err != nil {
		t.Fatal(err)
	}
	if got := controlField(t, q.Data, "Database cluster state"); got != "in archive recovery" {
		t.Fatalf("the restore is %q, want in archive recovery", got)
	}
	if out, code := judgeConsistent(t, q.Data); code != 1 || !strings.Contains(out, "point-in-time restore, not a standby") {
		t.Errorf("a point-in-time restore: want refused, got status %d:\n%s", code, out)
	}
}

// TestPromoteRefusesMissingRecordAtSegmentStart: a rewound node whose
// minimum recovery point is its segment's start + 0x28 (a segment switch
// on the new primary) and whose segment there has its page header but
// zeros from that point on (the record that begins at the minimum not
// received) is refused, stopped and running: the record before ends at
// the segment boundary, short of the minimum. pg_ctl promote on it ends
// in "WAL ends before consistent recovery point".
func TestPromoteRefusesMissingRecordAtSegmentStart(t *testing.T) {
	const seg = 16 << 20
	p, q, min := rewoundNode(t, "SELECT pg_switch_wal()")
	if off := lsn(t, min) % seg; off != 0x28 {
		t.Fatalf("the minimum recovery point %s is at offset %#x of its segment, want 0x28", min, off)
	}
	q.Psql(t, "SELECT txid_current()")
	asStandby(t, p, q, "off")
	standbyReached(t, q, "flush_lsn >= '"+min+"'", "the rewound node does not receive its minimum recovery point")
	if out, err := pgCtl(t, p.Data, "stop", "-m", "immediate", "-w"); err != nil {
		t.Fatalf("stopping the node: %v\n%s", err, out)
	}
	if err := q.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	segno := lsn(t, min) / seg
	f, err := os.OpenFile(filepath.Join(p.Data, "pg_wal", fmt.Sprintf("%08X%08X%08X", 2, segno/(1<<32/seg), segno%(1<<32/seg))), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, seg-0x28), 0x28); err != nil {
		t.Fatal(err)
	}
	f.Close()
	boundary := fmt.Sprintf("%X/%X", segno*seg>>32, segno*seg&0xFFFFFFFF)
	want := func(out string, code int, when string) {
		t.Helper()
		if code != 1 || !strings.HasPrefix(out, "pg1 has not reached a consistent state: it needs WAL up to "+min+" on timeline 2 and holds it only up to "+boundary+" (pg_waldump reading from the record at "+min) ||
			!strings.Contains(out, "promoting it would stop it") {
			t.Errorf("%s: want refused (status 1), got status %d:\n%s", when, code, out)
		}
	}
	out, code := judgeConsistent(t, p.Data)
	want(out, code, "the node without the record at its minimum, crashed")
	t.Log(out)
	if out, err := pgCtl(t, p.Data, "start", "-w", "-t", "60", "-l", filepath.Join(p.Dir, "standby.log")); err != nil {
		t.Fatalf("starting the node again: %v\n%s", err, out)
	}
	out, code = judgeConsistent(t, p.Data)
	want(out, code, "the node without the record at its minimum, running")
	promoteStops(t, p, "the node without the record at its minimum")
}

// TestPromotePassesStandbyAheadOfAForkedTimeline: a warm standby x ahead
// of another standby y that was promoted (y's timeline 2 leaves timeline
// 1 before x's minimum recovery point) and then pointed at y fetches y's
// 00000002.history and stays on timeline 1 ("forked off current database
// system timeline before current recovery point"). It holds its WAL and
// is consistent: running, the guard passes it (it refused it before,
// reading on timeline 2) and pg_ctl promote succeeds; a copy of it with
// no server of its own, which PostgreSQL would not start with that
// history file, is refused saying so, though its postmaster.pid names a
// live postmaster (x's).
func TestPromotePassesStandbyAheadOfAForkedTimeline(t *testing.T) {
	p := testpg.Start(t, "wal_level=replica", "max_wal_senders=5", "wal_log_hints=on", "wal_keep_size=1GB", "autovacuum=off", "checkpoint_timeout=1h")
	p.Psql(t, "CREATE TABLE t (v int)")
	// Small shared buffers: replay evicts pages, moving the minimum
	// recovery point along (PostgreSQL's UpdateMinRecoveryPoint).
	x := testpg.StartStandby(t, p, "hot_standby=off", "shared_buffers=1MB")
	y := testpg.StartStandby(t, p)
	stop(t, y)
	p.Psql(t, "INSERT INTO t SELECT generate_series(1, 300000)")
	caughtUp(t, p)
	stop(t, p)
	// y, promoted: its own settings in postgresql.auto.conf, p's conninfo gone.
	conf := "port = " + strconv.Itoa(y.Port) + "\nunix_socket_directories = '" + y.Dir + "'\nlisten_addresses = ''\n"
	if err := os.WriteFile(filepath.Join(y.Data, "postgresql.auto.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	chownPostgres(t, filepath.Join(y.Data, "postgresql.auto.conf"))
	if out, err := pgCtl(t, y.Data, "start", "-w", "-t", "60", "-l", filepath.Join(y.Dir, "y.log")); err != nil {
		t.Fatalf("starting y: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = pgCtl(t, y.Data, "stop", "-m", "immediate") })
	if out, err := pgCtl(t, y.Data, "promote", "-w", "-t", "60"); err != nil {
		t.Fatalf("promoting y: %v\n%s", err, out)
	}
	y.Psql(t, "CREATE TABLE u (v int)")
	// x pointed at y (a later line wins), reloaded.
	f, err := os.OpenFile(filepath.Join(x.Data, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("primary_conninfo = 'host=" + y.Socket + " port=" + strconv.Itoa(y.Port) + " user=postgres'\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := x.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	history := filepath.Join(x.Data, "pg_wal", "00000002.history")
	for i := 0; ; i++ {
		if _, err := os.Stat(history); err == nil {
			break
		}
		if i == 300 {
			t.Fatal("x did not fetch y's 00000002.history")
		}
		time.Sleep(100 * time.Millisecond)
	}
	fork := strings.Fields(mustRead(t, history))[1]
	min := controlField(t, x.Data, "Minimum recovery ending location")
	if controlField(t, x.Data, "Min recovery ending loc's timeline") != "1" || lsn(t, min) <= lsn(t, fork) {
		t.Fatalf("set-up: x's minimum recovery point %s is not past timeline 2's fork %s on timeline 1", min, fork)
	}
	out, code := judgeConsistent(t, x.Data)
	if code != 0 || !strings.Contains(out, "its WAL reads through") {
		t.Errorf("x running, ahead of timeline 2's fork at %s (minimum %s): want passed, got status %d:\n%s", fork, min, code, out)
	}
	if out, done := rejoinConsistent(t, x.Data); !done {
		t.Errorf("rejoin's wait on x: want done, got:\n%s", out)
	}
	// A copy of x, no server of its own: PostgreSQL would refuse to start
	// it with timeline 2's history, and the guard says so. Its
	// postmaster.pid names x's live postmaster, which runs another data
	// directory (as a PID reused after a crash would).
	copied := filepath.Join(t.TempDir(), "x")
	if out, err := exec.Command("cp", "-a", x.Data, copied).CombinedOutput(); err != nil {
		t.Fatalf("copying x: %v\n%s", err, out)
	}
	chownPostgres(t, filepath.Dir(copied))
	out, code = judgeConsistent(t, copied)
	if code != 1 || !strings.Contains(out, "a timeline that leaves timeline 1 at "+fork+", before the minimum recovery point "+min) || strings.Contains(out, "pg2") {
		t.Errorf("x stopped with timeline 2's history: want refused naming the fork, got status %d:\n%s", code, out)
	}
	// The pass was right: with y gone, x promotes.
	if out, err := pgCtl(t, y.Data, "stop", "-m", "immediate"); err != nil {
		t.Fatalf("stopping y: %v\n%s", err, out)
	}
	if out, err := pgCtl(t, x.Data, "promote", "-w", "-t", "60"); err != nil {
		t.Fatalf("pg_ctl promote on x: %v\n%s", err, out)
	}
}

// promoteStops promotes the running node p (what names it) and wants
// PostgreSQL to stop it rather than end recovery: FATAL "WAL ends before
// consistent recovery point" in its standby.log.
func promoteStops(t *testing.T, p *testpg.Server, what string) {
	t.Helper()
	if out, err := pgCtl(t, p.Data, "promote", "-w", "-t", "30"); err == nil {
		t.Fatalf("pg_ctl promote on %s succeeded, want the server to stop:\n%s", what, out)
	}
	if log := mustRead(t, filepath.Join(p.Dir, "standby.log")); !strings.Contains(log, "FATAL:  WAL ends before consistent recovery point") {
		t.Errorf("the promoted node's log has no \"WAL ends before consistent recovery point\":\n%s", log)
	}
}

// caughtUp waits, for at most 30 s, until the standby streaming from p
// (its only one) has replayed all of p's WAL, as p's
// pg_stat_replication says.
func caughtUp(t *testing.T, p *testpg.Server) {
	t.Helper()
	standbyReached(t, p, "replay_lsn >= pg_current_wal_lsn()", "the standby does not catch up in 30 s")
}

// standbyReached waits, for at most 30 s, until cond holds of p's only
// standby, as a boolean over p's pg_stat_replication; otherwise the test
// fails with failure.
func standbyReached(t *testing.T, p *testpg.Server, cond, failure string) {
	t.Helper()
	for i := 0; strings.TrimSpace(p.Psql(t, "SELECT "+cond+" FROM pg_stat_replication")) != "t"; i++ {
		if i == 300 {
			t.Fatal(failure)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
