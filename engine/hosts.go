package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/hashicorp/go-multierror"

	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/internal/transport"
	"github.com/runbook-dev/runbook/steps"
)

// step runs step s (index is its 1-based index) for each of its targets:
// on its one host, once per element of its for_each, or on each of its
// hosts at once.
func (x *run) step(ctx context.Context, index int, s *Step) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	hosts, err := x.hostsOf(s)
	if err != nil {
		return x.finish(index, s, []hostOutcome{{host: "", status: x.failStatus(err), err: err}})
	}
	if s.ForEach != nil {
		return x.finish(index, s, x.forEach(ctx, index, s, hosts[0], nil))
	}
	outcomes := make([]hostOutcome, len(hosts))
	if len(hosts) == 1 {
		outcomes[0] = x.onHost(ctx, newTarget(index, s, hosts[0], nil, 0))
	} else {
		x.fanOut(ctx, hosts, s.Parallel, s.MaxFailures, s.Tolerate, outcomes, func(h string) *target { return newTarget(index, s, h, nil, 0) })
	}
	err = x.finish(index, s, outcomes)
	if err == nil {
		return nil
	}
	// The hosts the step never reached have no event: the error names
	// them, or the operator would not know they were left as they were.
	var untouched []string
	for _, o := range outcomes {
		if o.notStarted {
			untouched = append(untouched, o.host)
		}
	}
	if len(untouched) > 0 {
		return fmt.Errorf("%w; not started (untouched): %s", err, strings.Join(untouched, ", "))
	}
	return err
}

// skipFramed reports step s (index is its 1-based index) of an included
// playbook that does not run (skipped: its include's when is false).
func (x *run) skipFramed(index int, s *Step) {
	t := newTarget(index, s, "", nil, 0)
	t.name = s.Label()
	why := x.skipped[s.Frame]
	o := x.report(t, hostOutcome{status: StatusSkipped, result: steps.Result{}, printed: why}, &steps.Plan{Summary: why})
	x.record(s, []hostOutcome{o})
}

// forEach runs a step on host once per element of its list, in order,
// stopping at the first failure, and returns the outcomes. view, when not
// nil, is what steps are in the elements' expressions (see target.view).
func (x *run) forEach(ctx context.Context, index int, s *Step, host string, view map[string]any) []hostOutcome {
	env := x.env(s.Frame)
	if view != nil {
		env = withSteps(env, view)
	}
	v, err := s.ForEach.Value(env)
	if err != nil {
		return []hostOutcome{{host: host, status: x.failStatus(err), err: fmt.Errorf("for_each: %w", err)}}
	}
	var items []any
	if v != nil {
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			err := fmt.Errorf("for_each: %s gave %T, want a list", s.ForEach.Source, v)
			return []hostOutcome{{host: host, status: StatusFailed, err: err}}
		}
		for i := 0; i < rv.Len(); i++ {
			items = append(items, rv.Index(i).Interface())
		}
	}
	var outcomes []hostOutcome
	for i, it := range items {
		t := newTarget(index, s, host, &it, i+1)
		t.view = view
		o := x.onHost(ctx, t)
		outcomes = append(outcomes, o)
		if o.status == StatusFailed || o.status == StatusInterrupted || o.status == StatusInDoubt {
			break
		}
	}
	if len(outcomes) == 0 {
		t := newTarget(index, s, host, nil, 0)
		t.name = x.label(t)
		outcomes = append(outcomes, x.report(t, hostOutcome{host: host, status: StatusSkipped, result: steps.Result{}}, &steps.Plan{Summary: "for_each gave no elements"}))
	}
	return outcomes
}

