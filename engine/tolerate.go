package engine

import (
	"errors"
	"fmt"
	"strings"
)

// PartialError is a run that went through all its steps while some of
// them failed on some hosts in a way the playbook tolerates (tolerate:, a
// guard's tolerate:, a batch's failure budget): each failure is listed.
type PartialError struct {
	Failures []*StepError
}

func (e *PartialError) Error() string {
	parts := make([]string, len(e.Failures))
	for i, f := range e.Failures {
		parts[i] = f.Error()
	}
	return fmt.Sprintf("partial: %d failure(s) tolerated: %s", len(e.Failures), strings.Join(parts, "; "))
}

// Hosts returns the hosts that failed, each once, in order.
func (e *PartialError) Hosts() []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range e.Failures {
		if !seen[f.Host] {
			seen[f.Host] = true
			out = append(out, f.Host)
		}
	}
	return out
}

// tolerate keeps the failures of step s that it tolerates for the run's
// end, and returns the others. A change kept off a host a guard tolerated
// (*UnguardedError), or a host that failed a batch within its budget
// (*FailedHostError), is always tolerated: the run was told to go on
// without that host. A dry run tolerates them too: the plan
// says what the run will do.
func (x *run) tolerate(s *Step, errs []*StepError) []*StepError {
	var out []*StepError
	for _, e := range errs {
		var de *inDoubtError
		if keptOff(e.Err) || s.Tolerate.Covers(e.Err) && !errors.Is(e.Err, ErrInterrupted) && !errors.As(e.Err, &de) {
			x.addTolerated(e)
			continue
		}
		out = append(out, e)
	}
	return out
}

// addTolerated records a failure the run goes on after.
func (x *run) addTolerated(e *StepError) {
	x.tolMu.Lock()
	defer x.tolMu.Unlock()
	x.tolerated = append(x.tolerated, e)
}

// partial returns the run's tolerated failures as a *PartialError, or nil.
func (x *run) partial() error {
	x.tolMu.Lock()
	defer x.tolMu.Unlock()
	if len(x.tolerated) == 0 {
		return nil
	}
	// Redacted here: the CLI lists them one by one.
	red := x.redactor()
	out := make([]*StepError, len(x.tolerated))
	for i, f := range x.tolerated {
		out[i] = &StepError{Step: red.String(f.Step), Host: red.String(f.Host), Err: red.Error(f.Err)}
	}
	return &PartialError{Failures: out}
}
