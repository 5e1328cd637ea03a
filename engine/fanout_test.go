package engine_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/testsshd"
)

// fanOutPlaybook runs one step on a, b and c (one sshd) at most
// ${PARALLEL} at a time: a fails (after ${WAIT}), and b and c write their
// start to their log and sleep.
const fanOutPlaybook = `version: 1
name: fanout
params:
  dir: {type: string}
steps:
  - id: spread
    hosts: [a, b, c]
    parallel: ${PARALLEL}
    ssh-exec:
      command: |
        cd ${{ params.dir }}
        if [ ${{ host.name }} = a ]; then
          ${WAIT}
          exit 1
        fi
        echo start >> started-${{ host.name }}
        sleep 30
`

// fanOutRun runs fanOutPlaybook. With wait, a fails only once the run has
// reported the commands of b and c started (their process records) and
// both wrote their start: both are then cut short in their sleep.
func fanOutRun(t *testing.T, parallel string, wait bool) (*recorder, string, error) {
	s := testsshd.Start(t)
	src := strings.ReplaceAll(fanOutPlaybook, "${PARALLEL}", parallel)
	if wait {
		src = strings.ReplaceAll(src, "${WAIT}", "while ! { [ -e started ] && [ -e started-b ] && [ -e started-c ]; }; do sleep 0.05; done")
	} else {
		src = strings.ReplaceAll(src, "${WAIT}", "true")
	}
	pb, dir := mustLoad(t, src), t.TempDir()
	inv := mustInventory(t, s.Inventory("a", "b", "c"))
	rec, err := run(t, pb, map[string]string{"dir": dir}, nil, func(r *engine.Runner) {
		r.Inventory = inv
		r.Connect = sshConnect
		next := r.Sink
		var mu sync.Mutex
		started := map[string]bool{}
		r.Sink = engine.SinkFunc(func(e *engine.Event) {
			next.Emit(e)
			if e.Type != engine.EventStepProcess || e.Host == "a" {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			started[e.Host] = true
			if len(started) == 2 {
				if err := os.WriteFile(filepath.Join(dir, "started"), nil, 0o600); err != nil {
					t.Error(err)
				}
			}
		})
	})
	return rec, dir, err
}

// TestFanOutStopLeavesStartedHostsInDoubt: a step on several hosts stops
// after a fails; b and c, cut short in the middle of their command, are
// in doubt (their change may be half made), never failed, and their
// process records stand for the resume.
func TestFanOutStopLeavesStartedHostsInDoubt(t *testing.T) {
	rec, dir, err := fanOutRun(t, "3", true)
	if err == nil {
		t.Fatal("the run went through though a failed")
	}
	ends := rec.ends()
	if ends["spread@a"] != engine.StatusFailed {
		t.Errorf("a: %s, want failed", ends["spread@a"])
	}
	processes := map[string]bool{}
	for _, e := range rec.events {
		switch {
		case e.Type == engine.EventStepProcess:
			processes[e.Host] = true
		case e.Type == engine.EventStepEnd && e.Host != "a" && !strings.Contains(e.Message, "stopped after 1 failed host(s)"):
			t.Errorf("%s: %q does not say why it was cut short", e.Host, e.Message)
		}
	}
	for _, h := range []string{"b", "c"} {
		if ends["spread@"+h] != engine.StatusInDoubt {
			t.Errorf("%s: %s, want in-doubt", h, ends["spread@"+h])
		}
		if !processes[h] {
			t.Errorf("%s: no process record", h)
		}
		if n := countLines(t, dir+"/started-"+h); n != 1 {
			t.Errorf("%s started %d times, want 1", h, n)
		}
	}
}

// TestFanOutStopDoesNotStartTheOthers: one host at a time, a fails, and
// b and c, not started, have no event: nothing says they ran, so a
// resume runs them as any step; the run's error names them.
func TestFanOutStopDoesNotStartTheOthers(t *testing.T) {
	rec, dir, err := fanOutRun(t, "1", false)
	if err == nil || !strings.HasSuffix(err.Error(), "; not started (untouched): b, c") {
		t.Fatalf("run: %v, want a's failure and b, c named not started", err)
	}
	for _, e := range rec.events {
		if e.Host == "b" || e.Host == "c" {
			t.Errorf("%s on %s: %s %s, want no event", e.Type, e.Host, e.Status, e.Message)
		}
	}
	for _, h := range []string{"b", "c"} {
		if n := countLines(t, dir+"/started-"+h); n != 0 {
			t.Errorf("%s started %d times, want 0", h, n)
		}
	}
}

// TestFanOutStopFailsAWait: a step that only looks (a wait-until whose
// probe is read-only) has nothing in doubt when it is cut short: b and c,
// stopped in the middle of their wait once a fails, fail and run again on
// resume without a question.
func TestFanOutStopFailsAWait(t *testing.T) {
	s := testsshd.Start(t)
	pb, dir := mustLoad(t, `version: 1
name: fanout-wait
params:
  dir: {type: string}
steps:
  - id: wait
    hosts: [a, b, c]
    assert: host.name != "a"
    wait-until:
      probe:
        ssh-exec:
          read_only: true
          command: |
            cd ${{ params.dir }}
            echo . >> polled-${{ host.name }}
            polls() { cat "polled-$1" 2>/dev/null | wc -l; }
            if [ ${{ host.name }} = a ] && [ "$(polls b)" -ge 2 ] && [ "$(polls c)" -ge 2 ]; then echo go; fi
      until: result.stdout == "go\n"
      timeout: 60s
      interval: 100ms
`), t.TempDir()
	inv := mustInventory(t, s.Inventory("a", "b", "c"))
	rec, err := run(t, pb, map[string]string{"dir": dir}, nil, overSSH(inv))
	if err == nil {
		t.Fatal("the run went through though a failed")
	}
	ends := rec.ends()
	for _, h := range []string{"a", "b", "c"} {
		if ends["wait@"+h] != engine.StatusFailed {
			t.Errorf("%s: %s, want failed", h, ends["wait@"+h])
		}
	}
}
