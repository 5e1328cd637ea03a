package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/durable"
	"github.com/runbook-dev/runbook/internal/notify"
	"github.com/runbook-dev/runbook/internal/redact"
)

// session is what surrounds a run or a resume for the people around it:
// the hooks told of its start and end, and the retention of journals
// applied once it ended (docs/operations.md).
type session struct {
	e        *Env
	cfg      *userConfig
	notifier *notify.Notifier
	sum      notify.Summary
	start    time.Time
	// started is closed once the start hooks are done: they run beside
	// the run, never before its first step.
	started chan struct{}
}

// startSession tells the hooks that the run starts, without waiting for
// them: a slow webhook never holds back the first step.
func (e *Env) startSession(ctx context.Context, cfg *userConfig, pb *engine.Playbook, runID string, values map[string]any, secrets map[string]string, resumed bool) *session {
	vals := make([]string, 0, len(secrets))
	for _, v := range secrets {
		vals = append(vals, v)
	}
	host, _ := os.Hostname()
	var s0log bytes.Buffer
	// What the start hooks say is kept until the run ends: the run writes
	// to the same stream meanwhile.
	s := &session{e: e, cfg: cfg, start: time.Now(),
		notifier: &notify.Notifier{Hooks: cfg.Hooks, Redactor: redact.New(vals), Log: &s0log, Getenv: e.Getenv},
		sum: notify.Summary{Event: notify.Start, RunID: runID, Playbook: pb.Name, Params: values, Operator: e.operator(), Host: host,
			Resumed: resumed, Started: time.Now().UTC()}}
	s.started = make(chan struct{})
	go func() {
		defer close(s.started)
		s.notifier.Notify(context.WithoutCancel(ctx), s.sum)
	}()
	return s
}

// end tells the hooks how the run ended (err as the runner returned it,
// watch what its steps did). Interrupted or not, the hooks get their
// time: each its own limit.
func (s *session) end(ctx context.Context, err error, watch *changeWatch) {
	sum := s.sum
	sum.Event = outcomeOf(err)
	sum.DurationSeconds = time.Since(s.start).Seconds()
	if err != nil {
		sum.Message = err.Error()
		if f := watch.failed.Load(); f != nil && sum.Event != notify.Refused {
			sum.FailedStep, sum.FailedHost = f.Name, f.Host
		}
	}
	// The end hooks follow the start hooks (a receiver sees them in
	// order), each within its time limit counted from the run's end: a
	// hook that hangs never delays the exit by more than its limit.
	ended := time.Now()
	<-s.started
	if b, ok := s.notifier.Log.(*bytes.Buffer); ok {
		_, _ = s.e.Stderr.Write(b.Bytes())
	}
	s.notifier.Log = s.e.Stderr
	s.notifier.NotifySince(context.WithoutCancel(ctx), sum, ended)
}

// outcomeOf says how a run ended, as hooks see it.
func outcomeOf(err error) notify.Outcome {
	switch {
	case err == nil:
		return notify.Success
	case errors.Is(err, engine.ErrInterrupted) || errors.Is(err, context.Canceled):
		return notify.Interrupted
	case isA[*engine.GuardError](err) || isA[*durable.HeldError](err) || isA[*engine.UnconfirmedError](err) || isA[*engine.ConfirmError](err):
		return notify.Refused
	case isA[*engine.PartialError](err):
		return notify.Partial
	}
	return notify.Failure
}

// isA reports whether err's tree holds an error of type E.
func isA[E error](err error) bool {
	_, ok := errors.AsType[E](err)
	return ok
}

// retain applies the configured retention to the store sf names, once a
// journaled run ended. What it removes is said in one line; it never
// removes a run that can still be resumed.
func (s *session) retain(sf *stateFlags) {
	r := s.cfg.Retention
	if r == nil {
		return
	}
	store, err := sf.open(context.Background())
	if err != nil {
		fmt.Fprintf(s.e.Stderr, "runbook: retention (%s): %v\n", s.cfg.File, err)
		return
	}
	defer store.Close()
	res, err := durable.Prune(store, durable.PruneOptions{OlderThan: r.OlderThan, Keep: r.Keep, Now: time.Now()})
	if err != nil {
		fmt.Fprintf(s.e.Stderr, "runbook: retention (%s): %v\n", s.cfg.File, err)
		return
	}
	if len(res.Removed) > 0 {
		ids := make([]string, len(res.Removed))
		for i, p := range res.Removed {
			ids[i] = p.RunID
		}
		fmt.Fprintf(s.e.Stderr, "runbook: retention (%s): removed the journals of %d run(s): %s\n", s.cfg.File, len(ids), strings.Join(ids, ", "))
	}
	for id, err := range res.Failed {
		fmt.Fprintf(s.e.Stderr, "runbook: retention: run %s: %v\n", id, err)
	}
}
