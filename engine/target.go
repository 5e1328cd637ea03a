package engine

import (
	"fmt"
	"time"

	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/steps"
)

// target is one execution of a step: the step on one host, for one
// element of its for_each. What the step's templates give there (its
// environment, the values to mask, its name, its timeout and retry delay,
// its when) is resolved once, by resolve, into the target; the attempts,
// the events the journal records and the report read it from there.
type target struct {
	step *Step
	// key is the step's 1-based index, the host and the element's 1-based
	// position (0 without for_each): the journal's name for the target.
	key StepKey
	// item is the for_each element, nil without for_each.
	item *any
	// view, for a step of a batch, is steps in its expressions: the
	// results on this host of the batch's steps before it, over the
	// results of the steps before the batch. Nil: the run's steps.
	view map[string]any
	// start is when the target began, for its step-end's duration.
	start time.Time
	// name is the step's label in events, with its element (see label).
	name string
	// ex is what the step runs with on the host; nil until resolved.
	ex *steps.Exec
	// skip says the step's when is false; whenErr is why it could not be
	// evaluated.
	skip    bool
	whenErr error
	// timeout is the step's limit, zero without one; timeoutErr is why
	// it could not be resolved, which every attempt fails with.
	timeout    time.Duration
	timeoutErr error
	// retries is the step's retries, resolved (retries: ${{ }} too);
	// retryDelay is the pause between attempts, resolved for a step with
	// retries; retryErr is why either could not be, which ends the retries.
	retries    int
	retryDelay time.Duration
	retryErr   error
	// warnings are what the step's last attempt said with its result
	// (see steps.Exec.Warn): one target runs in one goroutine.
	warnings []string
}

// newTarget returns the target of step s (index is its 1-based index) on
// host for the element item at 1-based position itemNo (nil and 0 without
// for_each), not yet resolved.
func newTarget(index int, s *Step, host string, item *any, itemNo int) *target {
	return &target{step: s, key: StepKey{Index: index, Host: host, Item: itemNo}, item: item, start: time.Now()}
}

// resolve builds the target's Exec, masks from then on what its inputs
// give that may hold a secret, and resolves its name, timeout, retry delay
// and when. Only an unknown host is an error; the other templates keep
// theirs in the target, for the attempt to fail with where the step would
// have used them.
func (x *run) resolve(t *target) error {
	s := t.step
	ex, err := x.exec(s.Frame, t.key.Host, s.Become)
	if err != nil {
		t.name = x.label(t)
		return err
	}
	if t.view != nil {
		ex.Env["steps"] = t.view
	}
	if t.item != nil {
		ex.Env[itemKey] = *t.item
		if taint, _ := s.ForEach.Taint(); taint != nil {
			x.mask(leaves(*t.item)...)
		}
	}
	if len(s.Tainted) > 0 {
		x.maskInputs(s.Tainted, ex.Env)
	}
	ex.Redact = x.redactor()
	ex.Tag = x.tag(t.key)
	t.ex = ex
	t.name = x.label(t)
	ex.Progress = func(msg string) {
		e := t.event(EventStepProgress)
		e.Message = msg
		x.sink.Emit(e)
	}
	ex.Warn = func(msg string) { t.warnings = append(t.warnings, msg) }
	ex.Started = func(pgid int) {
		e := t.event(EventStepProcess)
		e.PID = pgid
		x.sink.Emit(e)
		crashpoint("started", t.key.Index)
	}
	if s.When != nil {
		ok, err := s.When.EvalBool(ex.Env)
		t.skip, t.whenErr = !ok && err == nil, err
	}
	if !s.Timeout.IsZero() {
		t.timeout, t.timeoutErr = s.Timeout.Get(ex.Env)
	}
	if t.retries, t.retryErr = s.Retries.Get(ex.Env); t.retryErr != nil {
		t.retryErr = fmt.Errorf("retries: %w", t.retryErr)
	} else if t.retries > 0 {
		if t.retryDelay, t.retryErr = s.RetryDelay.Get(ex.Env); t.retryErr != nil {
			t.retryErr = fmt.Errorf("retry_delay: %w", t.retryErr)
		}
	}
	return nil
}

// event returns an event of type typ about the target.
func (t *target) event(typ EventType) *Event {
	return &Event{Type: typ, Index: t.key.Index, ID: t.step.Key(), Name: t.name, Host: t.key.Host, Item: t.key.Item}
}

// gate returns the target's confirmation gate, not yet asked; nil for a
// step without one.
func (t *target) gate() *Gate {
	if t.step.Confirm == nil {
		return nil
	}
	return &Gate{Index: t.key.Index, ID: t.step.Key(), Step: t.name, Host: t.key.Host, Item: t.key.Item}
}

// label names a step in events, with the for_each element it runs for,
// redacted before it is cut. The elements of a list that may hold a secret
// are named by their position only.
func (x *run) label(t *target) string {
	s := t.step
	if t.item == nil {
		return s.Label()
	}
	if taint, _ := s.ForEach.Taint(); taint != nil {
		return fmt.Sprintf("%s (element %d)", s.Label(), t.key.Item)
	}
	it := tmpl.Format(*t.item)
	if m, ok := (*t.item).(map[string]any); ok {
		// A mapping is named by its name or id, or shown as the results
		// are ({key: value, ...}), never as Go prints a map.
		it = steps.Show(x.redactor(), m)
		for _, k := range []string{"name", "id"} {
			if v, ok := m[k]; ok {
				it = tmpl.Format(v)
				break
			}
		}
	}
	return s.Label() + " (" + steps.Cut(x.redactor().String(it), 60) + ")"
}
