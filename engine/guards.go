package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/runbook-dev/runbook/steps"
)

// GuardError is a run refused by its guards before any step ran.
type GuardError struct {
	Failed []string
}

func (e *GuardError) Error() string {
	return fmt.Sprintf("refused: %d guard(s) failed, nothing was changed: %s", len(e.Failed), strings.Join(e.Failed, "; "))
}

// factsAndGuards observes the facts and checks the guards, each guard
// starting as soon as the facts it reads are in (Guard.Reads): a run
// waits for the slowest of them, not for the facts and then the guards.
// A fact that refuses the run cancels the guards still running; the
// refusal is the facts' (*GuardError), as when the guards ran after them.
func (x *run) factsAndGuards(ctx context.Context) error {
	fs, err := x.startFacts(ctx)
	if err != nil {
		return err
	}
	gctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-fs.failed:
			cancel(errFactRefused)
		case <-fs.all:
		case <-gctx.Done():
		}
	}()
	gerr := x.guards(gctx, fs)
	if err := fs.finish(ctx); err != nil {
		return err
	}
	return gerr
}

// errFactRefused cancels the guards still running when a fact refused the
// run.
var errFactRefused = errors.New("a fact refused the run")

// guardCheck is one guard on one host, and what it found.
type guardCheck struct {
	g    *Guard
	i    int
	host string
	// err is why the guard's hosts could not be resolved.
	err error
	// ran says the check ended with an observation (not cancelled by a
	// fact's refusal); ok, tolerated and msg are what it found.
	ran, ok, tolerated bool
	msg                string
}

