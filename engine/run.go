package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runbook-dev/runbook/internal/redact"
	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/internal/transport"
	"github.com/runbook-dev/runbook/steps"
)

// The runner is split by concern: run.go (this file) holds the order of a
// run and its state; guards.go the guards; hosts.go which hosts and
// elements a step runs for; target.go what a step resolves on one of
// them; attempt.go its attempts and retries; report.go its events and
// outcomes; dryrun.go and resume.go what a dry run and a resume change
// in all that; confirm.go the confirmation gates; mask.go what the run
// masks besides the secrets.

// Connector opens a connection to a host.
type Connector func(ctx context.Context, h *HostSpec) (transport.Conn, error)

// Runner runs a playbook.
type Runner struct {
	Inventory *Inventory
	// Connect opens SSH connections; hosts with the local transport never
	// reach it. Nil refuses every SSH host.
	Connect Connector
	Sink    Sink
	// DryRun probes and plans every step without applying any.
	DryRun bool
	// Lock takes a playbook's lock: for the whole run, released by the
	// returned function. Nil ignores locks. A dry run takes none.
	Lock func(ctx context.Context, name string) (release func(), err error)
	// Resume continues earlier attempts of the run: what they finished is
	// not run again. Nil runs everything.
	Resume *Resume
	// RunID names the run (kept by its resumes): a step may leave it on the
	// host with its work (PostgreSQL's application_name), so that a resume
	// finds work an earlier attempt left running (see steps.Exec.Tag).
	RunID string
	// Dir is the directory relative paths on this machine (capture's dest)
	// are resolved against: a resume passes the run's (durable.Header.Dir).
	// Empty: the working directory when the run starts.
	Dir string
	// Confirm answers the playbook's confirmation gates (confirm:). Nil
	// means nobody can answer: a run that could reach a gate is refused
	// before anything runs (*UnconfirmedError). A dry run never asks.
	Confirm Confirmer
}

// Inputs are the values a run starts from.
type Inputs struct {
	Params  map[string]any
	Secrets map[string]string
}

// StepError is a step that failed.
type StepError struct {
	Step string
	Host string
	Err  error
}

