package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/runbook-dev/runbook/internal/redact"
	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/internal/transport"
	"github.com/runbook-dev/runbook/steps"
)

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
	// finds work an earlier attempt left running (see step.Exec.Tag).
	RunID string
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

// GuardError is a run refused by its guards before any step ran.
type GuardError struct {
	Failed []string
}

func (e *GuardError) Error() string {
	return fmt.Sprintf("refused: %d guard(s) failed, nothing was changed: %s", len(e.Failed), strings.Join(e.Failed, "; "))
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

type run struct {
	*Runner
	// marks is nil without a Marker (no journal) and in a dry run.
	marks *marks
	pb    *Playbook
	sink  Sink
	// red masks the secrets, and the values computed from them that the
	// run has met so far (see maskInputs); it only grows.
	red   atomic.Pointer[redact.Redactor]
	redMu sync.Mutex
	pool  *pool
	base  map[string]any
	steps map[string]any
	// unapplied holds the ids of steps a dry run did not apply.
	unapplied map[string]bool
	// gateMu serialises confirmation gates; passed and refused are the
	// gates this run asked, by step index (0: the playbook's).
	gateMu  sync.Mutex
	passed  map[int]bool
	refused map[int]error
}

// Run checks the guards, asks the playbook's confirmation gate, then runs
// the steps in order. It returns a *GuardError when a guard refused the
// run, an *UnconfirmedError when a gate could be reached and nobody can
// answer it (before anything runs), a *ConfirmError when the operator did
// not confirm a gate, and a *StepError when a step failed.
func (r *Runner) Run(ctx context.Context, pb *Playbook, in Inputs) (err error) {
	vals := make([]string, 0, len(in.Secrets))
	for _, v := range in.Secrets {
		vals = append(vals, v)
	}
	x := &run{
		Runner:    r,
		pb:        pb,
		pool:      &pool{inv: r.Inventory, connect: r.Connect, conns: map[string]*poolEntry{}},
		steps:     map[string]any{},
		unapplied: map[string]bool{},
		passed:    map[int]bool{},
		refused:   map[int]error{},
	}
	x.red.Store(redact.New(vals))
	x.sink = &redactingSink{next: r.Sink, red: x.redactor}
	// Connections are closed even when ctx was cancelled.
	defer x.pool.closeAll()
	start := time.Now()
	x.sink.Emit(&Event{Type: EventRunStart, Playbook: pb.Name, DryRun: r.DryRun})
	defer func() {
		st, msg := StatusOK, "done"
		if err != nil {
			st, msg = x.failStatus(err), x.redactor().String(err.Error())
			if st == StatusUnknown {
				st = StatusFailed
			}
			err = x.redactor().Error(err)
		}
		x.sink.Emit(&Event{Type: EventRunEnd, Playbook: pb.Name, Status: st, Duration: time.Since(start), Message: msg, DryRun: r.DryRun, Durable: true})
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
	if m, ok := r.Sink.(Marker); ok && !r.DryRun {
		x.marks = newMarks(m, len(pb.Steps))
		x.marks.start()
	}
	if pb.Lock != nil && r.Lock != nil && !r.DryRun {
		name, err := pb.Lock.Render(x.base)
		if err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		release, err := r.Lock(ctx, name)
		if err != nil {
			return err
		}
		// Released even after a cancel or a failure.
		defer release()
	}
	if err := x.checkHosts(); err != nil {
		return err
	}
	if err := x.observeFacts(ctx); err != nil {
		return err
	}
	if err := x.guards(ctx); err != nil {
		return err
	}
	if err := x.confirmRun(ctx); err != nil {
		return err
	}
	var planErrs *multierror.Error
	for i, s := range pb.Steps {
		if x.marks != nil {
			x.marks.stepStarts(i + 1)
		}
		if err := x.step(ctx, i+1, s); err != nil {
			if !r.DryRun || ctx.Err() != nil {
				return err
			}
			planErrs = multierror.Append(planErrs, err)
		}
	}
	if planErrs != nil {
		planErrs.ErrorFormat = oneLine
	}
	return planErrs.ErrorOrNil()
}

func (x *run) prepare(in Inputs) error {
	params := make(map[string]any, len(x.pb.Params))
	for k, v := range in.Params {
		params[k] = v
	}
	secrets := make(map[string]any, len(in.Secrets))
	for k, v := range in.Secrets {
		secrets[k] = v
	}
	x.base = map[string]any{"params": params, "secrets": secrets, "steps": x.steps, "inventory": inventoryEnv(x.Inventory)}
	vars := map[string]any{}
	x.base["vars"] = vars
	for _, v := range x.pb.Vars {
		val, err := v.Value.Value(x.base)
		if err != nil {
			return fmt.Errorf("%s:%s: var %s: %w", x.pb.File, v.Pos, v.Name, err)
		}
		vars[v.Name] = val
	}
	return nil
}

// redactor returns what masks the run's secrets now.
func (x *run) redactor() *redact.Redactor { return x.red.Load() }

// maskInputs adds to the run's redactor the values of the templates ts
// (a step's inputs that may hold a secret) in env: a value computed from a
// secret (upper(secrets.pw), a piece of one, an earlier result that held
// one) is masked from then on like the secret itself. Values shorter than
// redact.MinLength are left out: they would mask ordinary text.
func (x *run) maskInputs(ts []*tmpl.Template, env map[string]any) {
	var vals []string
	for _, t := range ts {
		vals = append(vals, t.TaintedValues(env)...)
	}
	x.mask(vals...)
}

// mask adds values of redact.MinLength bytes or more to the redactor.
func (x *run) mask(vals ...string) {
	long := vals[:0:0]
	for _, v := range vals {
		if len(v) >= redact.MinLength {
			long = append(long, v)
		}
	}
	if len(long) == 0 {
		return
	}
	x.redMu.Lock()
	defer x.redMu.Unlock()
	x.red.Store(x.redactor().With(long...))
}

// inventoryEnv is `inventory` in expressions: every host by name.
func inventoryEnv(inv *Inventory) map[string]any {
	out := map[string]any{}
	add := func(h *HostSpec) {
		vars := h.Vars
		if vars == nil {
			vars = map[string]any{}
		}
		out[h.Name] = map[string]any{"name": h.Name, "address": h.Address, "vars": vars}
	}
	if lh, err := inv.Host(Localhost); err == nil {
		add(lh)
	}
	if inv != nil {
		for _, h := range inv.Hosts {
			add(h)
		}
	}
	return out
}

// checkHosts resolves every host that does not depend on a step's result,
// so that a typo in a host name stops the run before anything happens.
func (x *run) checkHosts() error {
	var errs *multierror.Error
	check := func(t *tmpl.Template, group bool) {
		if t == nil || len(t.Steps()) > 0 {
			return
		}
		name, err := t.Render(x.base)
		if err != nil {
			errs = multierror.Append(errs, err)
			return
		}
		if group {
			_, err = x.Inventory.Expand(name)
		} else {
			_, err = x.Inventory.Host(name)
		}
		if err != nil {
			errs = multierror.Append(errs, err)
		}
	}
	for _, g := range x.pb.Require {
		check(g.Host, false)
	}
	for _, s := range x.pb.Steps {
		check(s.Host, false)
		if s.HostsExpr != nil && len(s.HostsExpr.Steps()) == 0 {
			if _, err := x.hostsOf(s); err != nil {
				errs = multierror.Append(errs, err)
			}
		}
		for _, h := range s.Hosts {
			check(h, true)
		}
	}
	if errs != nil {
		errs.ErrorFormat = oneLine
	}
	return errs.ErrorOrNil()
}

func oneLine(es []error) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// guards runs every guard, all of them even after one fails, so that the
// operator sees everything that is wrong at once.
func (x *run) guards(ctx context.Context) error {
	type outcome struct {
		ok  bool
		msg string
	}
	out := make([]outcome, len(x.pb.Require))
	var wg sync.WaitGroup
	for i, g := range x.pb.Require {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			ok, msg := x.guard(ctx, g)
			out[i] = outcome{ok, msg}
			st := StatusOK
			if !ok {
				st = StatusFailed
			}
			x.sink.Emit(&Event{Type: EventGuard, Index: i + 1, Name: g.Name, Host: x.hostLabel(g.Host), Status: st, Duration: time.Since(start), Message: msg})
		}()
	}
	wg.Wait()
	var failed []string
	for i, o := range out {
		if !o.ok {
			failed = append(failed, fmt.Sprintf("%q: %s", x.pb.Require[i].Name, o.msg))
		}
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if len(failed) > 0 {
		return &GuardError{Failed: failed}
	}
	return nil
}

func (x *run) hostLabel(t *tmpl.Template) string {
	if t == nil {
		return Localhost
	}
	s, err := t.Render(x.base)
	if err != nil {
		return t.Source
	}
	return s
}

func (x *run) guard(ctx context.Context, g *Guard) (bool, string) {
	host := Localhost
	if g.Host != nil {
		h, err := g.Host.Render(x.base)
		if err != nil {
			return false, err.Error()
		}
		host = h
	}
	ex, err := x.exec(host, g.Become)
	if err != nil {
		return false, err.Error()
	}
	if ex.ServicePorts, err = steps.RenderPorts(g.ServicePorts, ex.Env); err != nil {
		return false, err.Error()
	}
	if len(g.Tainted) > 0 {
		x.maskInputs(g.Tainted, ex.Env)
		ex.Redact = x.redactor()
	}
	r, err := steps.Observe(ctx, ex, g.Probe)
	if err != nil {
		return false, "probe failed: " + x.redactor().String(err.Error())
	}
	env := withResult(ex.Env, r)
	ok, err := g.Assert.EvalBool(env)
	if err != nil {
		return false, "assert: " + err.Error()
	}
	if ok {
		return true, ""
	}
	msg := fmt.Sprintf("assert %s is false; observed %s", g.Assert.Source, showResult(steps.RedactResult(x.redactor(), r)))
	if g.Hint != nil {
		if hint, err := g.Hint.Render(env); err == nil {
			msg += "; " + hint
		}
	}
	return false, msg
}

func withResult(env map[string]any, r steps.Result) map[string]any {
	out := make(map[string]any, len(env)+1)
	for k, v := range env {
		out[k] = v
	}
	out["result"] = map[string]any(r)
	return out
}

// exec builds the Exec a step runs with on a host.
func (x *run) exec(host, become string) (*steps.Exec, error) {
	h, err := x.Inventory.Host(host)
	if err != nil {
		return nil, err
	}
	env := make(map[string]any, len(x.base)+1)
	for k, v := range x.base {
		env[k] = v
	}
	vars := h.Vars
	if vars == nil {
		vars = map[string]any{}
	}
	env["host"] = map[string]any{"name": h.Name, "address": h.Address, "vars": vars, "facts": x.hostFacts(h.Name)}
	ex := &steps.Exec{
		Host:    steps.Host{Name: h.Name, Address: h.Address, Vars: vars},
		Env:     env,
		Become:  become,
		Redact:  x.redactor(),
		Connect: func(ctx context.Context) (transport.Conn, error) { return x.pool.get(ctx, h) },
	}
	ex.ForHost = func(ctx context.Context, name string) (*steps.Exec, error) {
		return x.exec(name, become)
	}
	return ex, nil
}

// hostsOf resolves the hosts a step runs on.
func (x *run) hostsOf(s *Step) ([]string, error) {
	if s.Host != nil {
		h, err := s.Host.Render(x.base)
		if err != nil {
			return nil, err
		}
		return []string{h}, nil
	}
	if len(s.Hosts) == 0 && s.HostsExpr == nil {
		// A step that names no host but whose body does (a wait-until
		// probe) runs there as far as the operator is concerned.
		if l, ok := s.Body.(steps.Located); ok {
			if h, ok := l.Where(x.base); ok {
				return []string{h}, nil
			}
		}
		return []string{Localhost}, nil
	}
	var refs []string
	for _, t := range s.Hosts {
		name, err := t.Render(x.base)
		if err != nil {
			return nil, err
		}
		refs = append(refs, name)
	}
	if s.HostsExpr != nil {
		v, err := s.HostsExpr.Value(x.base)
		if err != nil {
			return nil, err
		}
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				refs = append(refs, tmpl.Format(e))
			}
		case []string:
			refs = append(refs, v...)
		default:
			refs = append(refs, strings.Split(tmpl.Format(v), ",")...)
		}
	}
	var out []string
	seen := map[string]bool{}
	for _, name := range refs {
		names, err := x.Inventory.Expand(strings.TrimSpace(name))
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out, nil
}

type hostOutcome struct {
	host   string
	status Status
	result steps.Result
	err    error
	// printed is the step's print text, rendered with its result.
	printed string
	// final is a failure that retries must not repeat: a refused gate.
	final bool
}

func (x *run) step(ctx context.Context, index int, s *Step) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	hosts, err := x.hostsOf(s)
	if err != nil {
		return x.finish(index, s, []hostOutcome{{host: "", status: x.failStatus(err), err: err}}, 0)
	}
	start := time.Now()
	if s.ForEach != nil {
		return x.forEach(ctx, index, s, hosts[0], start)
	}
	outcomes := make([]hostOutcome, len(hosts))
	if len(hosts) == 1 {
		outcomes[0] = x.onHost(ctx, index, s, hosts[0], nil, 0)
	} else {
		x.fanOut(ctx, index, s, hosts, outcomes)
	}
	return x.finish(index, s, outcomes, time.Since(start))
}