// guards runs every guard on each of its hosts, all of them even after
// one fails, so that the operator sees everything that is wrong at once.
// Each starts on a host once the facts it reads there are in; none starts
// after a fact refused the run. A host where a guard fails in a way it
// tolerates is kept for the run's end (partial) and does not refuse the
// run.
func (x *run) guards(ctx context.Context, fs *factsRun) error {
	checkOne := func(c *guardCheck) {
		if c.err == nil && !fs.wait(ctx, c.g.Reads, c.host) {
			return
		}
		start := time.Now()
		label := c.host
		ok, msg, down := false, "", false
		if c.err != nil {
			label, msg = guardSource(c.g), c.err.Error()
		} else {
			ok, msg, down = x.guard(ctx, c.g, c.host)
		}
		if fs.refused() {
			// Cancelled by the facts' refusal: not an observation.
			return
		}
		st := StatusOK
		tolerated := false
		if !ok {
			st = StatusFailed
			tolerated = c.g.Tolerate.Failed || c.g.Tolerate.Unreachable && down
			if tolerated && c.err == nil && ctx.Err() == nil {
				x.addTolerated(&StepError{Step: "guard " + c.g.Label(), Host: c.host, Err: errors.New(msg)})
				ok, msg = true, "tolerated: "+msg+"; no step changes "+c.host+" in this run"
			} else {
				tolerated = false
			}
		}
		c.ran, c.ok, c.tolerated, c.msg = true, ok, tolerated, msg
		x.sink.Emit(&Event{Type: EventGuard, Index: c.i + 1, Name: c.g.Label(), Host: label, Status: st, Duration: time.Since(start), Message: msg})
	}
	// The checks of each guard, in the order of its hosts.
	byGuard := make([][]*guardCheck, len(x.pb.Require))
	var wg sync.WaitGroup
	for i, g := range x.pb.Require {
		if x.skips(g.Frame) {
			// Its include does not run: nothing it guards will happen.
			continue
		}
		wg.Go(func() {
			// Hosts computed from the facts are resolved once they are in.
			if g.Reads == ReadsAllFacts && !fs.wait(ctx, ReadsAllFacts, "") {
				return
			}
			hosts, err := x.guardHosts(g)
			if err != nil {
				byGuard[i] = []*guardCheck{{g: g, i: i, err: err}}
			}
			for _, h := range hosts {
				byGuard[i] = append(byGuard[i], &guardCheck{g: g, i: i, host: h})
			}
			var hw sync.WaitGroup
			for _, c := range byGuard[i] {
				hw.Go(func() { checkOne(c) })
			}
			hw.Wait()
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var done []*guardCheck
	for _, cs := range byGuard {
		done = append(done, cs...)
	}
	return x.guardVerdict(done)
}

// guardVerdict keeps the hosts the guards tolerated for the run's end and
// returns a *GuardError naming every check that failed, in the guards'
// order; checks that did not run (a fact refused the run) are left out.
func (x *run) guardVerdict(checks []*guardCheck) error {
	var failed []string
	for _, c := range checks {
		if !c.ran {
			continue
		}
		if c.tolerated {
			// Not observed as the guard wants it (down, or failing): the
			// guard did not clear it for a change (see leftAlone).
			if _, ok := x.unguarded[c.host]; !ok {
				x.unguarded[c.host] = c.g.Label()
			}
		}
		if !c.ok {
			if len(c.g.Hosts) > 0 || c.g.HostsExpr != nil {
				failed = append(failed, fmt.Sprintf("%q on %s: %s", c.g.Label(), c.host, c.msg))
			} else {
				failed = append(failed, fmt.Sprintf("%q: %s", c.g.Label(), c.msg))
			}
		}
	}
	if len(failed) > 0 {
		return &GuardError{Failed: failed}
	}
	return nil
}

// UnguardedError is a change a step did not make on a host because a
// guard tolerated the host instead of clearing it: it was down when the
// guard looked (or failed the guard's assert, tolerate: [failed]), so
// nothing says the change is safe there now. It is a tolerated failure:
// the run goes on and ends partial, and a resume, whose guards look
// again, makes the change once the guard passes on the host.
type UnguardedError struct {
	Guard, Host string
}

func (e *UnguardedError) Error() string {
	return fmt.Sprintf("not changed: %s was not checked by guard %q (it tolerated the host: it was unreachable or failed the guard); once the guard passes there, runbook resume makes the change", e.Host, e.Guard)
}

// leftAlone returns why step s must not change host, if it must not: a
// guard tolerated the host instead of clearing it (*UnguardedError), or
// the host failed a batch earlier in the run (*FailedHostError). A step
// that changes nothing on its host (read-only, a capture) runs.
func (x *run) leftAlone(s *Step, host string) error {
	if !mayChangeHost(s) {
		return nil
	}
	if g, ok := x.unguarded[host]; ok {
		return &UnguardedError{Guard: g, Host: host}
	}
	if st, ok := x.failedHosts[host]; ok {
		return &FailedHostError{Host: host, Step: st}
	}
	return nil
}

// mayChangeHost says whether step s may change its host: not a capture,
// nor a step that says it changes nothing (read-only).
func mayChangeHost(s *Step) bool {
	if s.Type.Describe().Name == "capture" {
		return false
	}
	c, ok := s.Body.(steps.Changer)
	return !ok || c.MayChange()
}

// guardSource is how a guard names its hosts in its source.
func guardSource(g *Guard) string {
	switch {
	case g.Host != nil:
		return g.Host.Source
	case g.HostsExpr != nil:
		return g.HostsExpr.Source
	}
	var names []string
	for _, h := range g.Hosts {
		names = append(names, h.Source)
	}
	return strings.Join(names, ",")
}

// guardHosts resolves the hosts a guard probes.
func (x *run) guardHosts(g *Guard) ([]string, error) {
	if len(g.Hosts) > 0 || g.HostsExpr != nil {
		return x.expandHosts(x.env(g.Frame), g.Hosts, g.HostsExpr)
	}
	h, err := x.guardHost(g)
	if err != nil {
		return nil, err
	}
	return []string{h}, nil
}

// guardHost renders the host a guard probes: localhost when it names none.
func (x *run) guardHost(g *Guard) (string, error) {
	if g.Host == nil {
		return Localhost, nil
	}
	return g.Host.Render(x.env(g.Frame))
}

// guard probes host and asserts on what it observed. It returns whether
// the guard passed, and otherwise why, redacted, and whether the probe
// found the host down (result.reachable == false).
func (x *run) guard(ctx context.Context, g *Guard, host string) (bool, string, bool) {
	ex, err := x.exec(g.Frame, host, g.Become)
	if err != nil {
		return false, err.Error(), false
	}
	if ex.ServicePorts, err = steps.RenderPorts(g.ServicePorts, ex.Env); err != nil {
		return false, err.Error(), false
	}
	if len(g.Tainted) > 0 {
		x.maskInputs(g.Tainted, ex.Env)
		ex.Redact = x.redactor()
	}
	r, err := steps.Observe(ctx, ex, g.Probe)
	if err != nil {
		return false, "probe failed: " + x.redactor().String(err.Error()), false
	}
	down := r["reachable"] == false
	env := withResult(ex.Env, r)
	ok, err := g.Assert.EvalBool(env)
	if err != nil && down {
		// Nothing was observed: the assert read fields the probe could
		// not fill.
		return false, fmt.Sprintf("host %s is unreachable (nothing answers): the assert %s could not be evaluated; observed %s", host, g.Assert.Source, steps.Show(x.redactor(), r)), true
	}
	if err != nil {
		return false, "assert: " + err.Error(), down
	}
	if ok {
		return true, "", down
	}
	msg := fmt.Sprintf("assert %s is false; observed %s", g.Assert.Source, steps.Show(x.redactor(), r))
	if g.Hint != nil {
		if hint, err := g.Hint.Render(env); err == nil {
			msg += "; " + hint
		}
	}
	return false, msg, down
}

// withResult returns a copy of env with r as result.
func withResult(env map[string]any, r steps.Result) map[string]any {
	out := make(map[string]any, len(env)+1)
	for k, v := range env {
		out[k] = v
	}
	out["result"] = map[string]any(r)
	return out
}
