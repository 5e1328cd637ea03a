package engine_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/engine"
)

// doneOf is what a journal would hold of rec: every outcome that ended
// well.
func doneOf(rec *recorder) map[engine.StepKey]engine.Outcome {
	done := map[engine.StepKey]engine.Outcome{}
	for _, e := range rec.events {
		if e.Type == engine.EventStepEnd && (e.Status == engine.StatusOK || e.Status == engine.StatusChanged || e.Status == engine.StatusSkipped) {
			done[engine.StepKey{Index: e.Index, Host: e.Host, Item: e.Item}] = engine.Outcome{Status: e.Status, Result: e.Result, ID: e.ID}
		}
	}
	return done
}

// failedOf is what a journal would hold of rec's failures.
func failedOf(rec *recorder) map[engine.StepKey]bool {
	failed := map[engine.StepKey]bool{}
	for _, e := range rec.events {
		if e.Type == engine.EventStepEnd && e.Status == engine.StatusFailed {
			failed[engine.StepKey{Index: e.Index, Host: e.Host, Item: e.Item}] = true
		}
	}
	return failed
}

// resumeFrom is what a resume of the run rec recorded is given from its
// journal: the outcomes that ended well, and the failures.
func resumeFrom(rec *recorder) *engine.Resume {
	return &engine.Resume{Done: doneOf(rec), Failed: failedOf(rec)}
}

// failuresOf returns the tolerated failures that are an E of the partial
// run that ended with err; the test fails if the run did not end partial.
func failuresOf[E error](t *testing.T, err error) []E {
	t.Helper()
	pe, ok := errors.AsType[*engine.PartialError](err)
	if !ok {
		t.Fatalf("err = %v, want partial", err)
	}
	var out []E
	for _, f := range pe.Failures {
		if e, ok := errors.AsType[E](f); ok {
			out = append(out, e)
		}
	}
	return out
}

// resumeAfterFix resumes pb, working in dir, on the hosts of inv from the
// journal of the run rec recorded, once what failed was fixed, and
// returns what the resume did: the log, cleared before it.
func resumeAfterFix(t *testing.T, pb *engine.Playbook, dir string, inv *engine.Inventory, rec *recorder) string {
	t.Helper()
	clearLog(t, dir)
	if _, err := run(t, pb, map[string]string{"dir": dir}, nil, resumeOn(inv, resumeFrom(rec))); err != nil {
		t.Fatalf("resume: %v", err)
	}
	return readLog(t, dir)
}

// clearLog removes the log in dir.
func clearLog(t *testing.T, dir string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, "log")); err != nil {
		t.Fatal(err)
	}
}

