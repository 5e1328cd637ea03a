package engine

import (
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
// failures into one error naming every failed host.
func (x *run) finish(index int, s *Step, outs []hostOutcome) error {
	var errs *multierror.Error
	results := make([]any, 0, len(outs))
	changed := false
	status := StatusOK
	for _, o := range outs {
		results = append(results, map[string]any{"host": o.host, "status": string(o.status), "result": map[string]any(o.result)})
		if o.status == StatusChanged || o.status == StatusWould {
			changed = true
		}
		if o.err != nil && o.status != StatusSkipped && o.status != StatusUnknown || o.status == StatusFailed {
			errs = multierror.Append(errs, &StepError{Step: s.Label(), Host: o.host, Err: o.err})
		}
	}
	x.noteUnapplied(s, outs)
	if len(outs) == 1 {
		status = outs[0].status
	} else if changed {
		status = StatusChanged
	}
	if s.ID != "" && !x.unapplied[s.ID] {
		entry := map[string]any{"status": string(status), "changed": changed, "results": results}
		if len(outs) == 1 {
			entry["result"] = map[string]any(outs[0].result)
		}
		x.steps[s.ID] = entry
	}
	if errs == nil {
		if !x.dryRun && !s.single() {
			// For a step of one host and no for_each, its outcome says it.
			x.sink.Emit(&Event{Type: EventStepDone, Index: index, ID: s.ID, Name: s.Label(), Status: status})
		}
		return nil
	}
	if len(errs.Errors) == 1 {
		return errs.Errors[0]
	}
	errs.ErrorFormat = oneLine
	return errs
}
