package playbooks_test

import (
	"testing"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/playbooks"

	"github.com/runbook-dev/runbook/steps"
)

// TestEveryStepRechecks: a bundled procedure cut short at any point must be
// resumable without asking the operator to check a host by hand, so every
// step of every bundled playbook can find out whether an attempt whose
// outcome was lost made its change (or is declared idempotent).
func TestEveryStepRechecks(t *testing.T) {
	l := &engine.Loader{Registry: steps.Builtin()}
	for _, name := range playbooks.Names() {
		src, _ := playbooks.Lookup(name)
		pb, ds := l.Load(playbooks.Path(name), src)
		if pb == nil {
			t.Fatalf("%s: %v", name, ds)
		}
		for i, s := range pb.Steps {
			r, ok := s.Body.(steps.Rechecker)
			if !ok || !r.Rechecks() {
				t.Errorf("%s step %d (%s, %s): a resume after a crash in it would stop and ask; give it creates/unless, or idempotent: true if repeating it is harmless", name, i+1, s.Label(), s.Type.Describe().Name)
			}
		}
	}
}
