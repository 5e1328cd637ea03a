package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/internal/transport"
	"github.com/runbook-dev/runbook/steps"
)

// hostOutcome is how a step ended on one target.
type hostOutcome struct {
	host   string
	status Status
	result steps.Result
	err    error
	// printed is the step's print text, rendered with its result.
	printed string
	// final is a failure that retries must not repeat: a refused gate.
	final bool
	// notStarted is a host of a fan-out that stopped before it started
	// there: no event, no record; a resume runs it as any step.
	notStarted bool
}

// inDoubtError is an outcome in doubt: no tolerate: covers it, since the
// operator must know before the run goes on.
type inDoubtError struct{ err error }

func (e *inDoubtError) Error() string { return e.err.Error() }
func (e *inDoubtError) Unwrap() error { return e.err }

// onHost runs a step for one target: unless a resume finds it done, it
// resolves the target, checks its when, rechecks the host after a lost
// attempt, attempts the step with its retries and reports the outcome.
func (x *run) onHost(ctx context.Context, t *target) hostOutcome {
	if o, ok := x.resumed(t); ok {
		return o
	}
	x.runsAgain(t.key)
	host := t.key.Host
	if err := x.resolve(t); err != nil {
		return x.report(t, hostOutcome{host: host, status: StatusFailed, err: err}, nil)
	}
	switch {
	case t.whenErr != nil:
		return x.report(t, hostOutcome{host: host, status: x.failStatus(t.whenErr), err: fmt.Errorf("when: %w", t.whenErr)}, nil)
	case t.skip:
		return x.report(t, hostOutcome{host: host, status: StatusSkipped, result: steps.Result{}}, &steps.Plan{Summary: "when is false: " + t.step.When.Source})
	}
	if err := x.leftAlone(t.step, host); err != nil {
		return x.report(t, hostOutcome{host: host, status: StatusFailed, err: err, final: true}, nil)
	}
	start := t.event(EventStepStart)
	start.DryRun = x.dryRun
	x.sink.Emit(start)
	crashpoint("intent", t.key.Index)
	if err := x.recheck(ctx, t); err != nil {
		return x.report(t, hostOutcome{host: host, status: x.failStatus(err), err: err}, nil)
	}
	o, plan := x.attempts(ctx, t)
	o, plan = x.madeByLostAttempt(t, o, plan)
	return x.report(t, o, plan)
}

// attempts attempts the step until it does not fail, up to its retries,
// pausing its retry delay between attempts. A failure marked final, an
// interrupted run and a dry run (which applies nothing) are not retried.
func (x *run) attempts(ctx context.Context, t *target) (hostOutcome, *steps.Plan) {
	for attempt := 0; ; attempt++ {
		o, plan := x.attempt(ctx, t)
		if o.status != StatusFailed || o.final || ctx.Err() != nil || x.dryRun {
			return o, plan
		}
		if t.retryErr != nil {
			o.err = t.retryErr
			return o, plan
		}
		if attempt >= t.retries {
			return o, plan
		}
		t.ex.Progress(fmt.Sprintf("attempt %d failed: %v; retrying in %s", attempt+1, o.err, t.retryDelay))
		select {
		case <-ctx.Done():
		case <-time.After(t.retryDelay):
		}
	}
}

// attempt plans the step on its target, asks its gate when the plan
// finds a change, applies the change and verifies the result, all within
// the step's timeout. A dry run stops after the plan.
func (x *run) attempt(ctx context.Context, t *target) (hostOutcome, *steps.Plan) {
	s, ex := t.step, t.ex
	o := hostOutcome{host: t.key.Host}
	t.warnings = nil
	if t.timeoutErr != nil {
		o.status, o.err = StatusFailed, fmt.Errorf("timeout: %w", t.timeoutErr)
		return o, nil
	}
	outer := ctx
	var clock *stepClock
	if !s.Timeout.IsZero() {
		ctx, clock = startClock(outer, t.timeout, &StepTimeoutError{Step: s.Label(), Limit: t.timeout})
		defer clock.stop()
	}
	gate := t.gate()
	plan, err := s.Body.Plan(ctx, ex)
	if r, ok := x.notFailed(ctx, t, err); ok {
		// failed_when judged the failed observation a success.
		plan, err = &steps.Plan{Summary: "failed_when " + s.FailedWhen.Source + " is false", Result: r}, nil
	}
	if err != nil {
		if o, ok := x.unknownPlan(ctx, t, gate, err); ok {
			return o, nil
		}
		return x.failed(ctx, o, err)
	}
	switch {
	case plan.Skipped:
		o.status, o.result = StatusSkipped, plan.Result
		return o, plan
	case !plan.Changes:
		o.status, o.result = StatusOK, plan.Result
	case x.dryRun:
		return x.wouldChange(ctx, t, gate, plan), plan
	default:
		// The operator's time is not the step's: the gate is asked under
		// the run's context, and the time given back to the step's clock.
		waited, err := x.confirmStep(outer, t, gate, plan)
		if err != nil {
			o.status, o.err, o.final = x.failStatus(err), err, true
			return o, nil
		}
		if clock != nil && waited > 0 {
			ctx = clock.extend(waited)
		}
		var applied bool
		if o, applied = x.apply(ctx, t, plan); !applied {
			return o, nil
		}
	}
	return x.verify(ctx, t, o, plan)
}