func (e *StepError) Error() string {
	if e.Host != "" {
		return fmt.Sprintf("step %q on %s: %v", e.Step, e.Host, e.Err)
	}
	return fmt.Sprintf("step %q: %v", e.Step, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// StepTimeoutError is the cause of a step cancelled by its timeout.
type StepTimeoutError struct {
	Step  string
	Limit time.Duration
}

func (e *StepTimeoutError) Error() string {
	return fmt.Sprintf("step %q timed out after %s", e.Step, e.Limit)
}

// ErrInterrupted is the cause of a run cancelled by the operator.
var ErrInterrupted = errors.New("interrupted")

// run is one run of a playbook. It copies what it needs of the Runner
// rather than embedding it: the Runner's sink does not redact, and the
// only sink a run can reach is sink, which does.
type run struct {
	pb     *Playbook
	inv    *Inventory
	dryRun bool
	// resume is nil for a run that continues no earlier attempt.
	resume *Resume
	runID  string
	// confirmer is nil when nobody can answer a gate.
	confirmer Confirmer
	// sink masks the secrets, and what the run computed from them, in
	// every event before the Runner's sink sees it.
	sink Sink
	// marks is nil without a Marker (no journal) and in a dry run.
	marks *marks
	// red masks the secrets, and the values computed from them that the
	// run has met so far (see maskInputs); it only grows.
	red   atomic.Pointer[redact.Redactor]
	redMu sync.Mutex
	pool  *pool
	// sightings are the hosts its probes found down (steps.DownReuse).
	sightings *steps.Sightings
	// factsMu guards the facts' values in the frames' environments while
	// they come in, and factsPending says they do (see startFacts).
	factsMu      sync.Mutex
	factsPending atomic.Bool
	// frames are the environments every host starts from, by frame: nil
	// for the top playbook, one for each playbook it includes.
	frames map[*Frame]*frameEnv
	// skipped says why an included playbook does not run, by frame: its
	// include's when (or an includer's) is false.
	skipped map[*Frame]string
	// unapplied holds the ids of steps a dry run did not apply.
	unapplied map[string]bool
	// gateMu serialises confirmation gates; passed are the steps whose
	// gate this run passed, by step index (0: the playbook's); answered
	// are the answers by step and word (nil: confirmed).
	gateMu   sync.Mutex
	passed   map[int]bool
	answered map[GateKey]error
	// tolerated are the failures the run went on after (see tolerate).
	tolMu     sync.Mutex
	tolerated []*StepError
	// localDir is Runner.Dir, or the working directory at the start.
	localDir string
	// rerun holds, for each host a resume ran a step on again, the lowest
	// index of such a step: what the later steps found there is stale.
	rerunMu sync.Mutex
	rerun   map[string]int
	// unguarded are the hosts a guard tolerated without observing them
	// (unreachable), with the guard's label: no step changes them.
	unguarded map[string]string
	// failedHosts are the hosts that failed a batch within its failure
	// budget, with the step they failed: the later steps leave them alone
	// (see leftAlone).
	failedHosts map[string]string
}

// Run checks the guards, asks the playbook's confirmation gate, then runs
// the steps in order. It returns a *GuardError when a guard refused the
// run, an *UnconfirmedError when a gate could be reached and nobody can
// answer it (before anything runs), a *ConfirmError when the operator did
// not confirm a gate, and a *StepError when a step failed.
func (r *Runner) Run(ctx context.Context, pb *Playbook, in Inputs) (err error) {
	x := r.newRun(pb, in)
	// Connections are closed even when ctx was cancelled.
	defer x.pool.closeAll()
	start := time.Now()
	x.sink.Emit(&Event{Type: EventRunStart, Playbook: pb.Name, DryRun: x.dryRun, Report: pb.Outcome != nil && pb.Outcome.Text != nil && !x.dryRun})
	defer func() {
		st, msg := StatusOK, "done"
		end := &Event{Type: EventRunEnd, Playbook: pb.Name, Duration: time.Since(start), DryRun: x.dryRun, Durable: true}
		text, value, code, reported, oerr := x.outcomeOf(err)
		if reported {
			end.Output, end.Value, end.ExitCode = text, value, code
		}
		if oerr != nil && err == nil {
			err = oerr
		}
		if err != nil {
			st, msg = x.failStatus(err), x.redactor().String(err.Error())
			if st == StatusUnknown {
				st = StatusFailed
			}
			var pe *PartialError
			if errors.As(err, &pe) {
				st = StatusPartial
			}
			err = x.redactor().Error(err)
		}
		end.Status, end.Message = st, msg
		x.sink.Emit(end)
	}()
	if err := x.prepare(in); err != nil {
		return err
	}
	if err := x.checkResume(); err != nil {
		return err
	}
	if err := x.checkGates(); err != nil {
		return err
	}
	if m, ok := r.Sink.(Marker); ok && !x.dryRun {
		x.marks = newMarks(m, len(pb.Steps))
		x.marks.start()
	}
	if r.Lock != nil && !x.dryRun {
		// Each lock of the tree once: an included playbook's lock that
		// its includer holds already is not waited for.
		release, err := x.takeLocks(ctx, r.Lock)
		if err != nil {
			return err
		}
		// Released even after a cancel or a failure.
		defer release()
	}
	if err := x.checkHosts(); err != nil {
		return err
	}
	if err := x.awaitLeftovers(ctx); err != nil {
		return err
	}
	if err := x.factsAndGuards(ctx); err != nil {
		return err
	}
	if err := x.confirmRun(ctx); err != nil {
		return err
	}
	if err := x.runSteps(ctx); err != nil {
		return err
	}
	return x.partial()
}

// newRun sets up a run of pb by r: only the redacting sink is kept.
func (r *Runner) newRun(pb *Playbook, in Inputs) *run {
	vals := make([]string, 0, len(in.Secrets))
	for _, v := range in.Secrets {
		vals = append(vals, v)
	}
	x := &run{
		pb:          pb,
		inv:         r.Inventory,
		dryRun:      r.DryRun,
		resume:      r.Resume,
		runID:       r.RunID,
		localDir:    r.Dir,
		confirmer:   r.Confirm,
		pool:        &pool{inv: r.Inventory, connect: r.Connect, conns: map[string]*poolEntry{}},
		sightings:   steps.NewSightings(),
		frames:      map[*Frame]*frameEnv{},
		skipped:     map[*Frame]string{},
		unapplied:   map[string]bool{},
		passed:      map[int]bool{},
		answered:    map[GateKey]error{},
		rerun:       map[string]int{},
		unguarded:   map[string]string{},
		failedHosts: map[string]string{},
	}
	if x.localDir == "" {
		// Fixed now: a step must not follow a later chdir.
		x.localDir, _ = os.Getwd()
	}
	x.red.Store(redact.New(vals))
	x.sink = &redactingSink{next: r.Sink, red: x.redactor}
	return x
}

// runSteps runs the steps in order. A run stops at the first failure; a
// dry run goes on, and returns every failure it met.
func (x *run) runSteps(ctx context.Context) error {
	var plan planErrors
	for i := 0; i < len(x.pb.Steps); i++ {
		s := x.pb.Steps[i]
		if x.skips(s.Frame) {
			x.skipFramed(i+1, s)
			if err := x.closeFrames(i); err != nil {
				return err
			}
			continue
		}
		if b := s.Batch; b != nil {
			i = b.Last - 1
			if err := x.batch(ctx, b); err != nil {
				if !x.planGoesOn(ctx) {
					return err
				}
				plan.add(err)
			}
			if err := x.closeFrames(i); err != nil {
				return err
			}
			continue
		}
		if x.marks != nil {
			x.marks.stepStarts(i + 1)
		}
		if err := x.step(ctx, i+1, s); err != nil {
			if !x.planGoesOn(ctx) {
				return err
			}
			plan.add(err)
		}
		if err := x.closeFrames(i); err != nil {
			return err
		}
	}
	return plan.err()
}

// prepare builds the environments every host starts from: params,
// secrets, vars (computed here, in order), the steps' results so far and
// the inventory; for the top playbook, then for each playbook it includes
// (see prepareFrames).
func (x *run) prepare(in Inputs) error {
	params := make(map[string]any, len(x.pb.Params))
	for k, v := range in.Params {
		params[k] = v
	}
	secrets := make(map[string]any, len(in.Secrets))
	for k, v := range in.Secrets {
		secrets[k] = v
	}
	x.newFrameEnv(nil, params, secrets)
	if err := x.prepareVars(nil, x.pb.Params, x.pb.Vars); err != nil {
		return err
	}
	return x.prepareFrames(secrets)
}

// failStatus is the status of a guard, a step or a run that ended with
// err: interrupted by the operator, unknown in a dry run for a value the
// dry run did not produce, failed otherwise.
func (x *run) failStatus(err error) Status {
	if errors.Is(err, ErrInterrupted) || errors.Is(err, context.Canceled) {
		return StatusInterrupted
	}
	if x.dryRun && errors.Is(err, tmpl.ErrUnavailable) {
		return StatusUnknown
	}
	return StatusFailed
}

func oneLine(es []error) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}
