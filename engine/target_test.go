package engine_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/engine"
)

// TestTargetEventsNameTheElement: every event about one element of a
// for_each step (its start, its retries' progress, its end) names that
// element, as the journal keys it.
func TestTargetEventsNameTheElement(t *testing.T) {
	pb, dir := mustLoadInDir(t, "elements", `
steps:
  - id: each
    for_each: ${{ ["a", "b"] }}
    retries: 1
    retry_delay: 10ms
    ssh-exec:
      command: echo ${{ item }} >> ${{ params.dir }}/n; test "$(wc -l < ${{ params.dir }}/n)" -ne 1
`)
	rec, err := run(t, pb, map[string]string{"dir": dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range rec.events {
		switch e.Type {
		case engine.EventStepStart, engine.EventStepProgress, engine.EventStepEnd, engine.EventStepDone:
			got = append(got, fmt.Sprintf("%s %d %s", e.Type, e.Item, e.Name))
		}
	}
	want := []string{
		"step-start 1 each (a)", "step-progress 1 each (a)", "step-end 1 each (a)",
		"step-start 2 each (b)", "step-end 2 each (b)", "step-done 0 each",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestResumeWaitsForLeftoverAndSaysSo: a resume waits for the command the
// lost attempt of an in-doubt step left running on the host to end before
// its guards look at the hosts (a guard would judge the host halfway
// through that command's change), says on the step's progress that it is
// waiting for it, and rechecks the step after.
func TestResumeWaitsForLeftoverAndSaysSo(t *testing.T) {
	dir := t.TempDir()
	leftover := exec.Command("sleep", "1")
	leftover.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := leftover.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := leftover.Process.Pid
	// Reaped as soon as it ends: a zombie would still count as running.
	go func() { _ = leftover.Wait() }()
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })

	pb := mustLoad(t, fmt.Sprintf(`
version: 1
name: leftover
params:
  dir: {type: string}
require:
  - name: the leftover has ended
    ssh-exec: {command: "if kill -0 -- -%d 2>/dev/null; then echo running; else echo gone; fi"}
    assert: trim(result.stdout) == "gone"
steps:
  - id: after
    ssh-exec:
      command: if kill -0 -- -%d 2>/dev/null; then echo beside >> ${{ params.dir }}/log; else echo after >> ${{ params.dir }}/log; fi
      idempotent: true
`, pgid, pgid))
	key := engine.StepKey{Index: 1, Host: engine.Localhost}
	resume := &engine.Resume{
		InDoubt:      map[engine.StepKey]string{key: "after"},
		Leftovers:    map[engine.StepKey]engine.Leftover{key: {PID: pgid, Since: time.Now()}},
		LeftoverWait: 30 * time.Second,
	}
	rec, err := run(t, pb, map[string]string{"dir": dir}, nil, func(r *engine.Runner) { r.Resume = resume })
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "log"))
	if string(got) != "after\n" {
		t.Errorf("the step ran %q, want after the leftover ended", got)
	}
	progress := rec.each(engine.EventStepProgress, func(e *engine.Event) string { return e.Message })
	want := fmt.Sprintf("the command of the interrupted attempt still runs (process group %d): waiting for it to end", pgid)
	if len(progress) != 2 || progress[0] != want || !strings.HasPrefix(progress[1], "in doubt") {
		t.Errorf("progress: %q, want %q, then the recheck announced", progress, want)
	}
}
