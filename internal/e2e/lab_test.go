// Package e2e holds the end-to-end tests that run on the lab: real hosts
// booted with systemd-nspawn, each with systemd, OpenSSH and PostgreSQL 15.
// They need root and systemd-container; .ci/run installs it.
package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/internal/lab"
	"github.com/runbook-dev/runbook/internal/testsshd"
)

// runbookBin is the runbook binary built for the tests: the lab copies it
// into the hosts as the orchestrator stand-in, and the tests run it as an
// operator would.
var runbookBin string

// stateDir keeps the journals and locks of the tests' runs.
var stateDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "runbook-e2e-bin")
	if err != nil {
		panic(err)
	}
	runbookBin = filepath.Join(dir, "runbook")
	stateDir = filepath.Join(dir, "state")
	// With the crash points the crash tests kill it at; inert otherwise.
	build := exec.Command("go", "build", "-tags", "crashpoints", "-o", runbookBin, "../../cmd/runbook")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building runbook:", err)
		os.Exit(1)
	}
	// A test binary that reaches -test.timeout panics without running
	// cleanups: its lab would stay up, and its nspawn processes would keep
	// the lock file descriptor a caller's flock(1) passed down, holding
	// every other lab user off. The labs still up shortly before that
	// moment are brought down.
	flag.Parse()
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, ok := f.Value.(flag.Getter).Get().(time.Duration); ok && d > 0 {
			margin := min(d/10, 30*time.Second)
			time.AfterFunc(d-margin, downLabsLeft)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// labsUp are the labs the tests booted and have not brought down yet.
var labsUp sync.Map // *lab.Lab → struct{}

// downLabsLeft brings down every lab still up, saying so.
func downLabsLeft() {
	labsUp.Range(func(k, _ any) bool {
		if _, mine := labsUp.LoadAndDelete(k); !mine {
			return true // its test's cleanup is bringing it down
		}
		l := k.(*lab.Lab)
		fmt.Fprintf(os.Stderr, "e2e: the test binary's timeout is near: bringing the lab in %s down\n", l.Dir)
		if err := l.Down(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: lab down %s: %v\n", l.Dir, err)
		}
		return true
	})
}

// startLab boots a lab in a directory of the test and tears it down at the
// end, checking that nothing is left.
func startLab(t *testing.T, hosts ...string) *lab.Lab {
	return startLabWith(t, lab.Options{Hosts: hosts})
}

func startLabWith(t *testing.T, opt lab.Options) *lab.Lab {
	hosts := opt.Hosts
	t.Helper()
	var missing []string
	for _, r := range lab.Check() {
		if !r.OK {
			missing = append(missing, r.What+" ("+r.Fix+")")
		}
	}
	testsshd.Require(t, len(missing) == 0, "the lab cannot run here: needs "+strings.Join(missing, ", "))
	l := &lab.Lab{Dir: filepath.Join("/var/tmp", fmt.Sprintf("runbook-e2e-%d", os.Getpid()))}
	start := time.Now()
	opt.Standin = runbookBin
	if _, err := l.Up(context.Background(), opt); err != nil {
		t.Fatal(err)
	}
	t.Logf("lab up with %d hosts in %.1fs", len(hosts), time.Since(start).Seconds())
	labsUp.Store(l, struct{}{})
	t.Cleanup(func() {
		if _, mine := labsUp.LoadAndDelete(l); !mine {
			return // brought down before the binary's timeout
		}
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
		assertNothingLeft(t, l)
	})
	return l
}

func assertNothingLeft(t *testing.T, l *lab.Lab) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left []string
		if out, _ := exec.Command("pgrep", "-f", "systemd-nspawn.*"+l.Dir).Output(); len(bytes.TrimSpace(out)) > 0 {
			left = append(left, "nspawn processes "+strings.Join(strings.Fields(string(out)), ","))
		}
		if mounts, _ := os.ReadFile("/proc/self/mounts"); bytes.Contains(mounts, []byte(l.Dir)) {
			left = append(left, "overlay mounts")
		}
		if out, _ := exec.Command("ip", "-o", "link", "show").Output(); bytes.Contains(out, []byte(lab.Bridge)) || bytes.Contains(out, []byte(" vb-")) {
			left = append(left, "network links")
		}
		if loops := l.Loops(); len(loops) > 0 {
			left = append(left, "loop devices "+strings.Join(loops, ", "))
		}
		if g := l.Cgroups(); len(g) > 0 {
			left = append(left, "control groups "+strings.Join(g, ", "))
		}
		if _, err := os.Stat(l.Dir); err == nil {
			left = append(left, "the lab directory")
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lab down left: %s", strings.Join(left, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runbook runs the runbook binary and returns its stdout and stderr.
func runbook(t *testing.T, env []string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(runbookBin, args...)
	cmd.Env = append(append(os.Environ(), "XDG_STATE_HOME="+stateDir), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// labJournals is the set of the journals in the state directory of the
// runs on the lab.
func labJournals() map[string]bool {
	m := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(stateDir, "runbook", "runs", "*.journal"))
	for _, f := range files {
		m[f] = true
	}
	return m
}

// killedRun is the id of the run whose journal the lab's state directory
// holds and before did not: the run just killed. The test fails if there
// is none.
func killedRun(t *testing.T, before map[string]bool) string {
	t.Helper()
	for f := range labJournals() {
		if !before[f] {
			return strings.TrimSuffix(filepath.Base(f), ".journal")
		}
	}
	t.Fatal("the killed run left no journal")
	return ""
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const probePlaybook = `version: 1
name: e2e/probe
steps:
  - id: postgresql
    name: PostgreSQL unit
    hosts: [postgres]
    parallel: 2
    systemd: {unit: postgresql@15-main}
    assert: result.active == "active" && result.sub == "running"
  - id: peer
    name: SQL as postgres through the host (peer authentication)
    hosts: [postgres]
    parallel: 2
    become: postgres
    sql:
      query: SELECT current_user AS who, pg_is_in_recovery() AS recovery
    assert: result.rows[0].who == "postgres" && result.rows[0].recovery == false
  - id: tunnel
    name: SQL over the SSH tunnel with the orchestrator's password
    host: pg1
    sql:
      via_ssh: true
      user: inmanta
      database: inmanta
      password: ${{ secrets.inmanta_password }}
      query: SELECT count(*) AS beats FROM standin_heartbeat
    assert: result.rows[0].beats > 0
  - id: health
    name: orchestrator stand-in health
    host: pg1
    http: {url: "http://127.0.0.1:8888/api/v2/health", via_ssh: true}
    assert: result.status == 200
secrets:
  inmanta_password: {env: INMANTA_PASSWORD}
`

func inmantaPassword(t *testing.T, l *lab.Lab) string {
	t.Helper()
	out, err := l.Exec(context.Background(), "pg1", "sed", "-n", "s/^password=//p", "/etc/inmanta/inmanta.d/database.cfg")
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestLab boots two hosts, probes each over SSH (systemd, SQL through the
// host and over the tunnel, the stand-in's API), powers one off, sees the
// clear unreachable error, and tears down leaving nothing.
func TestLab(t *testing.T) {
	l := startLab(t, "pg1", "pg2")
	mem, err := l.Memory()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("memory of the two hosts (PSS): %d MiB", mem>>20)
	if mem > 1536<<20 {
		t.Errorf("the two hosts use %d MiB, over 1.5 GiB", mem>>20)
	}
	pb := writeFile(t, "probe.yaml", probePlaybook)
	env := []string{"INMANTA_PASSWORD=" + inmantaPassword(t, l)}
	out, errOut, err := runbook(t, env, "run", "-i", l.InventoryPath(), pb)
	if err != nil {
		t.Fatalf("probe run: %v\n%s\n%s", err, out, errOut)
	}
	for _, want := range []string{"ok           PostgreSQL unit [pg1]", "ok           PostgreSQL unit [pg2]", "ok           orchestrator stand-in health [pg1]"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	status, _, _ := runbook(t, nil, "lab", "status", "--dir", l.Dir)
	if !strings.Contains(status, "pg1   10.231.0.11  true     true  running") {
		t.Errorf("lab status:\n%s", status)
	}
	// A partition cuts pg1 off the network; heal reconnects it.
	ping := writeFile(t, "ping.yaml", "version: 1\nname: ping\nsteps:\n  - host: pg1\n    ssh-exec: {command: hostname, read_only: true}\n    assert: trim(result.stdout) == \"pg1\"\n")
	if err := l.Fault(context.Background(), "pg1", lab.FaultPartition); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := runbook(t, nil, "run", "-i", l.InventoryPath(), ping); err == nil || !strings.Contains(errOut, "host pg1 is unreachable") {
		t.Errorf("pg1 partitioned: %v %s", err, errOut)
	}
	if err := l.Fault(context.Background(), "pg1", lab.FaultHeal); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := runbook(t, nil, "run", "-i", l.InventoryPath(), ping); err != nil {
		t.Errorf("pg1 healed: %v\n%s%s", err, out, errOut)
	}
	if err := l.Fault(context.Background(), "pg2", lab.FaultKill); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = runbook(t, env, "run", "-i", l.InventoryPath(), pb)
	if err == nil {
		t.Fatalf("the probe passed with pg2 powered off:\n%s", out)
	}
	// One clear line naming the step and host, then what to do: the run
	// changed nothing (a read-only probe), so it is run again, not resumed.
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if !strings.Contains(lines[0], `step "PostgreSQL unit" on pg2: host pg2 is unreachable`) || len(lines) != 2 || !strings.Contains(lines[1], "nothing was changed; once the cause is fixed, run it again") {
		t.Errorf("want one clear line naming the step and host, and that the run can simply be run again, got:\n%s", errOut)
	}
}

// TestLabStopAndStart shuts a host down in order and boots it again from
// its disk.
func TestLabStopAndStart(t *testing.T) {
	l := startLab(t, "pg1")
	if err := l.Fault(context.Background(), "pg1", lab.FaultStop); err != nil {
		t.Fatal(err)
	}
	sts, err := l.Status(context.Background())
	if err != nil || sts[0].Running {
		t.Fatalf("pg1 still running after stop: %+v %v", sts, err)
	}
	if _, err := l.Exec(context.Background(), "pg1", "true"); err == nil {
		t.Error("exec on a stopped host succeeded")
	}
	if err := l.Fault(context.Background(), "pg1", lab.FaultStart); err != nil {
		t.Fatal(err)
	}
	// The host keeps its disk: the orchestrator database created by up is
	// still there.
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := l.Exec(context.Background(), "pg1", "sh", "-c", "cd / && runuser -u postgres -- psql -X -A -t -c \"SELECT count(*) FROM pg_database WHERE datname = 'inmanta'\"")
		if err == nil && strings.TrimSpace(string(out)) == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after start: %v %s", err, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestLabStopWhileStarting stops PostgreSQL while its unit is still
// starting: as on a real machine, systemd must stop every process of the
// unit, so none is left running outside it. A second host runs PostgreSQL
// under the same unit name all along: each host's systemd must manage its
// own control groups and leave the other host's PostgreSQL alone.
func TestLabStopWhileStarting(t *testing.T) {
	l := startLab(t, "pg1", "pg2")
	ctx := context.Background()
	sh := func(host, cmd string) string {
		t.Helper()
		out, err := l.Exec(ctx, host, "sh", "-c", cmd)
		if err != nil {
			t.Fatalf("%s: %s: %v\n%s", host, cmd, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	const unit = "postgresql@15-main.service"
	// A start that stays in start-post until stopped: PostgreSQL is already
	// running, the unit is still activating. ("-": the waiter killed by
	// the stop is no failure of the unit.)
	sh("pg1", "systemctl stop "+unit+" && mkdir -p /run/systemd/system/"+unit+".d && "+
		"printf '[Service]\\nExecStartPost=-/bin/sleep infinity\\n' >/run/systemd/system/"+unit+".d/starting.conf && "+
		"systemctl daemon-reload && systemctl start --no-block "+unit)
	state := ""
	for deadline := time.Now().Add(60 * time.Second); state != "activating start-post"; {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reach start-post, is %q", unit, state)
		}
		time.Sleep(100 * time.Millisecond)
		state = sh("pg1", "systemctl show -P ActiveState "+unit+"; systemctl show -P SubState "+unit)
		state = strings.Join(strings.Fields(state), " ")
	}
	if ps := sh("pg1", "pgrep -x postgres || true"); ps == "" {
		t.Fatalf("no postgres process while %s is in start-post", unit)
	}
	// A stop that cannot kill the unit's processes waits for them up to
	// the unit's stop timeout (an hour): the test waits for the state,
	// within a limit of its own.
	sh("pg1", "systemctl stop --no-block "+unit)
	for deadline := time.Now().Add(30 * time.Second); ; {
		state = sh("pg1", "systemctl is-active "+unit+" || true")
		if state != "activating" && state != "deactivating" {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if state != "inactive" {
		t.Errorf("after stop while starting, %s is %s, want inactive", unit, state)
	}
	if ps := sh("pg1", "pgrep -a -x postgres || true"); ps != "" {
		t.Errorf("postgres processes left running after the unit stopped:\n%s", ps)
	}
	// journalctl --sync: every message logged before it is in the journal.
	if j := sh("pg1", "journalctl --sync && journalctl -b -q --no-pager -o cat"); strings.Contains(j, "Failed to kill control group") {
		var lines []string
		for _, line := range strings.Split(j, "\n") {
			if strings.Contains(line, "Failed to kill control group") {
				lines = append(lines, line)
			}
		}
		t.Errorf("pg1's systemd could not kill a control group:\n%s", strings.Join(lines, "\n"))
	}
	if got := sh("pg2", "systemctl is-active "+unit+" || true"); got != "active" {
		t.Errorf("on pg2, %s is %s after pg1 stopped its own, want active", unit, got)
	}
}
