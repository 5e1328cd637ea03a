package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// BatchError is a batch that stopped: more hosts failed than its budget
// allows. The hosts of the batches after it were not touched.
type BatchError struct {
	Batch string
	// Stopped is the 1-based batch it stopped after, of Batches.
	Stopped, Batches int
	Failed           []*StepError
	// NotStarted are the hosts no step of the batch ran on.
	NotStarted []string
}

func (e *BatchError) Error() string {
	parts := make([]string, len(e.Failed))
	for i, f := range e.Failed {
		parts[i] = f.Error()
	}
	msg := fmt.Sprintf("batch %q stopped after batch %d of %d: %s", e.Batch, e.Stopped, e.Batches, strings.Join(parts, "; "))
	if len(e.NotStarted) > 0 {
		msg += "; not started (untouched): " + strings.Join(e.NotStarted, ", ")
	}
	return msg
}

// Unwrap returns the failures, so that errors.Is and As see their causes.
func (e *BatchError) Unwrap() []error {
	out := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		out[i] = f
	}
	return out
}

// split cuts hosts into the batches of b's serial: each size in turn, the
// last one repeated; a percentage is of all the hosts, rounded up.
func (b *Batch) split(hosts []string) [][]string {
	var out [][]string
	total := len(hosts)
	for i := 0; len(hosts) > 0; i++ {
		sz := b.Serial[min(i, len(b.Serial)-1)]
		n := sz.N
		if sz.Percent {
			n = (total*sz.N + 99) / 100
		}
		n = max(1, min(n, len(hosts)))
		out = append(out, hosts[:n])
		hosts = hosts[n:]
	}
	return out
}

// budget is how many of n hosts may fail before the batch stops.
func (b *Batch) budget(n int) int {
	if b.MaxFailPercent >= 0 {
		return n * b.MaxFailPercent / 100
	}
	return b.MaxFailures
}

// batch runs the steps of b on its hosts a batch at a time: every step on
// the hosts of a batch (at once within the batch), then the next batch. A
// host where a step failed runs none of the batch's later steps. Once more
// hosts failed than the budget allows, the run stops before the next
// batch, whose hosts stay untouched; failures within the budget are
// reported at the run's end (partial). A resume finds each step's outcome
// on each host in the journal, so it continues at the host and step where
// the run stopped.
func (x *run) batch(ctx context.Context, b *Batch) error {
	first := x.pb.Steps[b.First-1]
	hosts, err := x.expandHosts(x.env(first.Frame), b.Hosts, b.HostsExpr)
	if err != nil {
		return &StepError{Step: b.Name, Err: err}
	}
	groups := b.split(hosts)
	if err := x.sameBatches(b, groups); err != nil {
		return err
	}
	n := b.Last - b.First + 1
	outs := make([][]hostOutcome, n)
	// own[h] holds steps.ID of the batch's steps as seen on host h.
	own := map[string]map[string]any{}
	var failed []*StepError
	var stop error
	stoppedAt := 0
	for gi, group := range groups {
		if err := context.Cause(ctx); err != nil {
			stop = err
			break
		}
		e := &Event{Type: EventBatch, Index: b.First, ID: first.Key(), Name: b.Name, Host: strings.Join(group, ","),
			Item: gi + 1, Message: fmt.Sprintf("batch %d of %d", gi+1, len(groups)), DryRun: x.dryRun}
		if gi == 0 && !x.dryRun {
			// Journaled, so that a resume runs these batches or none.
			e.Batches = groups
		}
		x.sink.Emit(e)
		alive := group
		for si := 0; si < n && len(alive) > 0; si++ {
			index := b.First + si
			s := x.pb.Steps[index-1]
			if x.marks != nil {
				x.marks.stepStarts(index)
			}
			byHost := x.batchStep(ctx, index, s, alive, own)
			var next []string
			for _, h := range alive {
				ho := byHost[h]
				outs[si] = append(outs[si], ho...)
				x.noteUnapplied(s, ho)
				if s.ID != "" && !x.unapplied[s.Key()] {
					if own[h] == nil {
						own[h] = map[string]any{}
					}
					own[h][s.ID] = stepEntry(ho)
				}
				errs := failures(s, ho)
				if interrupted(ho) {
					stop = joinStepErrors(errs)
					if stop == nil {
						stop = context.Cause(ctx)
					}
				}
				errs = x.tolerate(s, errs)
				if len(errs) == 0 {
					next = append(next, h)
					continue
				}
				failed = append(failed, errs...)
			}
			alive = next
			if stop != nil {
				break
			}
		}
		stoppedAt = gi + 1
		if stop != nil {
			// Interrupted, or a host in doubt (its connection lost during a
			// change): no later batch starts until the operator knows.
			break
		}
		if x.dryRun {
			continue
		}
		if hostsOf(failed) > b.budget(len(hosts)) {
			var untouched []string
			for _, g := range groups[gi+1:] {
				untouched = append(untouched, g...)
			}
			stop = &BatchError{Batch: b.Name, Stopped: gi + 1, Batches: len(groups), Failed: failed, NotStarted: untouched}
			break
		}
	}
	for si := 0; si < n; si++ {
		s := x.pb.Steps[b.First+si-1]
		x.record(s, outs[si])
		if stop == nil && stoppedAt == len(groups) && len(failures(s, outs[si])) == 0 && !x.dryRun {
			x.sink.Emit(&Event{Type: EventStepDone, Index: b.First + si, ID: s.Key(), Name: s.Label(), Status: stepStatus(outs[si])})
		}
	}
	switch {
	case stop != nil:
		return stop
	case len(failed) == 0:
		return nil
	case x.dryRun:
		return joinStepErrors(failed)
	}
	// Within the budget: the run goes on, and ends partial; the failed
	// hosts are left alone by the steps after the batch.
	for _, f := range failed {
		x.addTolerated(f)
		if _, ok := x.failedHosts[f.Host]; !ok {
			x.failedHosts[f.Host] = f.Step
		}
	}
	return nil
}

