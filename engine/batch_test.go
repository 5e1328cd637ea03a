package engine_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/testsshd"
)

// batchInventory is four local hosts, each with its own health file.
func batchInventory(t *testing.T) *engine.Inventory {
	t.Helper()
	return mustInventory(t, "defaults: {transport: local}\nhosts:\n  a: {vars: {n: 1}}\n  b: {vars: {n: 2}}\n  c: {vars: {n: 3}}\n  d: {vars: {n: 4}}\ngroups:\n  all: [a, b, c, d]\n")
}

// rolling restarts each host of all in turn, ${SERIAL} hosts at a time (a
// line in a log; ${ECHO} may have it print the host's name), checks that it
// is healthy (its file says ok; ${CHECK} may assert more), then runs one
// step after the batch; ${BUDGET} is the batch's failure budget, if any.
const rolling = `version: 1
name: rolling
params:
  dir: {type: string}
steps:
  - name: Restart each node in turn
    hosts: [all]
    serial: ${SERIAL}
    ${BUDGET}
    steps:
      - id: restart
        ssh-exec: {command: "echo ${{ host.name }} >> ${{ params.dir }}/log${ECHO}"}
      - id: healthy
        ssh-exec: {command: "grep -qx ok ${{ params.dir }}/${{ host.name }}", read_only: true}
        ${CHECK}
  - id: after
    ssh-exec: {command: "echo after >> ${{ params.dir }}/log"}
`

// rollingOneByOne is rolling one host at a time, with no failure budget,
// whose check reads only the health file.
var rollingOneByOne = strings.NewReplacer("${SERIAL}", "1", "${BUDGET}", "", "${ECHO}", "", "${CHECK}", "").Replace(rolling)

// lostRecords is what the journal of rollingOneByOne kept after a power
// cut: a restarted and healthy, the batches of one host each, the hosts
// of reached reached, and the mark at watermark.
func lostRecords(watermark int, reached map[string]bool) *engine.Resume {
	return &engine.Resume{
		Done: map[engine.StepKey]engine.Outcome{
			{Index: 1, Host: "a"}: {Status: engine.StatusChanged, ID: "restart", Result: map[string]any{"exit_code": 0}},
			{Index: 2, Host: "a"}: {Status: engine.StatusOK, ID: "healthy", Result: map[string]any{"exit_code": 0}},
		},
		Watermark: watermark,
		Batches:   map[int][][]string{1: {{"a"}, {"b"}, {"c"}, {"d"}}},
		Reached:   map[int]map[string]bool{1: reached},
	}
}

// resumeRolling resumes rollingOneByOne, working in dir, on the hosts of
// batchInventory, from rs.
func resumeRolling(t *testing.T, dir string, rs *engine.Resume) (*recorder, error) {
	t.Helper()
	return run(t, mustLoad(t, rollingOneByOne), map[string]string{"dir": dir}, nil, resumeOn(batchInventory(t), rs))
}

// rollingPlaybook is rolling serial hosts at a time within budget, whose
// restart prints the host's name and whose check asserts it: the restart's
// result on the same host.
func rollingPlaybook(t *testing.T, serial, budget string) *engine.Playbook {
	return mustLoad(t, strings.NewReplacer("${SERIAL}", serial, "${BUDGET}", budget, "${ECHO}", "; echo ${{ host.name }}",
		"${CHECK}", `assert: steps.restart.result.stdout == host.name + "\n"`).Replace(rolling))
}

