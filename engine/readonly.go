package engine

import "github.com/runbook-dev/runbook/steps"

// ReadOnly reports whether no step of the playbook can change anything:
// each is a step type that says so (steps.Changer: an ssh-exec or sql
// with read_only, a capture) or one that only waits for a condition
// (wait-until). Guards and facts are read-only by construction. A run of
// such a playbook has nothing to resume: running it again is the same.
func (pb *Playbook) ReadOnly() bool {
	for _, s := range pb.Steps {
		if c, ok := s.Body.(steps.Changer); ok && !c.MayChange() {
			continue
		}
		if s.Type.Describe().Waits {
			continue
		}
		return false
	}
	return true
}
