package engine

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-multierror"

	"github.com/runbook-dev/runbook/steps"
)

// What a dry run does differently, beside taking no lock and no journal
// marks (Run), not retrying (attempts), and showing gates without asking
// them (confirm): it runs every step's plan and applies none; a step
// whose plan finds a change reports would-change; a step that reads what
// an earlier step did not apply reports unknown, not failed (failStatus);
// and it goes on past failures, to report them all.

// planGoesOn says whether the run goes on after a step failed: a dry run
// does, unless it was interrupted.
func (x *run) planGoesOn(ctx context.Context) bool {
	return x.dryRun && ctx.Err() == nil
}

// planErrors collects the failures of a dry run's steps.
type planErrors struct {
	errs *multierror.Error
}

func (p *planErrors) add(err error) { p.errs = multierror.Append(p.errs, err) }

// err returns every failure in one error, or nil.
func (p *planErrors) err() error {
	if p.errs != nil {
		p.errs.ErrorFormat = oneLine
	}
	return p.errs.ErrorOrNil()
}

// unknownPlan returns, in a dry run after steps it did not apply, the
// unknown outcome of a step whose plan failed with err: a probe that fails
// before the changes above are made (a service not started yet) says
// nothing about the real run. Its gate, if any, is shown.
func (x *run) unknownPlan(ctx context.Context, t *target, g *Gate, err error) (hostOutcome, bool) {
	if !x.dryRun || len(x.unapplied) == 0 || ctx.Err() != nil {
		return hostOutcome{}, false
	}
	_, _ = x.confirmStep(ctx, t, g, nil) // shown, never asked
	return hostOutcome{host: t.key.Host, status: StatusUnknown, err: fmt.Errorf("may depend on the changes above: %w", err)}, true
}

// wouldChange returns the outcome of a step whose plan found a change, in
// a dry run: it would change its host. Its gate, if any, is shown.
func (x *run) wouldChange(ctx context.Context, t *target, g *Gate, plan *steps.Plan) hostOutcome {
	_, _ = x.confirmStep(ctx, t, g, plan) // shown, never asked
	return hostOutcome{host: t.key.Host, status: StatusWould}
}

// unknownAssert returns, in a dry run after steps it did not apply, the
// unknown outcome of a step whose assert is false: the state was checked
// before the changes above were made, and what the assert will see after
// them is not known yet.
func (x *run) unknownAssert(t *target, o hostOutcome) (hostOutcome, bool) {
	if !x.dryRun || len(x.unapplied) == 0 {
		return o, false
	}
	o.status, o.err = StatusUnknown, fmt.Errorf("checked after the changes above are applied: %s", t.step.Assert.Source)
	return o, true
}

// noteUnapplied records a step that a dry run did not apply on some
// target (would-change, unknown): later steps cannot read its result, and
// their failures may be the changes' absence. A step without an id counts
// too, under "".
func (x *run) noteUnapplied(s *Step, outs []hostOutcome) {
	for _, o := range outs {
		if o.status == StatusWould || o.status == StatusUnknown {
			x.unapplied[s.Key()] = true
		}
	}
}
