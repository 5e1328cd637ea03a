package engine

import (
	"context"
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
			host, err := x.guardHost(g)
			label := host
			if err != nil {
				label = g.Host.Source
			}
			ok, msg := false, ""
			if err != nil {
				msg = err.Error()
			} else {
				ok, msg = x.guard(ctx, g, host)
			}
			out[i] = outcome{ok, msg}
			st := StatusOK
			if !ok {
				st = StatusFailed
			}
			x.sink.Emit(&Event{Type: EventGuard, Index: i + 1, Name: g.Name, Host: label, Status: st, Duration: time.Since(start), Message: msg})
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

// guardHost renders the host a guard probes: localhost when it names none.
func (x *run) guardHost(g *Guard) (string, error) {
	if g.Host == nil {
		return Localhost, nil
	}
	return g.Host.Render(x.base)
}

// guard probes host and asserts on what it observed. It returns whether
// the guard passed, and otherwise why, redacted.
func (x *run) guard(ctx context.Context, g *Guard, host string) (bool, string) {
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
	msg := fmt.Sprintf("assert %s is false; observed %s", g.Assert.Source, steps.Show(x.redactor(), r))
	if g.Hint != nil {
		if hint, err := g.Hint.Render(env); err == nil {
			msg += "; " + hint
		}
	}
	return false, msg
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
