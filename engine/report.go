package engine

import (
	"strings"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/runbook-dev/runbook/steps"
)

// report emits the step-end event of target t with its outcome o and the
// plan it acted on (nil when there is none), and returns o.
func (x *run) report(t *target, o hostOutcome, plan *steps.Plan) hostOutcome {
	e := t.event(EventStepEnd)
	e.Status, e.Result, e.Duration, e.DryRun = o.status, o.result, time.Since(t.start), x.dryRun
	if plan != nil {
		e.Message, e.Diff = plan.Summary, plan.Diff
	}
	e.Print = o.printed
	e.Warning = strings.Join(t.warnings, "; ")
	if o.err != nil {
		e.Message = o.err.Error()
		if o.status == StatusUnknown {
			e.Message = "depends on a result the dry run did not produce: " + e.Message
		}
	}
	x.sink.Emit(e)
	crashpoint("outcome", t.key.Index)
	return o
}

// finish records a step's outcomes for later expressions and turns
// failures into one error naming every failed host. Failures the step
// tolerates are kept for the run's end instead (see tolerate).
func (x *run) finish(index int, s *Step, outs []hostOutcome) error {
	x.record(s, outs)
	errs := x.tolerate(s, failures(s, outs))
	if errs == nil {
		if !x.dryRun && !s.single() {
			// For a step of one host and no for_each, its outcome says it.
			x.sink.Emit(&Event{Type: EventStepDone, Index: index, ID: s.Key(), Name: s.Label(), Status: stepStatus(outs)})
		}
		return nil
	}
	return joinStepErrors(errs)
}

// failures returns a *StepError for each outcome that failed.
func failures(s *Step, outs []hostOutcome) []*StepError {
	var errs []*StepError
	for _, o := range outs {
		if o.err != nil && o.status != StatusSkipped && o.status != StatusUnknown || o.status == StatusFailed {
			errs = append(errs, &StepError{Step: s.Label(), Host: o.host, Err: o.err})
		}
	}
	return errs
}

// joinStepErrors returns the one error, or all of them in one line.
func joinStepErrors(errs []*StepError) error {
	if len(errs) == 0 {
		return nil
	}
	if len(errs) == 1 {
		return errs[0]
	}
	m := &multierror.Error{ErrorFormat: oneLine}
	for _, e := range errs {
		m.Errors = append(m.Errors, e)
	}
	return m
}

// stepStatus is the status of a step from its outcomes: the outcome of a
// step that ran once; changed when any target changed; ok otherwise.
func stepStatus(outs []hostOutcome) Status {
	changed := false
	for _, o := range outs {
		if o.status == StatusChanged || o.status == StatusWould {
			changed = true
		}
	}
	switch {
	case len(outs) == 1:
		return outs[0].status
	case changed:
		return StatusChanged
	}
	return StatusOK
}

// stepEntry is steps.ID in expressions, from the step's outcomes.
func stepEntry(outs []hostOutcome) map[string]any {
	results := make([]any, 0, len(outs))
	changed := false
	for _, o := range outs {
		results = append(results, map[string]any{"host": o.host, "status": string(o.status), "result": map[string]any(o.result)})
		if o.status == StatusChanged || o.status == StatusWould {
			changed = true
		}
	}
	entry := map[string]any{"status": string(stepStatus(outs)), "changed": changed, "results": results}
	if len(outs) == 1 {
		entry["result"] = map[string]any(outs[0].result)
	}
	return entry
}

// record keeps a step's outcomes for later expressions (steps.ID).
func (x *run) record(s *Step, outs []hostOutcome) {
	x.noteUnapplied(s, outs)
	if s.ID != "" && !x.unapplied[s.Key()] {
		x.stepsOf(s.Frame)[s.ID] = stepEntry(outs)
	}
}