// FailedHostError is a change a step did not make on a host because the
// host failed a step of a batch before it, within the batch's failure
// budget: the run went on with the other hosts and leaves this one alone
// (a restart that failed must not be followed by the changes that assume
// it). It is a tolerated failure: the run ends partial, and a resume,
// which runs the failed step again, makes the change once it passes.
type FailedHostError struct {
	Host, Step string
}

func (e *FailedHostError) Error() string {
	return fmt.Sprintf("not changed: %s failed step %q of its batch earlier in the run (within the batch's failure budget); once it is fixed there, runbook resume runs that step again and then makes this change", e.Host, e.Step)
}

// keptOff says whether err is a change the run kept off a host it goes on
// without (a guard tolerated it, or it failed a batch within the budget):
// always tolerated, and never what stops a fan-out.
func keptOff(err error) bool {
	var ue *UnguardedError
	var fe *FailedHostError
	return errors.As(err, &ue) || errors.As(err, &fe)
}

// batchStep runs step s on the hosts of a batch at once and returns each
// host's outcomes (several for a for_each step). own holds the results
// of the batch's earlier steps on each host.
func (x *run) batchStep(ctx context.Context, index int, s *Step, hosts []string, own map[string]map[string]any) map[string][]hostOutcome {
	views := make(map[string]map[string]any, len(hosts))
	for _, h := range hosts {
		done := x.stepsOf(s.Frame)
		v := make(map[string]any, len(done)+len(own[h]))
		for k, e := range done {
			v[k] = e
		}
		for k, e := range own[h] {
			v[k] = e
		}
		views[h] = v
	}
	out := make(map[string][]hostOutcome, len(hosts))
	if s.ForEach != nil {
		each := make([][]hostOutcome, len(hosts))
		var wg sync.WaitGroup
		for i, h := range hosts {
			wg.Go(func() { each[i] = x.forEach(ctx, index, s, h, views[h]) })
		}
		wg.Wait()
		for i, h := range hosts {
			out[h] = each[i]
		}
		return out
	}
	outcomes := make([]hostOutcome, len(hosts))
	mk := func(h string) *target {
		t := newTarget(index, s, h, nil, 0)
		t.view = views[h]
		return t
	}
	if len(hosts) == 1 {
		outcomes[0] = x.onHost(ctx, mk(hosts[0]))
	} else {
		// Every host of the batch finishes its step: one failing does
		// not cancel a restart half-way on another.
		x.fanOut(ctx, hosts, 0, -1, Tolerance{}, outcomes, mk)
	}
	for i, h := range hosts {
		out[h] = []hostOutcome{outcomes[i]}
	}
	return out
}

// interrupted says whether a target was cancelled or lost its host while
// it made its change: the run stops whatever the budget.
func interrupted(outs []hostOutcome) bool {
	for _, o := range outs {
		if o.status == StatusInterrupted || o.status == StatusInDoubt {
			return true
		}
	}
	return false
}

// hostsOf counts the hosts that failed.
func hostsOf(errs []*StepError) int {
	seen := map[string]bool{}
	for _, e := range errs {
		seen[e.Host] = true
	}
	return len(seen)
}

// withSteps returns a copy of env with steps as steps.
func withSteps(env map[string]any, steps map[string]any) map[string]any {
	out := make(map[string]any, len(env))
	for k, v := range env {
		out[k] = v
	}
	out["steps"] = steps
	return out
}
