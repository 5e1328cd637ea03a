package steps

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/expr-lang/expr/types"

	"github.com/runbook-dev/runbook/internal/tmpl"
)

// WaitUntil polls a read-only probe until an expression holds.
var WaitUntil Type = kind{decodeWaitUntil, Descriptor{
	Name: "wait-until",
	Doc:  "poll a read-only probe until an expression on its result holds, or fail at the timeout",
	// Result: the last observed result of the probe, plus how many polls it took.
	Result: types.Map{types.Extra: types.Any, "attempts": types.Int, "reachable": types.Bool},
	Waits:  true,
	Fields: []Field{
		{Name: "probe", Kind: Probe, Required: true, Doc: "a read-only step body (one step type, optional host) observed at each poll"},
		{Name: "until", Kind: Expr, Required: true, Doc: "expression on the probe's result; the wait ends when it holds", Example: "result.rows[0].in_recovery == false"},
		{Name: "timeout", Kind: Duration, Required: true, Doc: "give up after this long", Example: "60s"},
		{Name: "interval", Kind: Duration, Doc: "the longest pause between polls: the first polls come fast (a tenth of the time waited so far, from 10ms) and back off to this", Default: "1s"},
	},
}}

type waitUntil struct {
	probe    *ProbeSpec
	until    *tmpl.Expr
	timeout  DurationValue
	interval DurationValue
}

// decodeWaitUntil builds a step of the type from its body (Type.Decode).
func decodeWaitUntil(d *Decoder, b Body) Step {
	w := &waitUntil{timeout: d.Duration(b.Get("timeout"), 0), interval: d.Duration(b.Get("interval"), time.Second)}
	if p := b.Get("probe"); p != nil {
		w.probe = d.DecodeProbe(d, p)
	}
	if w.probe != nil {
		w.until = d.Expr(b.Get("until"), ProbeResult(w.probe.Type))
	}
	return w
}

func (w *waitUntil) observe(ctx context.Context, x *Exec) (Result, bool, error) {
	r, err := RunProbe(ctx, x, w.probe)
	if err != nil {
		return nil, false, err
	}
	env := make(map[string]any, len(x.Env)+1)
	for k, v := range x.Env {
		env[k] = v
	}
	env["result"] = map[string]any(r)
	ok, err := w.until.EvalBool(env)
	return r, ok, err
}

// Where implements Located: the probe's host, when it names one.
func (w *waitUntil) Where(env map[string]any) (string, bool) {
	if w.probe == nil || w.probe.Host == nil {
		return "", false
	}
	h, err := w.probe.Host.Render(env)
	return h, err == nil
}

// Probe observes once.
func (w *waitUntil) Probe(ctx context.Context, x *Exec) (Result, error) {
	r, _, err := w.observe(ctx, x)
	return r, err
}

// Plan observes once: when the condition already holds there is nothing to
// wait for.
func (w *waitUntil) Plan(ctx context.Context, x *Exec) (*Plan, error) {
	r, ok, err := w.observe(ctx, x)
	// A probe that fails now (a service still starting refuses
	// connections) is what there is to wait for, as in Apply, not a
	// failure of the step; a cancelled run or an expression that cannot be
	// evaluated yet is.
	if err != nil && (ctx.Err() != nil || errors.Is(err, tmpl.ErrUnavailable)) {
		return nil, err
	}
	if err == nil && ok {
		r["attempts"] = 1
		return &Plan{Summary: "already true: " + w.until.Source, Result: r}, nil
	}
	timeout, terr := w.timeout.Get(x.Env)
	if terr != nil {
		return nil, terr
	}
	now := "error: " + x.Redact.String(fmt.Sprint(err))
	if err == nil {
		now = Show(x.Redact, r)
	}
	return &Plan{Changes: true, Summary: fmt.Sprintf("would wait up to %s until %s (now: %s)", timeout, w.until.Source, now)}, nil
}

// TimeoutError is a wait that ended before its condition held.
type TimeoutError struct {
	Until    string
	Timeout  time.Duration
	LastSeen string
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("timed out after %s waiting until %s; last seen: %s", e.Timeout, e.Until, e.LastSeen)
}

// Apply polls until the condition holds or the timeout passes. A probe
// error does not end the wait (a restarting database refuses connections
// for a while); it is what the timeout reports if it persists.
//
// Polls come fast at first and back off to the interval (see pollDelay):
// a condition that becomes true is seen within a tenth of the time waited
// so far, not a whole interval later.
func (w *waitUntil) Apply(ctx context.Context, x *Exec, _ *Plan) (Result, error) {
	timeout, err := w.timeout.Get(x.Env)
	if err != nil {
		return nil, err
	}
	interval, err := w.interval.Get(x.Env)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	last := "nothing yet"
	for attempt := 1; ; attempt++ {
		r, ok, err := w.observe(ctx, x)
		switch {
		case err == nil && ok:
			r["attempts"] = attempt
			return r, nil
		case err != nil && ctx.Err() == nil:
			last = "error: " + err.Error()
		case err == nil:
			last = Show(x.Redact, r)
		}
		if x.Progress != nil {
			x.Progress(fmt.Sprintf("attempt %d: %s", attempt, last))
		}
		t := time.NewTimer(pollDelay(time.Since(start), interval))
		select {
		case <-ctx.Done():
			t.Stop()
			if ctx.Err() == context.DeadlineExceeded && context.Cause(ctx) == context.DeadlineExceeded {
				return nil, &TimeoutError{Until: w.until.Source, Timeout: timeout, LastSeen: last}
			}
			return nil, context.Cause(ctx)
		case <-t.C:
		}
	}
}

// MinPollDelay is the shortest pause between two polls of a wait.
const MinPollDelay = 10 * time.Millisecond

// pollDelay is the pause after a poll when waited has passed since the
// first: a tenth of it, at least MinPollDelay, at most interval. Most
// waits end soon (a unit started, a promotion done), so the first polls
// are close together; a long wait polls at its interval, so a slow
// condition costs the host no more than before. The pauses grow by a
// tenth each: about 30 polls in the first second, 25 more until the
// interval of 1s is reached after 10s.
func pollDelay(waited, interval time.Duration) time.Duration {
	d := waited / 10
	if d < MinPollDelay {
		d = MinPollDelay
	}
	if d > interval {
		d = interval
	}
	return d
}

// Rechecks implements Rechecker: it only observes.
func (*waitUntil) Rechecks() bool { return true }

// MayChange implements Changer: a wait changes what its probe may change.
// A probe is observed again and again, so it should only read, but it is
// not required to say so: one that does not (an ssh-exec without
// read_only) may change its host.
func (w *waitUntil) MayChange() bool {
	if w.probe == nil {
		return false
	}
	c, ok := w.probe.Step.(Changer)
	return !ok || c.MayChange()
}