// TestResumeRerunsLaterStepsOfHost: a change that failed on b and was
// tolerated, after which b's check ran, is made again by the resume; the
// check after it, recorded done before the change, runs again on b (and
// only on b), in a batch and in plain steps. (A check is read-only: it can
// run again; TestResumeAsksBeforeRepeatingChange is about a change.)
func TestResumeRerunsLaterStepsOfHost(t *testing.T) {
	for name, body := range map[string]string{
		"batch": `  - name: Restart each
    hosts: [all]
    serial: 2
    max_failures: 1
    steps:
      - id: restart
        tolerate: [failed]
        ssh-exec: {command: "{ test ${{ host.name }} != b || test -e ${{ params.dir }}/fixed; } && echo restart-${{ host.name }} >> ${{ params.dir }}/log"}
      - id: healthy
        ssh-exec: {command: "echo healthy-${{ host.name }} >> ${{ params.dir }}/log", read_only: true}
`,
		"plain": `  - id: restart
    hosts: [all]
    tolerate: [failed]
    ssh-exec: {command: "{ test ${{ host.name }} != b || test -e ${{ params.dir }}/fixed; } && echo restart-${{ host.name }} >> ${{ params.dir }}/log"}
  - id: healthy
    hosts: [all]
    ssh-exec: {command: "echo healthy-${{ host.name }} >> ${{ params.dir }}/log", read_only: true}
`} {
		t.Run(name, func(t *testing.T) {
			pb, dir := mustLoadInDir(t, "stale", "steps:\n"+body)
			inv := batchInventory(t)
			params := map[string]string{"dir": dir}
			rec, err := run(t, pb, params, nil, onHosts(inv))
			if err == nil || !strings.Contains(err.Error(), "partial") {
				t.Fatalf("run: %v, want partial (b's restart tolerated)", err)
			}
			if err := os.WriteFile(filepath.Join(dir, "fixed"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if got := resumeAfterFix(t, pb, dir, inv, rec); got != "restart-b healthy-b" {
				t.Fatalf("resume did %q, want b restarted, then checked again", got)
			}
		})
	}
}

// TestResumeAsksBeforeRepeatingChange: a read-only check failed on b and
// was tolerated, and a plain change (an append, which cannot check whether
// it was made) ran on every host. The resume runs the check again on b,
// and would so make b's change a second time: it is refused before
// anything runs, naming the change; --skip-in-doubt keeps it as done,
// --retry-in-doubt makes it again.
func TestResumeAsksBeforeRepeatingChange(t *testing.T) {
	pb, dir := mustLoadInDir(t, "twice", `steps:
  - id: check
    hosts: [all]
    tolerate: [failed]
    ssh-exec: {command: "test -e ${{ params.dir }}/${{ host.name }}", read_only: true}
  - id: grant
    hosts: [all]
    ssh-exec: {command: "echo grant-${{ host.name }} >> ${{ params.dir }}/log"}
`)
	inv := batchInventory(t)
	healthy(t, dir, "a", "c", "d")
	params := map[string]string{"dir": dir}
	rec, err := run(t, pb, params, nil, onHosts(inv))
	var pe *engine.PartialError
	if !errors.As(err, &pe) {
		t.Fatalf("run: %v, want partial (b's check tolerated)", err)
	}
	healthy(t, dir, "b")
	clearLog(t, dir)
	resume := func(retry, skip bool) error {
		rs := resumeFrom(rec)
		rs.RetryInDoubt, rs.SkipInDoubt = retry, skip
		_, err := run(t, pb, params, nil, resumeOn(inv, rs))
		return err
	}
	var de *engine.InDoubtError
	if err := resume(false, false); !errors.As(err, &de) || len(de.Repeats) != 1 || !strings.Contains(de.Repeats[0], "[2] grant [b]") {
		t.Fatalf("resume: %v, want refused naming grant on b", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "log")); !os.IsNotExist(err) {
		t.Fatalf("the refused resume ran something: %v", err)
	}
	if err := resume(false, true); err != nil {
		t.Fatalf("resume --skip-in-doubt: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "log")); !os.IsNotExist(err) {
		t.Fatalf("--skip-in-doubt made the change again: %q", readLog(t, dir))
	}
	if err := resume(true, false); err != nil {
		t.Fatalf("resume --retry-in-doubt: %v", err)
	}
	if got := readLog(t, dir); got != "grant-b" {
		t.Fatalf("--retry-in-doubt did %q, want b's change made again", got)
	}
}

// TestGuardToleratedHostIsNotChanged: a host a guard tolerated instead of
// clearing (here it fails the guard's assert, as a host that came back
// after being down when the guard looked would have been seen) is not
// changed by any later step, in a batch or a plain step: each names the
// guard, the run ends partial; read-only steps and the other hosts run.
func TestGuardToleratedHostIsNotChanged(t *testing.T) {
	pb, dir := mustLoadInDir(t, "guard-tolerated", `require:
  - name: no node is the primary
    hosts: [all]
    tolerate: [failed]
    ssh-exec: {command: "cat ${{ params.dir }}/${{ host.name }}"}
    assert: result.stdout == "ok\n"
steps:
  - id: look
    hosts: [all]
    ssh-exec: {command: "echo look-${{ host.name }} >> ${{ params.dir }}/log", read_only: true}
  - id: promote
    hosts: [all]
    ssh-exec: {command: "echo promote-${{ host.name }} >> ${{ params.dir }}/log"}
  - name: Restart each
    hosts: [all]
    serial: 2
    steps:
      - id: restart
        ssh-exec: {command: "echo restart-${{ host.name }} >> ${{ params.dir }}/log"}
`)
	inv := batchInventory(t)
	healthy(t, dir, "a", "b", "c") // d is the primary: the guard exists to refuse it
	_, err := run(t, pb, map[string]string{"dir": dir}, nil, onHosts(inv))
	ues := failuresOf[*engine.UnguardedError](t, err)
	for _, ue := range ues {
		if ue.Host != "d" || ue.Guard != "no node is the primary" {
			t.Errorf("unguarded %+v", ue)
		}
	}
	if len(ues) != 2 || !strings.Contains(err.Error(), `d was not checked by guard "no node is the primary"`) {
		t.Fatalf("err = %v, want promote and restart kept off d, naming the guard", err)
	}
	log := sorted(readLog(t, dir))
	if strings.Contains(log, "promote-d") || strings.Contains(log, "restart-d") || !strings.Contains(log, "look-d") || !strings.Contains(log, "restart-c") {
		t.Fatalf("log %q: want d looked at, never changed, the others changed", log)
	}
}

// TestBatchResumeAfterLostRecordsStepAfter: after a power cut whose mark
// covers the step after a rolling batch, that step is not in doubt while
// the batch never reached its last hosts (their record, on disk before
// any of their steps, is missing): it could not have started. Resumed
// with --skip-in-doubt for b, it runs once the batch is through, instead
// of being taken as done.
func TestBatchResumeAfterLostRecordsStepAfter(t *testing.T) {
	dir := t.TempDir()
	resumeLostSkippingB(t, dir, 3)
	// Every batch reached: the step after may have started, and is in
	// doubt (its hosts were not recorded).
	_, err := resumeRolling(t, dir, lostRecords(3, map[string]bool{"a": true, "b": true, "c": true, "d": true}))
	var ide *engine.InDoubtError
	if !errors.As(err, &ide) || !strings.Contains(strings.Join(ide.Steps, "; "), "[3] after") {
		t.Fatalf("err = %v, want after in doubt once the batch reached d", err)
	}
}

// TestFailedWhenOnCutOutput: a changing command over max_output whose
// failed_when reads its output cannot be judged on the cut result (the
// FATAL line is past the limit): the change is in doubt, the run stops
// (tolerate: [failed] does not cover it) and the next step does not run.
// One whose failed_when reads only the exit code is judged, and done.
func TestFailedWhenOnCutOutput(t *testing.T) {
	big := `head -c 20000 /dev/zero | tr '\\0' 'a' | fold -w 100; echo`
	pb, dir := mustLoadInDir(t, "cut", `steps:
  - id: grep
    ssh-exec:
      command: "echo grep >> ${{ params.dir }}/log; `+big+`; exit 1"
      max_output: 1KiB
    failed_when: result.exit_code > 1
  - id: big
    tolerate: [failed]
    ssh-exec:
      command: "echo big >> ${{ params.dir }}/log; `+big+`; echo 'FATAL: invalid value for parameter'"
      max_output: 1KiB
    failed_when: result.stdout contains "FATAL"
  - id: next
    ssh-exec: {command: "echo next >> ${{ params.dir }}/log"}
`)
	rec, err := run(t, pb, map[string]string{"dir": dir}, nil)
	if err == nil || !strings.Contains(err.Error(), "cannot judge a result cut at max_output") {
		t.Fatalf("err = %v, want big in doubt: its check cannot see the cut output", err)
	}
	ends := rec.ends()
	if ends["grep"] != engine.StatusChanged || ends["big"] != engine.StatusInDoubt {
		t.Fatalf("ends = %v, want grep changed (judged on its exit code), big in doubt", ends)
	}
	if got := readLog(t, dir); got != "grep big" {
		t.Fatalf("log = %q, want next not run", got)
	}
}

// TestFailedBatchHostIsLeftAlone: a host that failed its batch within the
// failure budget is not changed by the steps after the batch (each says
// why, and the run ends partial), while read-only steps still look at it;
// the resume, once it is fixed, runs its failed check again and then the
// change, without making the other hosts' changes a second time.
func TestFailedBatchHostIsLeftAlone(t *testing.T) {
	pb, dir := mustLoadInDir(t, "left-alone", `steps:
  - name: Restart each
    hosts: [all]
    serial: 1
    max_failures: 1
    steps:
      - id: restart
        ssh-exec: {command: "echo restart-${{ host.name }} >> ${{ params.dir }}/log"}
      - id: healthy
        ssh-exec: {command: "grep -qx ok ${{ params.dir }}/${{ host.name }}", read_only: true}
  - id: look
    hosts: [all]
    ssh-exec: {command: "echo look-${{ host.name }} >> ${{ params.dir }}/log", read_only: true}
  - id: after
    hosts: [all]
    ssh-exec: {command: "echo after-${{ host.name }} >> ${{ params.dir }}/log"}
`)
	healthy(t, dir, "a", "c", "d") // b does not come back
	inv := batchInventory(t)
	params := map[string]string{"dir": dir}
	rec, err := run(t, pb, params, nil, onHosts(inv))
	fes := failuresOf[*engine.FailedHostError](t, err)
	for _, fe := range fes {
		if fe.Host != "b" || fe.Step != "healthy" {
			t.Errorf("left alone: %+v", fe)
		}
	}
	if len(fes) != 1 {
		t.Fatalf("err = %v, want after kept off b once", err)
	}
	if got := readLog(t, dir); strings.Contains(got, "after-b") || !strings.Contains(got, "look-b") || !strings.Contains(got, "after-a") {
		t.Fatalf("run did %q, want b looked at and not changed after its batch", got)
	}
	healthy(t, dir, "b")
	if got := resumeAfterFix(t, pb, dir, inv, rec); got != "look-b after-b" {
		t.Fatalf("resume did %q, want b checked again and then changed", got)
	}
}