// forEach runs a step once per element of its list, in order, stopping at
// the first failure.
func (x *run) forEach(ctx context.Context, index int, s *Step, host string, start time.Time) error {
	v, err := s.ForEach.Value(x.base)
	if err != nil {
		return x.finish(index, s, []hostOutcome{{host: host, status: x.failStatus(err), err: fmt.Errorf("for_each: %w", err)}}, 0)
	}
	var items []any
	if v != nil {
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			err := fmt.Errorf("for_each: %s gave %T, want a list", s.ForEach.Source, v)
			return x.finish(index, s, []hostOutcome{{host: host, status: StatusFailed, err: err}}, 0)
		}
		for i := 0; i < rv.Len(); i++ {
			items = append(items, rv.Index(i).Interface())
		}
	}
	var outcomes []hostOutcome
	for i, it := range items {
		o := x.onHost(ctx, index, s, host, &it, i+1)
		outcomes = append(outcomes, o)
		if o.status == StatusFailed || o.status == StatusInterrupted || o.status == StatusInDoubt {
			break
		}
	}
	if len(outcomes) == 0 {
		outcomes = append(outcomes, x.report(index, s, host, start, hostOutcome{host: host, status: StatusSkipped, result: steps.Result{}}, &steps.Plan{Summary: "for_each gave no elements"}, nil, 0))
	}
	return x.finish(index, s, outcomes, time.Since(start))
}

