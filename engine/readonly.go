package engine

import "github.com/runbook-dev/runbook/steps"

// ReadOnly reports whether no step of the playbook can change anything,
// on its hosts or here: each is a step type that says it changes nothing
// on its host (steps.Changer: an ssh-exec or sql with read_only, a
// wait-until whose probe is one). A capture changes nothing
// on its host but writes files here, and a resume after a tolerated
// failure fetches only what is missing: it counts as a change. Guards and
// facts are read-only by construction. A run of a read-only playbook has
// nothing to resume: running it again is the same.
func (pb *Playbook) ReadOnly() bool {
	for _, s := range pb.Steps {
		if s.Type.Describe().Name == "capture" {
			return false
		}
		if c, ok := s.Body.(steps.Changer); ok && !c.MayChange() {
			continue
		}
		return false
	}
	return true
}