// apply makes the change the plan found, once the journal's mark covers
// the step, and returns the outcome and whether the step goes on to its
// verification.
func (x *run) apply(ctx context.Context, t *target, plan *steps.Plan) (hostOutcome, bool) {
	o := hostOutcome{host: t.key.Host}
	if x.marks != nil {
		if err := x.marks.await(t.key.Index); err != nil {
			o, _ = x.failed(ctx, o, fmt.Errorf("journal: %w; nothing was changed", err))
			return o, false
		}
	}
	e := t.event(EventStepApply)
	e.Message = plan.Summary
	x.sink.Emit(e)
	r, err := t.step.Body.Apply(ctx, t.ex, plan)
	crashpoint("applied", t.key.Index)
	if fr, ok := x.notFailed(ctx, t, err); ok {
		r, err = fr, nil
	}
	o.result = r
	if err != nil {
		if transport.IsLost(err) && ctx.Err() == nil {
			// Not failed: its command may go on without us. Retrying here
			// would start it a second time beside the first.
			o.status, o.err, o.final = StatusInDoubt, &inDoubtError{fmt.Errorf("in doubt: %w; the change may be made or still being made: resume checks the host again (and waits for a command still running) before it acts", err)}, true
			return o, false
		}
		if stoppedByRun(ctx) && mayChangeHost(t.step) {
			// Cut short by the run, not failed: the change had begun, and
			// stopping its command undoes nothing it did (nor does a kill
			// that does not arrive stop it). As after a lost connection,
			// the process record stays and the resume rechecks or asks.
			// An error that races the stop is taken as this one: in doubt
			// is the safe side. A step that only looks (a wait, a capture)
			// has nothing in doubt: it fails, and runs again.
			o.status, o.err, o.final = StatusInDoubt, &inDoubtError{fmt.Errorf("in doubt: cut short while it made its change here, as the step %w; the change may be half made (stopping its command undoes nothing): resume checks the host again, waiting for a command still running, or asks when the step cannot check", context.Cause(ctx))}, true
			return o, false
		}
		o, _ = x.failed(ctx, o, err)
		return o, false
	}
	o.status = StatusChanged
	return o, true
}

// readsOutput says whether expression source src may read a result's
// output (stdout, stderr, or the result whole): anything of result but
// its exit code and flags.
func readsOutput(src string) bool {
	for _, f := range []string{"result.exit_code", "result.truncated", "result.skipped", "result.changed"} {
		src = strings.ReplaceAll(src, f, "")
	}
	return strings.Contains(src, "result")
}

// cutJudgement returns why the failed_when or assert of t cannot judge
// result r: r was cut at max_output and the expression reads its output,
// whose dropped part may hold what it looks for. Empty when it can.
func cutJudgement(t *target, r steps.Result) string {
	if r["truncated"] != true {
		return ""
	}
	for _, e := range []*tmpl.Expr{t.step.FailedWhen, t.step.Assert} {
		if e != nil && readsOutput(e.Source) {
			return fmt.Sprintf("%s cannot judge a result cut at max_output (result.truncated: the output beyond the limit was dropped, and what it looks for may be there)", e.Source)
		}
	}
	return ""
}