// fanOut runs a step on several hosts at once, at most s.Parallel at a time.
// After more than s.MaxFailures hosts failed, hosts not yet started are not
// started and the running ones are cancelled.
func (x *run) fanOut(ctx context.Context, index int, s *Step, hosts []string, outcomes []hostOutcome) {
	limit := s.Parallel
	if limit <= 0 || limit > len(hosts) {
		limit = len(hosts)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, limit)
	var mu sync.Mutex
	failures := 0
	var wg sync.WaitGroup
	for i, h := range hosts {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			outcomes[i] = hostOutcome{host: h, status: StatusSkipped, err: fmt.Errorf("not started: %w", context.Cause(ctx))}
			continue
		}
		if ctx.Err() != nil {
			<-sem
			outcomes[i] = hostOutcome{host: h, status: StatusSkipped, err: fmt.Errorf("not started: %w", context.Cause(ctx))}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			o := x.onHost(ctx, index, s, h, nil, 0)
			outcomes[i] = o
			if o.status == StatusFailed {
				mu.Lock()
				failures++
				if failures > s.MaxFailures {
					cancel(fmt.Errorf("stopped after %d failed host(s)", failures))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func (x *run) failStatus(err error) Status {
	if errors.Is(err, ErrInterrupted) || errors.Is(err, context.Canceled) {
		return StatusInterrupted
	}
	if x.DryRun && errors.Is(err, tmpl.ErrUnavailable) {
		return StatusUnknown
	}
	return StatusFailed
}

// onHost runs a step on one host with its when, timeout and retries; item
// is the element of for_each, or nil, and itemNo its 1-based position.
func (x *run) onHost(ctx context.Context, index int, s *Step, host string, item *any, itemNo int) hostOutcome {
	start := time.Now()
	key := StepKey{Index: index, Host: host, Item: itemNo}
	if o, why, ok := x.resumed(key, s); ok {
		e := &Event{Type: EventStepEnd, Index: index, ID: s.ID, Name: x.label(s, item, itemNo), Host: host, Item: itemNo,
			Status: o.Status, Result: o.Result, Message: why, Resumed: true}
		x.sink.Emit(e)
		return hostOutcome{host: host, status: o.Status, result: o.Result}
	}
	ex, err := x.exec(host, s.Become)
	if err != nil {
		return x.report(index, s, host, start, hostOutcome{host: host, status: StatusFailed, err: err}, nil, item, itemNo)
	}
	if item != nil {
		ex.Env[itemKey] = *item
		if taint, _ := s.ForEach.Taint(); taint != nil {
			x.mask(leaves(*item)...)
		}
	}
	if len(s.Tainted) > 0 {
		x.maskInputs(s.Tainted, ex.Env)
	}
	ex.Redact = x.redactor()
	ex.Tag = x.tag(key)
	if s.When != nil {
		ok, err := s.When.EvalBool(ex.Env)
		if err != nil {
			return x.report(index, s, host, start, hostOutcome{host: host, status: x.failStatus(err), err: fmt.Errorf("when: %w", err)}, nil, item, itemNo)
		}
		if !ok {
			return x.report(index, s, host, start, hostOutcome{host: host, status: StatusSkipped, result: steps.Result{}}, &steps.Plan{Summary: "when is false: " + s.When.Source}, item, itemNo)
		}
	}
	name := x.label(s, item, itemNo)
	x.sink.Emit(&Event{Type: EventStepStart, Index: index, ID: s.ID, Name: name, Host: host, Item: itemNo, DryRun: x.DryRun})
	crashpoint("intent", index)
	if x.inDoubt(key) {
		// The earlier attempt's outcome was lost: the step's Plan rechecks
		// the host, and applies only what is not there yet.
		x.sink.Emit(&Event{Type: EventStepProgress, Index: index, ID: s.ID, Name: name, Host: host, Item: itemNo,
			Message: "in doubt after an interrupted attempt: checking the host again"})
		if err := x.awaitLeftover(ctx, ex, key); err != nil {
			return x.report(index, s, host, start, hostOutcome{host: host, status: x.failStatus(err), err: err}, nil, item, itemNo)
		}
		if st, ok := s.Body.(steps.Settler); ok {
			if err := st.Settle(ctx, ex, x.leftoverWait()); err != nil {
				return x.report(index, s, host, start, hostOutcome{host: host, status: x.failStatus(err), err: err}, nil, item, itemNo)
			}
		}
	}
	ex.Progress = func(msg string) {
		x.sink.Emit(&Event{Type: EventStepProgress, Index: index, ID: s.ID, Name: name, Host: host, Message: msg})
	}
	ex.Started = func(pgid int) {
		x.sink.Emit(&Event{Type: EventStepProcess, Index: index, ID: s.ID, Name: name, Host: host, Item: itemNo, PID: pgid})
		crashpoint("started", index)
	}
	var o hostOutcome
	var plan *steps.Plan
	for attempt := 0; ; attempt++ {
		o, plan = x.attempt(ctx, index, s, ex, name, itemNo)
		if o.status != StatusFailed || o.final || attempt >= s.Retries || ctx.Err() != nil || x.DryRun {
			break
		}
		delay, err := s.RetryDelay.Get(ex.Env)
		if err != nil {
			o.err = fmt.Errorf("retry_delay: %w", err)
			break
		}
		ex.Progress(fmt.Sprintf("attempt %d failed: %v; retrying in %s", attempt+1, o.err, delay))
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
	}
	if x.inDoubt(key) && (x.Resume.Applying[key] || x.Resume.Watermark > 0) && (o.status == StatusSkipped || o.status == StatusOK) {
		// The lost attempt was making the change and the recheck finds it
		// made: the run changed the host, as an uninterrupted run reports.
		o.status = StatusChanged
		if plan != nil {
			p := *plan
			p.Summary = "made by the interrupted attempt (found on recheck): " + p.Summary
			plan = &p
		}
	}
	return x.report(index, s, host, start, o, plan, item, itemNo)
}

// label names a step in events, with the for_each element it runs for,
// redacted before it is cut. The elements of a list that may hold a secret
// are named by their position only.
func (x *run) label(s *Step, item *any, itemNo int) string {
	if item == nil {
		return s.Label()
	}
	if taint, _ := s.ForEach.Taint(); taint != nil {
		return fmt.Sprintf("%s (element %d)", s.Label(), itemNo)
	}
	it := tmpl.Format(*item)
	if m, ok := (*item).(map[string]any); ok {
		for _, k := range []string{"name", "id"} {
			if v, ok := m[k]; ok {
				it = tmpl.Format(v)
				break
			}
		}
	}
	return s.Label() + " (" + clip(x.redactor().String(it), 60) + ")"
}

func (x *run) attempt(ctx context.Context, index int, s *Step, ex *steps.Exec, name string, itemNo int) (hostOutcome, *steps.Plan) {
	o := hostOutcome{host: ex.Host.Name}
	outer := ctx
	var clock *stepClock
	if !s.Timeout.IsZero() {
		limit, err := s.Timeout.Get(ex.Env)
		if err != nil {
			o.status, o.err = StatusFailed, fmt.Errorf("timeout: %w", err)
			return o, nil
		}
		ctx, clock = startClock(outer, limit, &StepTimeoutError{Step: s.Label(), Limit: limit})
		defer clock.stop()
	}
	var gate *Gate
	if s.Confirm != nil {
		gate = &Gate{Index: index, ID: s.ID, Step: name, Host: ex.Host.Name, Item: itemNo}
	}
	fail := func(err error) (hostOutcome, *steps.Plan) {
		if c := context.Cause(ctx); c != nil && ctx.Err() != nil {
			err = c
		}
		o.status, o.err = x.failStatus(err), err
		return o, nil
	}
	plan, err := s.Body.Plan(ctx, ex)
	if err != nil {
		if x.DryRun && len(x.unapplied) > 0 && ctx.Err() == nil {
			// A probe that fails before the changes above are made (a
			// service not started yet) says nothing about the real run.
			o.status, o.err = StatusUnknown, fmt.Errorf("may depend on the changes above: %w", err)
			_, _ = x.confirmStep(ctx, s, ex.Env, gate, nil) // shown, never asked
			return o, nil
		}
		return fail(err)
	}
	switch {
	case plan.Skipped:
		o.status, o.result = StatusSkipped, plan.Result
		return o, plan
	case !plan.Changes:
		o.status, o.result = StatusOK, plan.Result
	case x.DryRun:
		o.status = StatusWould
		_, _ = x.confirmStep(ctx, s, ex.Env, gate, plan) // shown, never asked
		return o, plan
	default:
		// The operator's time is not the step's: the gate is asked under
		// the run's context, and the time given back to the step's clock.
		waited, err := x.confirmStep(outer, s, ex.Env, gate, plan)
		if err != nil {
			o.status, o.err, o.final = x.failStatus(err), err, true
			return o, nil
		}
		if clock != nil && waited > 0 {
			ctx = clock.extend(waited)
		}
		if x.marks != nil {
			if err := x.marks.await(index); err != nil {
				return fail(fmt.Errorf("journal: %w; nothing was changed", err))
			}
		}
		x.sink.Emit(&Event{Type: EventStepApply, Index: index, ID: s.ID, Name: name, Host: ex.Host.Name, Item: itemNo, Message: plan.Summary})
		r, err := s.Body.Apply(ctx, ex, plan)
		crashpoint("applied", index)
		if err != nil {
			o.result = r
			if transport.IsLost(err) && ctx.Err() == nil {
				// Not failed: its command may go on without us. Retrying here
				// would start it a second time beside the first.
				o.status, o.err, o.final = StatusInDoubt, fmt.Errorf("in doubt: %w; the change may be made or still being made: resume checks the host again (and waits for a command still running) before it acts", err), true
				return o, nil
			}
			return fail(err)
		}
		o.status, o.result = StatusChanged, r
	}
	if s.Assert != nil {
		ok, err := s.Assert.EvalBool(withResult(ex.Env, o.result))
		if err != nil {
			return fail(fmt.Errorf("assert: %w", err))
		}
		if !ok && x.DryRun && len(x.unapplied) > 0 {
			// The state is checked before the changes above were made: what
			// the assert will see after them is not known yet.
			o.status, o.err = StatusUnknown, fmt.Errorf("checked after the changes above are applied: %s", s.Assert.Source)
			return o, plan
		}
		if !ok {
			if s.Message != nil {
				msg, err := s.Message.Render(withResult(ex.Env, o.result))
				if err == nil {
					return fail(errors.New(msg))
				}
			}
			return fail(fmt.Errorf("assert %s is false; observed %s", s.Assert.Source, showResult(steps.RedactResult(x.redactor(), o.result))))
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

func (x *run) report(index int, s *Step, host string, start time.Time, o hostOutcome, plan *steps.Plan, item *any, itemNo int) hostOutcome {
	e := &Event{Type: EventStepEnd, Index: index, ID: s.ID, Name: x.label(s, item, itemNo), Host: host, Item: itemNo, Status: o.status,
		Result: o.result, Duration: time.Since(start), DryRun: x.DryRun}
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
	crashpoint("outcome", index)
	return o
}

// finish records a step's outcomes for later expressions and turns
// failures into one error naming every failed host.
func (x *run) finish(index int, s *Step, outs []hostOutcome, d time.Duration) error {
	var errs *multierror.Error
	results := make([]any, 0, len(outs))
	changed := false
	status := StatusOK
	for _, o := range outs {
		results = append(results, map[string]any{"host": o.host, "status": string(o.status), "result": map[string]any(o.result)})
		if o.status == StatusChanged || o.status == StatusWould {
			changed = true
		}
		if o.status == StatusWould || o.status == StatusUnknown {
			x.unapplied[s.ID] = true
		}
		if o.err != nil && o.status != StatusSkipped && o.status != StatusUnknown || o.status == StatusFailed {
			errs = multierror.Append(errs, &StepError{Step: s.Label(), Host: o.host, Err: o.err})
		}
	}
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
		if !x.DryRun && !s.single() {
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

// leaves returns the text of v's strings and numbers, in maps and lists
// too.
func leaves(v any) []string {
	switch v := v.(type) {
	case map[string]any:
		var out []string
		for _, e := range v {
			out = append(out, leaves(e)...)
		}
		return out
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, leaves(e)...)
		}
		return out
	case nil, bool:
		return nil
	}
	return []string{tmpl.Format(v)}
}

// showResult formats a result for a message, each value cut short. The
// result must be redacted already: a cut could leave a piece of a secret.
func showResult(r steps.Result) string {
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		if k == "error" && r[k] == "" {
			continue
		}
		if i > 0 && b.Len() > 1 {
			b.WriteString(", ")
		}
		v := fmt.Sprintf("%v", r[k])
		if s, ok := r[k].(string); ok {
			v = fmt.Sprintf("%q", strings.TrimSpace(s))
		}
		v = clip(v, 160)
		b.WriteString(k + ": " + v)
	}
	b.WriteString("}")
	return b.String()
}