// fanOut runs a step on several hosts at once, at most limit at a time
// (all with 0), each target made by mk. After more than maxFailures hosts
// failed (not counting the failures tol covers), hosts not yet started are
// not started and the running ones are cancelled; a negative maxFailures
// never stops them.
func (x *run) fanOut(ctx context.Context, hosts []string, limit, maxFailures int, tol Tolerance, outcomes []hostOutcome, mk func(h string) *target) {
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
			outcomes[i] = hostOutcome{host: h, status: StatusSkipped, err: fmt.Errorf("not started: %w", context.Cause(ctx)), notStarted: true}
			continue
		}
		if ctx.Err() != nil {
			<-sem
			outcomes[i] = hostOutcome{host: h, status: StatusSkipped, err: fmt.Errorf("not started: %w", context.Cause(ctx)), notStarted: true}
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			o := x.onHost(ctx, mk(h))
			outcomes[i] = o
			if o.status == StatusFailed && maxFailures >= 0 && !tol.Covers(o.err) && !keptOff(o.err) {
				mu.Lock()
				failures++
				if failures > maxFailures {
					cancel(&StoppedError{Failed: failures})
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// StoppedError is why a step on several hosts cut short the hosts still
// running it: more of its hosts failed than its max_failures allows. A
// host cut short after it began its change is in doubt, not failed (see
// apply); one cut short before fails, and a resume runs it again; one not
// started yet is left untouched.
type StoppedError struct {
	// Failed counts the hosts that had failed.
	Failed int
}

func (e *StoppedError) Error() string {
	return fmt.Sprintf("stopped after %d failed host(s)", e.Failed)
}

// stoppedByRun says whether ctx ended because the step stopped its other
// hosts (StoppedError), rather than by the step's own timeout or an
// interruption of the run.
func stoppedByRun(ctx context.Context) bool {
	var se *StoppedError
	return ctx.Err() != nil && errors.As(context.Cause(ctx), &se)
}

// hostsOf resolves the hosts a step runs on.
func (x *run) hostsOf(s *Step) ([]string, error) {
	if s.Host != nil {
		h, err := s.Host.Render(x.env(s.Frame))
		if err != nil {
			return nil, err
		}
		return []string{h}, nil
	}
	if len(s.Hosts) == 0 && s.HostsExpr == nil {
		// A step that names no host but whose body does (a wait-until
		// probe) runs there as far as the operator is concerned.
		if l, ok := s.Body.(steps.Located); ok {
			if h, ok := l.Where(x.env(s.Frame)); ok {
				return []string{h}, nil
			}
		}
		return []string{Localhost}, nil
	}
	return x.expandHosts(x.env(s.Frame), s.Hosts, s.HostsExpr)
}

// expandHosts resolves hosts: (a list of hosts and groups, or one
// expression giving a list) into host names, each once, in order.
func (x *run) expandHosts(env map[string]any, list []*tmpl.Template, expr *tmpl.Template) ([]string, error) {
	refs, err := x.hostRefs(env, list, expr)
	if err != nil {
		return nil, err
	}
	return x.expandRefs(refs)
}

// expandRefs expands names and groups, each trimmed, into host names, each
// once, in order.
func (x *run) expandRefs(refs []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, name := range refs {
		names, err := x.inv.Expand(strings.TrimSpace(name))
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

// hostRefs renders hosts: (each template, then the expression's list, or
// its text split at commas) into the names and groups it gives, unexpanded.
func (x *run) hostRefs(env map[string]any, list []*tmpl.Template, expr *tmpl.Template) ([]string, error) {
	var refs []string
	for _, t := range list {
		name, err := t.Render(env)
		if err != nil {
			return nil, err
		}
		refs = append(refs, name)
	}
	if expr != nil {
		v, err := expr.Value(env)
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
	return refs, nil
}

// checkHosts resolves every host that does not depend on a step's result,
// so that a typo in a host name stops the run before anything happens.
func (x *run) checkHosts() error {
	var errs *multierror.Error
	// Each problem once: a host named by several guards and steps is one
	// mistake.
	seen := map[string]bool{}
	add := func(err error) {
		if !seen[err.Error()] {
			seen[err.Error()] = true
			errs = multierror.Append(errs, err)
		}
	}
	check := func(fr *Frame, t *tmpl.Template, group bool) {
		if t == nil || len(t.Steps()) > 0 {
			return
		}
		name, err := t.Render(x.env(fr))
		if err != nil {
			add(err)
			return
		}
		if group {
			_, err = x.inv.Expand(name)
		} else {
			_, err = x.inv.Host(name)
		}
		if err != nil {
			add(err)
		}
	}
	for _, g := range x.pb.Require {
		if x.skips(g.Frame) {
			continue
		}
		check(g.Frame, g.Host, false)
		for _, h := range g.Hosts {
			check(g.Frame, h, true)
		}
	}
	var batch *Batch
	for _, s := range x.pb.Steps {
		if x.skips(s.Frame) {
			continue
		}
		if b := s.Batch; b != nil && b != batch {
			batch = b
			if b.HostsExpr == nil || len(b.HostsExpr.Steps()) == 0 {
				for _, h := range b.Hosts {
					check(s.Frame, h, true)
				}
				if b.HostsExpr != nil {
					if _, err := x.expandHosts(x.env(s.Frame), nil, b.HostsExpr); err != nil {
						add(err)
					}
				}
			}
		}
		check(s.Frame, s.Host, false)
		if s.HostsExpr != nil && len(s.HostsExpr.Steps()) == 0 {
			if _, err := x.hostsOf(s); err != nil {
				add(err)
			}
		}
		for _, h := range s.Hosts {
			check(s.Frame, h, true)
		}
	}
	if errs != nil {
		errs.ErrorFormat = oneLine
	}
	return errs.ErrorOrNil()
}

// exec builds the Exec a step of frame fr runs with on a host: the
// frame's environment with host, and the host's connection from the pool.
func (x *run) exec(fr *Frame, host, become string) (*steps.Exec, error) {
	h, err := x.inv.Host(host)
	if err != nil {
		return nil, err
	}
	base := x.env(fr)
	env := make(map[string]any, len(base)+1)
	for k, v := range base {
		env[k] = v
	}
	vars := h.Vars
	if vars == nil {
		vars = map[string]any{}
	}
	env["host"] = map[string]any{"name": h.Name, "address": h.Address, "vars": vars, "facts": x.hostFacts(fr, h.Name)}
	if x.factsPending.Load() {
		// A guard that reads no facts runs while they come in: it
		// gets a copy, never the map being written.
		env["facts"] = x.factsCopy(fr)
	}
	ex := &steps.Exec{
		Host:     steps.Host{Name: h.Name, Address: h.Address, Vars: vars},
		Env:      env,
		Become:   become,
		Redact:   x.redactor(),
		Connect:  func(ctx context.Context) (transport.Conn, error) { return x.pool.get(ctx, h) },
		LocalDir: x.localDir,
		// One run's probes share what they found down (steps.DownReuse).
		Sightings: x.sightings,
	}
	ex.ForHost = func(ctx context.Context, name string) (*steps.Exec, error) {
		return x.exec(fr, name, become)
	}
	return ex, nil
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
