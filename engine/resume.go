package engine

import (
	"fmt"
	"sort"
	"strings"

	"github.com/runbook-dev/runbook/step"
)

// StepKey names one execution of a step: the step's 1-based index, the host
// it ran on and, for a for_each step, the 1-based element.
type StepKey struct {
	Index int
	Host  string
	Item  int
}

func (k StepKey) String() string {
	s := fmt.Sprintf("step %d on %s", k.Index, k.Host)
	if k.Item > 0 {
		s += fmt.Sprintf(" (element %d)", k.Item)
	}
	return s
}

// Outcome is how an earlier attempt of a step ended.
type Outcome struct {
	Status Status
	Result step.Result
	// ID is the id the step had then, to tell a playbook edited since.
	ID string
}

// Resume is what earlier attempts of a run did, for a run that continues
// them. Steps with an outcome in Done are not run again; their outcome
// and result stand. A step in InDoubt was started and never reported: it
// runs again when its type rechecks the host (step.Rechecker), and
// otherwise only with RetryInDoubt or SkipInDoubt.
type Resume struct {
	Done    map[StepKey]Outcome
	InDoubt map[StepKey]string
	// Applying are the in-doubt steps whose lost attempt had found a change
	// to make and started making it: a recheck that finds the change made
	// reports them changed, as the attempt would have.
	Applying map[StepKey]bool
	// RetryInDoubt runs in-doubt steps again even when their type cannot
	// tell whether the lost attempt made its change.
	RetryInDoubt bool
	// SkipInDoubt takes in-doubt steps as done: the operator checked by
	// hand that their change was made.
	SkipInDoubt bool
}

// InDoubtError refuses a resume that would repeat a step whose earlier
// attempt may have made its change, without the operator's say-so.
type InDoubtError struct {
	Steps []string
}

func (e *InDoubtError) Error() string {
	return fmt.Sprintf("%d step(s) were started and never reported, and running them again could repeat their change: %s; "+
		"check on the host whether the change was made, then resume with --retry-in-doubt to run them again or --skip-in-doubt to take them as done",
		len(e.Steps), strings.Join(e.Steps, "; "))
}

// rechecks says whether a step may be run again after a lost attempt.
func rechecks(s *Step) bool {
	r, ok := s.Body.(step.Rechecker)
	return ok && r.Rechecks()
}

// checkResume refuses, before anything runs, a resume whose in-doubt steps
// cannot be run again safely, and one whose recorded steps no longer match
// the playbook.
func (x *run) checkResume() error {
	rs := x.Resume
	if rs == nil {
		return nil
	}
	for k, o := range rs.Done {
		if k.Index < 1 || k.Index > len(x.pb.Steps) {
			return fmt.Errorf("the run recorded step %d, and the playbook has %d steps now", k.Index, len(x.pb.Steps))
		}
		if s := x.pb.Steps[k.Index-1]; o.ID != s.ID {
			return fmt.Errorf("the run recorded step %d with id %q, and it has id %q now: the steps moved", k.Index, o.ID, s.ID)
		}
	}
	if rs.RetryInDoubt || rs.SkipInDoubt {
		return nil
	}
	var unsafe []string
	for k, name := range rs.InDoubt {
		if k.Index < 1 || k.Index > len(x.pb.Steps) {
			return fmt.Errorf("the run recorded step %d, and the playbook has %d steps now", k.Index, len(x.pb.Steps))
		}
		if !rechecks(x.pb.Steps[k.Index-1]) {
			unsafe = append(unsafe, fmt.Sprintf("[%d] %s [%s]", k.Index, name, k.Host))
		}
	}
	if len(unsafe) > 0 {
		sort.Strings(unsafe)
		return &InDoubtError{Steps: unsafe}
	}
	return nil
}

// resumed returns the recorded outcome of a step that an earlier attempt
// finished, or that the operator took as done.
func (x *run) resumed(k StepKey) (Outcome, string, bool) {
	if x.Resume == nil {
		return Outcome{}, "", false
	}
	if o, ok := x.Resume.Done[k]; ok {
		return o, "done by an earlier attempt; not run again", true
	}
	if _, ok := x.Resume.InDoubt[k]; ok && x.Resume.SkipInDoubt {
		return Outcome{Status: StatusChanged, Result: step.Result{}}, "in doubt, taken as done (--skip-in-doubt)", true
	}
	return Outcome{}, "", false
}

// inDoubt says whether an earlier attempt of a step may have made its
// change.
func (x *run) inDoubt(k StepKey) bool {
	if x.Resume == nil {
		return false
	}
	_, ok := x.Resume.InDoubt[k]
	return ok
}