func healthy(t *testing.T, dir string, hosts ...string) {
	t.Helper()
	for _, h := range hosts {
		if err := os.WriteFile(filepath.Join(dir, h), []byte("ok\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func readLog(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "log"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

func TestBatchStopsAtFirstUnhealthyHost(t *testing.T) {
	dir := t.TempDir()
	healthy(t, dir, "a", "c", "d") // b does not come back
	pb := rollingPlaybook(t, "1", "")
	rec, err := run(t, pb, map[string]string{"dir": dir}, nil, onHosts(batchInventory(t)))
	var be *engine.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v, want a *BatchError", err)
	}
	if be.Stopped != 2 || be.Batches != 4 || strings.Join(be.NotStarted, ",") != "c,d" || len(be.Failed) != 1 || be.Failed[0].Host != "b" {
		t.Fatalf("BatchError = %+v", be)
	}
	if !strings.Contains(err.Error(), `not started (untouched): c, d`) || !strings.Contains(err.Error(), `step "healthy" on b`) {
		t.Fatalf("message: %v", err)
	}
	// One host at a time, every step of the sequence on it first; c and d
	// untouched, the step after the batch not run.
	if got := readLog(t, dir); got != "a b" {
		t.Fatalf("log = %q, want %q", got, "a b")
	}
	var batches []string
	for _, e := range rec.events {
		if e.Type == engine.EventBatch {
			batches = append(batches, e.Message+":"+e.Host)
		}
		if e.Host == "c" || e.Host == "d" {
			t.Fatalf("an event on an untouched host: %+v", e)
		}
	}
	if strings.Join(batches, " ") != "batch 1 of 4:a batch 2 of 4:b" {
		t.Fatalf("batches = %v", batches)
	}
	ends := rec.ends()
	if ends["restart@a"] != engine.StatusChanged || ends["healthy@a"] != engine.StatusOK || ends["healthy@b"] != engine.StatusFailed {
		t.Fatalf("ends = %v", ends)
	}
}

func TestBatchResumeContinuesAtFailedHost(t *testing.T) {
	dir := t.TempDir()
	healthy(t, dir, "a", "c", "d")
	pb := rollingPlaybook(t, "1", "")
	inv := batchInventory(t)
	rec, err := run(t, pb, map[string]string{"dir": dir}, nil, onHosts(inv))
	if err == nil {
		t.Fatal("the first run should stop at b")
	}
	healthy(t, dir, "b") // fixed
	rec2, err := run(t, pb, map[string]string{"dir": dir}, nil, resumeOn(inv, resumeFrom(rec)))
	if err != nil {
		t.Fatal(err)
	}
	// b is not restarted again: its health is checked again, with the
	// recorded restart's result, then c and d go.
	if got := readLog(t, dir); got != "a b c d after" {
		t.Fatalf("log = %q", got)
	}
	if ran := rec2.ran(); strings.Join(ran, " ") != "healthy@b restart@c healthy@c restart@d healthy@d after@localhost" {
		t.Fatalf("ran = %v", ran)
	}
}

func TestBatchSizesAndBudget(t *testing.T) {
	for _, c := range []struct {
		name, serial, budget string
		unhealthy            []string
		log                  string
		batches              int
		partial              bool
	}{
		{"two at a time", "2", "", nil, "a b c d after", 2, false},
		{"percent", `"50%"`, "", nil, "a b c d after", 2, false},
		{"growing", `[1, "100%"]`, "", nil, "a b c d after", 2, false},
		{"budget of one", "1", "max_failures: 1", []string{"b"}, "a b c d after", 4, true},
		{"budget exceeded", "1", "max_failures: 1", []string{"b", "c"}, "a b c", 3, false},
		{"percentage budget", "1", "max_fail_percentage: 25", []string{"d"}, "a b c d after", 4, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, h := range []string{"a", "b", "c", "d"} {
				if !contains(c.unhealthy, h) {
					healthy(t, dir, h)
				}
			}
			rec, err := run(t, rollingPlaybook(t, c.serial, c.budget), map[string]string{"dir": dir}, nil, onHosts(batchInventory(t)))
			var pe *engine.PartialError
			switch {
			case c.partial:
				if !errors.As(err, &pe) || strings.Join(pe.Hosts(), ",") != strings.Join(c.unhealthy, ",") {
					t.Fatalf("err = %v, want partial on %v", err, c.unhealthy)
				}
			case c.unhealthy == nil && err != nil:
				t.Fatal(err)
			case c.unhealthy != nil && (err == nil || errors.As(err, &pe)):
				t.Fatalf("err = %v, want the run stopped", err)
			}
			if got := readLog(t, dir); sorted(got) != sorted(c.log) {
				t.Fatalf("log = %q, want %q", got, c.log)
			}
			n := 0
			for _, e := range rec.events {
				if e.Type == engine.EventBatch {
					n++
				}
				if e.Type == engine.EventRunEnd && c.partial && e.Status != engine.StatusPartial {
					t.Fatalf("run-end status %s, want partial", e.Status)
				}
			}
			if n != c.batches {
				t.Fatalf("%d batches, want %d", n, c.batches)
			}
		})
	}
}

// sorted sorts the words of a log: the hosts of one batch run at once.
func sorted(log string) string {
	w := strings.Fields(log)
	slices.Sort(w)
	return strings.Join(w, " ")
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func TestBatchPlanShowsBatches(t *testing.T) {
	dir := t.TempDir()
	healthy(t, dir, "a", "b", "c", "d")
	rec, err := run(t, rollingPlaybook(t, "3", ""), map[string]string{"dir": dir}, nil, func(r *engine.Runner) { r.Inventory, r.DryRun = batchInventory(t), true })
	if err != nil {
		t.Fatal(err)
	}
	got := rec.each(engine.EventBatch, func(e *engine.Event) string { return e.Host })
	if strings.Join(got, " ") != "a,b,c d" {
		t.Fatalf("batches = %v", got)
	}
	if readLog(t, dir) != "" {
		t.Fatal("a plan changed something")
	}
}

func TestBatchRefusals(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"  - hosts: [all]\n    steps:\n      - host: a\n        ssh-exec: {command: \"true\"}\n", "a step of a batch runs on the hosts of the batch"},
		{"  - hosts: [all]\n    serial: 0\n    steps:\n      - ssh-exec: {command: \"true\"}\n", `serial: "0" is not a number of hosts`},
		{"  - hosts: [all]\n    serial: \"150%\"\n    steps:\n      - ssh-exec: {command: \"true\"}\n", `serial: "150%" is not`},
		{"  - hosts: [all]\n    serial: []\n    steps:\n      - ssh-exec: {command: \"true\"}\n", `t.yaml:5:13: serial: an empty list gives no batch size`},
		{"  - hosts: [all]\n    serial: {a: 1}\n    steps:\n      - ssh-exec: {command: \"true\"}\n", `t.yaml:5:13: serial: a mapping is not a number of hosts`},
		{"  - hosts: [all]\n    serial: [1, [2]]\n    steps:\n      - ssh-exec: {command: \"true\"}\n", `t.yaml:5:17: serial: a list is not a number of hosts`},
		{"  - hosts: [all]\n    serial: '${{ params.n }}'\n    steps:\n      - ssh-exec: {command: \"true\"}\n", `serial takes a fixed value, not an expression`},
		{"  - hosts: [all]\n    max_failures: 1\n    max_fail_percentage: 5\n    steps:\n      - ssh-exec: {command: \"true\"}\n", "both max_failures and max_fail_percentage"},
		{"  - hosts: [all]\n    steps: []\n", "has no steps"},
		{"  - hosts: [all]\n    steps:\n      - hosts: [all]\n        steps:\n          - ssh-exec: {command: \"true\"}\n", "cannot hold another batch"},
		{"  - ssh-exec: {command: \"true\"}\n    tolerate: [unreachabel]\n", `tolerate: "unreachabel" is not one of unreachable, failed (did you mean "unreachable"?)`},
	} {
		_, ds := loader().Load("t.yaml", []byte("version: 1\nname: t\nsteps:\n"+c.src))
		all := printed(ds)
		if !strings.Contains(strings.Join(all, "\n"), c.want) {
			t.Errorf("%s:\ngot %v\nwant %q", c.src, all, c.want)
		}
	}
}

func TestTolerateAndFailedWhen(t *testing.T) {
	pb, dir := mustLoadInDir(t, "tolerate", `steps:
  - id: check
    hosts: [all]
    tolerate: [failed]
    ssh-exec:
      command: test ${{ host.name }} = a
      read_only: true
  - id: grep
    ssh-exec:
      command: echo found; exit 1
      read_only: true
    failed_when: result.exit_code > 1 || !(result.stdout contains "found")
  - id: strict
    ssh-exec:
      command: echo 'invalid value for parameter "shared_buffers"'; exit 0
      read_only: true
    failed_when: result.stdout contains "invalid value"
    tolerate: [failed]
  - id: after
    ssh-exec: {command: "touch ${{ params.dir }}/after"}
`)
	inv := mustInventory(t, "defaults: {transport: local}\nhosts:\n  a: {}\n  b: {}\ngroups:\n  all: [a, b]\n")
	rec, err := run(t, pb, map[string]string{"dir": dir}, nil, onHosts(inv))
	var pe *engine.PartialError
	if !errors.As(err, &pe) || len(pe.Failures) != 2 || pe.Failures[0].Host != "b" {
		t.Fatalf("err = %v, want partial with b's check and strict", err)
	}
	if !strings.Contains(pe.Failures[1].Error(), `failed_when result.stdout contains "invalid value" is true`) {
		t.Fatalf("failure = %v", pe.Failures[1])
	}
	if _, err := os.Stat(filepath.Join(dir, "after")); err != nil {
		t.Fatal("the run did not go on after the tolerated failures")
	}
	ends := rec.ends()
	if ends["grep"] != engine.StatusOK || ends["check@b"] != engine.StatusFailed || ends["check@a"] != engine.StatusOK {
		t.Fatalf("ends = %v", ends)
	}
}

func TestGuardOverGroupWithTolerance(t *testing.T) {
	dir := t.TempDir()
	inv := batchInventory(t)
	healthy(t, dir, "a", "b", "c")
	src := `version: 1
name: guard-group
params:
  dir: {type: string}
require:
  - name: every node is healthy
    hosts: [all]
    ${TOLERATE}
    ssh-exec: {command: "cat ${{ params.dir }}/${{ host.name }}"}
    assert: result.stdout == "ok\n"
steps:
  - id: go
    ssh-exec: {command: "echo go >> ${{ params.dir }}/log"}
`
	// Refused: d fails the guard, and the refusal names it.
	rec, err := run(t, mustLoad(t, strings.Replace(src, "${TOLERATE}", "", 1)), map[string]string{"dir": dir}, nil, onHosts(inv))
	var ge *engine.GuardError
	if !errors.As(err, &ge) || len(ge.Failed) != 1 || !strings.Contains(ge.Failed[0], `"every node is healthy" on d:`) {
		t.Fatalf("err = %v, want the guard refusing on d", err)
	}
	guards := len(rec.of(engine.EventGuard))
	if guards != 4 || readLog(t, dir) != "" {
		t.Fatalf("%d guard events (want one per host), log %q", guards, readLog(t, dir))
	}
	// Tolerated: the run goes on and ends partial, naming d.
	_, err = run(t, mustLoad(t, strings.Replace(src, "${TOLERATE}", "tolerate: [failed]", 1)), map[string]string{"dir": dir}, nil, onHosts(inv))
	var pe *engine.PartialError
	if !errors.As(err, &pe) || strings.Join(pe.Hosts(), ",") != "d" || readLog(t, dir) != "go" {
		t.Fatalf("err = %v, log %q; want partial on d after the step ran", err, readLog(t, dir))
	}
	// An unknown host in hosts: stops the run before anything runs.
	_, err = run(t, mustLoad(t, strings.Replace(strings.Replace(src, "${TOLERATE}", "", 1), "[all]", "[all, e]", 1)), map[string]string{"dir": dir}, nil, onHosts(inv))
	if err == nil || !strings.Contains(err.Error(), `"e"`) {
		t.Fatalf("err = %v, want the unknown host e", err)
	}
}

// TestBatchStopsWhenAHostIsInDoubt: a host whose connection is lost
// during its step (in doubt: the change may or may not be made, its
// health unknown) stops the rolling sequence before the next batch, over
// a real sshd: the next hosts stay untouched.
func TestBatchStopsWhenAHostIsInDoubt(t *testing.T) {
	s := testsshd.Start(t)
	pb, dir := mustLoadInDir(t, "lost", `steps:
  - name: Restart each node
    hosts: [a, b, c]
    serial: 1
    steps:
      - id: restart
        ssh-exec:
          command: |
            echo ${{ host.name }} >> ${{ params.dir }}/log
            if [ ${{ host.name }} = a ]; then kill -9 "$PPID"; fi
      - id: healthy
        ssh-exec: {command: "true", read_only: true}
`)
	inv := mustInventory(t, s.Inventory("a", "b", "c"))
	_, err := run(t, pb, map[string]string{"dir": dir}, nil, overSSH(inv))
	if err == nil {
		t.Fatal("the run went on after a host was left in doubt")
	}
	if got := readLog(t, dir); got != "a" {
		t.Fatalf("restarted %q after a was left in doubt, want only a (err: %v)", got, err)
	}
}

// TestBatchResumeAfterLostRecords: after a power cut the journal lost its
// last records, and its mark covers the batch's steps. The batches of
// hosts are journaled before their steps run, so only the hosts the batch
// reached are in doubt: the resume names b (reached, no outcome), not c
// and d, which no step touched; taking b as done (--skip-in-doubt) still
// restarts c and d.
func TestBatchResumeAfterLostRecords(t *testing.T) {
	dir := t.TempDir()
	// What the journal kept: a restarted and healthy; the batches of a
	// and b started; the mark reaches the batch's steps.
	rec := resumeLostSkippingB(t, dir, 2)
	if ran := rec.ran(); strings.Join(ran, " ") != "healthy@b restart@c healthy@c restart@d healthy@d after@localhost" {
		t.Fatalf("ran = %v", ran)
	}
}

// resumeLostSkippingB resumes rollingOneByOne, in dir, from a journal
// that lost its records after the mark at watermark, the batch having
// reached a and b (lostRecords). Every host is healthy. The resume is
// refused, before anything runs, with b's restart alone in doubt; taking
// it as done (--skip-in-doubt), it restarts c and d (never reached
// before), then runs after.
func resumeLostSkippingB(t *testing.T, dir string, watermark int) *recorder {
	t.Helper()
	healthy(t, dir, "a", "b", "c", "d")
	reached := map[string]bool{"a": true, "b": true}
	_, err := resumeRolling(t, dir, lostRecords(watermark, reached))
	var ide *engine.InDoubtError
	if !errors.As(err, &ide) {
		t.Fatalf("err = %v, want an *InDoubtError", err)
	}
	if strings.Join(ide.Steps, "; ") != "[1] restart [b]" {
		t.Fatalf("in doubt: %q, want only b's restart", ide.Steps)
	}
	if got := readLog(t, dir); got != "" {
		t.Fatalf("a refused resume ran something: %q", got)
	}
	skip := lostRecords(watermark, reached)
	skip.SkipInDoubt = true
	rec, err := resumeRolling(t, dir, skip)
	if err != nil {
		t.Fatal(err)
	}
	if got := readLog(t, dir); got != "c d after" {
		t.Fatalf("log = %q, want c and d restarted (never reached before), then after (not taken as done)", got)
	}
	return rec
}
