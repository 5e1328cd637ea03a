package engine_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/testsshd"
	"github.com/runbook-dev/runbook/internal/transport"
)

// closedPlaybook notes the sshd process serving host a's connection (and
// the listening sshd, its parent), then
// kills it from this machine (host l) and waits until it is gone (a host
// that rebooted, or whose sshd restarted, between two steps); with
// ${LISTENER} the listening sshd goes too (the host is down). Then a step
// runs on a again.
const closedPlaybook = `version: 1
name: closed
steps:
  - id: pid
    host: a
    ssh-exec: {command: 'echo "$PPID $(ps -o ppid= -p $PPID)"', read_only: true}
  - id: cut
    host: l
    ssh-exec:
      env: {PIDS: "${{ steps.pid.result.stdout }}"}
      command: |
        set -- $PIDS
        ${LISTENER}
        kill -9 "$1"
        while kill -0 "$1" 2>/dev/null; do :; done
  - id: again
    host: a
    tolerate: [unreachable]
    ssh-exec: {command: "echo again", read_only: true}
`

func closedRun(t *testing.T, listener string) (*recorder, error) {
	s := testsshd.Start(t)
	pb := mustLoad(t, strings.ReplaceAll(closedPlaybook, "${LISTENER}", listener))
	inv, ds := engine.ParseInventory("inv.yaml", []byte(s.Inventory("a")+"  l: {transport: local}\n"))
	if inv == nil {
		t.Fatal(ds)
	}
	return run(t, pb, nil, nil, overSSH(inv))
}

// TestStepRedialsAfterHostClosedConnection: the step after the host
// closed its connection (sshd restarted: it accepts a new one) opens a new
// connection and runs, instead of failing on the dead one with "the
// machine is up".
func TestStepRedialsAfterHostClosedConnection(t *testing.T) {
	rec, err := closedRun(t, "")
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, e := range rec.events {
		if e.Type == engine.EventStepEnd && e.ID == "again" && e.Result["stdout"] != "again\n" {
			t.Fatalf("again: %s %v %s", e.Status, e.Result, e.Message)
		}
	}
}

// TestStepAfterHostWentDownIsUnreachable: when the host's sshd is gone
// too, the new dial is refused: the step's tolerate: [unreachable] covers
// it, and the message does not say the machine is up.
func TestStepAfterHostWentDownIsUnreachable(t *testing.T) {
	// Only the listening sshd this test started (never another process).
	_, err := closedRun(t, `ps -o args= -p "$2" | grep -q '\[listener\]' && kill -9 "$2"`)
	var pe *engine.PartialError
	if !errors.As(err, &pe) || len(pe.Failures) != 1 {
		t.Fatalf("run: %v, want partial (a unreachable, tolerated)", err)
	}
	var se *transport.SessionError
	if msg := pe.Failures[0].Error(); !errors.As(pe.Failures[0], &se) || se.Stage != "connect" || strings.Contains(msg, "this is not \"unreachable\"") {
		t.Fatalf("failure: %v, want a refused connection", msg)
	}
}