// verify checks the step's assert on its result and renders its print.
// A judgement on a cut output fails safe: a read-only step fails, and a
// change, made, is in doubt (resume runs it again only when told).
func (x *run) verify(ctx context.Context, t *target, o hostOutcome, plan *steps.Plan) (hostOutcome, *steps.Plan) {
	s, ex := t.step, t.ex
	if why := cutJudgement(t, o.result); why != "" && o.status != StatusSkipped {
		if o.status == StatusChanged {
			o.status, o.final = StatusInDoubt, true
			o.err = &inDoubtError{fmt.Errorf("in doubt: the command completed, and %s; check the host, then resume with --skip-in-doubt (it worked) or --retry-in-doubt; raise max_output so that the check sees the whole output", why)}
			return o, nil
		}
		return x.failed(ctx, o, errors.New(why+"; raise max_output"))
	}
	if s.FailedWhen != nil && o.status != StatusSkipped {
		bad, err := s.FailedWhen.EvalBool(withResult(ex.Env, o.result))
		switch {
		case err != nil:
			return x.failed(ctx, o, fmt.Errorf("failed_when: %w", err))
		case bad:
			return x.failed(ctx, o, fmt.Errorf("failed_when %s is true; observed %s", s.FailedWhen.Source, steps.Show(x.redactor(), o.result)))
		}
	}
	if s.Assert != nil {
		env := withResult(ex.Env, o.result)
		ok, err := s.Assert.EvalBool(env)
		if err != nil {
			return x.failed(ctx, o, fmt.Errorf("assert: %w", err))
		}
		if !ok {
			if o, ok := x.unknownAssert(t, o); ok {
				return o, plan
			}
			if s.Message != nil {
				if msg, err := s.Message.Render(env); err == nil {
					return x.failed(ctx, o, errors.New(msg))
				}
			}
			return x.failed(ctx, o, fmt.Errorf("assert %s is false; observed %s", s.Assert.Source, steps.Show(x.redactor(), o.result)))
		}
	}
	if s.Print != nil && o.status != StatusSkipped {
		if text, err := s.Print.Render(withResult(ex.Env, o.result)); err == nil {
			o.printed = text
		} else {
			o.printed = "(print: " + err.Error() + ")"
		}
	}
	return o, plan
}

// notFailed returns the result of a step that failed with err, when the
// step has a failed_when, err came with a result (steps.ResultError) and
// failed_when is false on it: the playbook, not the step type, says what
// failing is. verify then checks failed_when again, with the outcome.
func (x *run) notFailed(ctx context.Context, t *target, err error) (steps.Result, bool) {
	var re steps.ResultError
	if t.step.FailedWhen == nil || err == nil || ctx.Err() != nil || !errors.As(err, &re) || re.Observed() == nil {
		return nil, false
	}
	if cutJudgement(t, re.Observed()) != "" {
		// verify fails it safe.
		return re.Observed(), true
	}
	bad, e := t.step.FailedWhen.EvalBool(withResult(t.ex.Env, re.Observed()))
	if e != nil || bad {
		return nil, false
	}
	return re.Observed(), true
}

// failed returns o failed with err, or with the cause of ctx's end (a
// step's timeout, an interruption) when ctx ended: that is what failed.
func (x *run) failed(ctx context.Context, o hostOutcome, err error) (hostOutcome, *steps.Plan) {
	if c := context.Cause(ctx); c != nil && ctx.Err() != nil {
		err = c
	}
	o.status, o.err = x.failStatus(err), err
	return o, nil
}

// stepClock is a step's timeout. The time the operator takes to answer
// the step's gate is given back: the limit is for the step's own work.
type stepClock struct {
	outer    context.Context
	deadline time.Time
	cause    error
	cancel   context.CancelFunc
}

// startClock returns the step's context, which ends at the limit.
func startClock(outer context.Context, limit time.Duration, cause error) (context.Context, *stepClock) {
	k := &stepClock{outer: outer, deadline: time.Now().Add(limit), cause: cause}
	ctx, cancel := context.WithDeadlineCause(outer, k.deadline, cause)
	k.cancel = cancel
	return ctx, k
}

// extend returns a new context for the step, whose deadline is later by
// d; the old one is cancelled.
func (k *stepClock) extend(d time.Duration) context.Context {
	k.cancel()
	k.deadline = k.deadline.Add(d)
	ctx, cancel := context.WithDeadlineCause(k.outer, k.deadline, k.cause)
	k.cancel = cancel
	return ctx
}

func (k *stepClock) stop() { k.cancel() }
