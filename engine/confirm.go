package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/runbook-dev/runbook/steps"
)

// Gate is a confirmation a run asks the operator for (confirm:) before an
// irreversible change.
type Gate struct {
	// Index is the 1-based index of the step the gate stands on; 0 for the
	// playbook's gate, asked after the guards and before the first step.
	Index int
	// ID and Step name the step (Step with its for_each element), or Step
	// is the playbook's name.
	ID, Step string
	// Host is the host the step is about to change; Item its for_each
	// element, 0 without.
	Host string
	Item int
	// Text is the gate's text, rendered, with secrets redacted.
	Text string
	// Word is what the operator must type to go on.
	Word string
	// Plan is what the step is about to change (its plan's summary and
	// diff), empty for the playbook's gate.
	Plan, Diff string
}

// Answer is how the operator answered a gate.
type Answer struct {
	// Typed is what the operator typed, without the end of the line.
	Typed string
	// Yes says --yes answered the gate without asking anyone.
	Yes bool
	// Operator is who answered, as user@machine.
	Operator string
}

// Confirmer asks the operator to confirm a gate and returns the answer,
// which the runner compares with the gate's word. It is called by one
// goroutine at a time. An error is no answer (the input ended, the read
// failed); a cancelled ctx must make it return.
type Confirmer func(ctx context.Context, g *Gate) (Answer, error)

// ConfirmError is a gate the operator did not confirm: the answer was not
// its word, or no answer came. The step it stands on changed nothing, and
// the run stops.
type ConfirmError struct {
	Word, Typed string
	// Err is why no answer came, or nil.
	Err error
}

func (e *ConfirmError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("not confirmed: no answer (%v) where %q was asked for; nothing was changed by it", e.Err, e.Word)
	}
	return fmt.Sprintf("not confirmed: typed %q where %q was asked for; nothing was changed by it", e.Typed, e.Word)
}

// UnconfirmedError refuses, before anything runs, a run that could reach
// confirmation gates with nobody to answer them (Runner.Confirm is nil).
type UnconfirmedError struct {
	// Gates name the gates the run could reach.
	Gates []string
}

func (e *UnconfirmedError) Error() string {
	return fmt.Sprintf("refused, nothing was changed: the run asks for a typed confirmation (%s) and nobody can answer",
		strings.Join(e.Gates, "; "))
}

// playbookGate names the playbook's gate in messages.
const playbookGate = "before the first step"

// checkGates refuses a run that could reach a gate when nobody can answer.
// A gate the run could reach is any, less on a resume those an earlier
// attempt passed and those of steps it finished; a step's when is not
// known yet, so it counts.
func (x *run) checkGates() error {
	if x.confirmer != nil || x.dryRun {
		return nil
	}
	var gates []string
	if !x.gatePassed(0) {
		for _, g := range x.topGates() {
			gates = append(gates, g.where)
		}
	}
	for i, s := range x.pb.Steps {
		// A step with a gate an earlier attempt passed counts as passed
		// here; should another host's gate (another word or text) of it
		// be reached, asking it refuses that host then.
		if s.Confirm == nil || x.skips(s.Frame) || x.gatePassed(i+1) || x.resume != nil && x.stepDone(i+1, s) {
			continue
		}
		gates = append(gates, fmt.Sprintf("[%d] %s", i+1, s.Label()))
	}
	if len(gates) == 0 {
		return nil
	}
	return &UnconfirmedError{Gates: gates}
}

// gatePassed says whether a gate of step index (0: the playbook's) was
// passed: in this run, or by an earlier attempt that went on to make the
// change it guards. x.gateMu is held, or no gate is asked yet.
func (x *run) gatePassed(index int) bool {
	if x.passed[index] {
		return true
	}
	if x.resume == nil {
		return false
	}
	for k, ok := range x.resume.Confirmed {
		if ok && k.Index == index {
			return true
		}
	}
	return false
}

// GateKey is a confirmation gate as the operator saw it: the index of its
// step (0: the playbook's), the word it asked for and its rendered text,
// redacted (Event.Word and Event.Message of its confirm event). An answer
// stands for the gates with the same key, and for no other.
type GateKey struct {
	Index      int
	Word, Text string
}

// gateKey renders the key of gate c of step index in env; a gate that
// does not render gets the key of nothing else (it is asked, and fails).
func (x *run) gateKey(c *Confirm, env map[string]any, index int) GateKey {
	k := GateKey{Index: index}
	if word, err := c.Word.Render(env); err == nil {
		k.Word = strings.TrimSpace(word)
	}
	if text, err := c.Text.Render(env); err == nil {
		k.Text = x.redactor().String(strings.TrimRight(text, "\n"))
	}
	return k
}

// resumeConfirmed says whether an earlier attempt passed gate k and acted
// on it; a key without a text stands for the step's gate with k's word
// whatever its text.
func (x *run) resumeConfirmed(k GateKey) bool {
	if x.resume == nil {
		return false
	}
	for c, ok := range x.resume.Confirmed {
		if ok && c.Index == k.Index && c.Word == k.Word && (k.Text == "" || c.Text == k.Text) {
			return true
		}
	}
	return false
}

// confirm asks a gate once per step, word and (in a batch) text: the same question
// for another host or element of the step (or one an earlier attempt
// passed and acted on) is not asked again, and one refused refuses them
// too; a word that differs (one naming the host: "type pg2"), or in a
// batch a text that differs ("restart pg2?"), is asked again, so that an answer about one
// host never decides another's, in this attempt or a resume. A refusal
// is never taken as an approval. Gates are asked one at a time. A dry run
// shows the gate without asking.
func (x *run) confirm(ctx context.Context, c *Confirm, env map[string]any, g *Gate) error {
	if c == nil {
		return nil
	}
	x.gateMu.Lock()
	defer x.gateMu.Unlock()
	if ctx.Err() != nil {
		// Interrupted while another host of the step was asking.
		return context.Cause(ctx)
	}
	if x.dryRun {
		if !x.passed[g.Index] {
			x.showGate(c, env, g)
		}
		x.passed[g.Index] = true
		return nil
	}
	k := x.gateKey(c, env, g.Index)
	if g.Index == 0 || x.pb.Steps[g.Index-1].Batch == nil {
		// One question for all the hosts of a step, which the text may
		// name: "stop a and the others?". A batch asks each batch of
		// hosts, minutes apart: its text is part of what was asked.
		k.Text = ""
	}
	if x.resumeConfirmed(k) {
		return nil
	}
	if err, asked := x.answered[k]; asked {
		return err
	}
	err := x.ask(ctx, c, env, g)
	switch {
	case err == nil:
		x.passed[g.Index] = true
		x.answered[k] = nil
	case ctx.Err() == nil:
		x.answered[k] = err
	}
	return err
}

// ask renders a gate, asks the operator and journals the answer.
func (x *run) ask(ctx context.Context, c *Confirm, env map[string]any, g *Gate) error {
	if err := x.renderGate(c, env, g); err != nil {
		return fmt.Errorf("confirm: %w", err)
	}
	if x.confirmer == nil {
		return &UnconfirmedError{Gates: []string{g.Step}}
	}
	ans, err := x.confirmer(ctx, g)
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	ok := err == nil && (ans.Yes || strings.TrimSpace(ans.Typed) == g.Word)
	ev := &Event{Type: EventConfirm, Index: g.Index, ID: g.ID, Name: g.Step, Host: g.Host, Item: g.Item, Status: StatusOK,
		Message: g.Text, Word: g.Word, Answer: steps.Cut(x.redactor().String(ans.Typed), 200), Yes: ans.Yes, Operator: ans.Operator}
	if !ok {
		ev.Status = StatusFailed
	}
	x.sink.Emit(ev)
	if ok && !ans.Yes {
		// The operator read and typed, seconds or minutes after the
		// findings so far: every probe from here asks the network again.
		x.sightings.ForgetAll()
	}
	if ok {
		return nil
	}
	return &ConfirmError{Word: g.Word, Typed: steps.Cut(x.redactor().String(ans.Typed), 200), Err: err}
}

// renderGate fills in the gate's text and word from c in env.
func (x *run) renderGate(c *Confirm, env map[string]any, g *Gate) error {
	text, err := c.Text.Render(env)
	if err != nil {
		return fmt.Errorf("text: %w", err)
	}
	word, err := c.Word.Render(env)
	if err != nil {
		return fmt.Errorf("word: %w", err)
	}
	word = strings.TrimSpace(word)
	switch {
	case word == "" || strings.ContainsAny(word, "\r\n"):
		return fmt.Errorf("word %s gave %q: want one line to type", c.Word.Source, word)
	case x.redactor().Contains(word):
		return fmt.Errorf("word %s gave a secret's value: it would be shown and journaled", c.Word.Source)
	}
	g.Word = word
	g.Text = x.redactor().String(strings.TrimRight(text, "\n"))
	g.Plan, g.Diff = x.redactor().String(g.Plan), x.redactor().String(g.Diff)
	return nil
}

// showGate emits a dry run's view of a gate: rendered where the values it
// reads exist, as written otherwise.
func (x *run) showGate(c *Confirm, env map[string]any, g *Gate) {
	ev := &Event{Type: EventConfirm, Index: g.Index, ID: g.ID, Name: g.Step, Host: g.Host, Item: g.Item, DryRun: true}
	if err := x.renderGate(c, env, g); err != nil {
		ev.Message = fmt.Sprintf("%s\n(rendered when the run gets here: %v)", strings.TrimRight(c.Text.Source, "\n"), err)
		ev.Word = c.Word.Source
	} else {
		ev.Message, ev.Word = g.Text, g.Word
	}
	x.sink.Emit(ev)
}

// confirmStep asks the gate of target t (g, nil without one) before the
// step makes the change its plan found (nil when the plan failed), and
// returns how long the operator took. Without a gate it returns at once.
func (x *run) confirmStep(ctx context.Context, t *target, g *Gate, plan *steps.Plan) (time.Duration, error) {
	if g == nil {
		return 0, nil
	}
	if plan != nil {
		g.Plan, g.Diff = plan.Summary, plan.Diff
	}
	start := time.Now()
	err := x.confirm(ctx, t.step.Confirm, t.ex.Env, g)
	return time.Since(start), err
}

// topGate is the playbook's gate, or an included playbook's: asked after
// every guard of the tree, before the first step.
type topGate struct {
	c     *Confirm
	fr    *Frame
	name  string
	where string
}

// topGates are the playbook's gate and its included playbooks', in order.
func (x *run) topGates() []topGate {
	var out []topGate
	if x.pb.Confirm != nil {
		out = append(out, topGate{x.pb.Confirm, nil, x.pb.Name, playbookGate})
	}
	for _, fr := range x.pb.Frames {
		if c := fr.Playbook.Confirm; c != nil && !x.skips(fr) {
			out = append(out, topGate{c, fr, fr.Playbook.Name, playbookGate + " (of " + fr.Path() + ": " + fr.Playbook.Name + ")"})
		}
	}
	return out
}

// confirmRun asks the playbook's gate, and those of the playbooks it
// includes, in order: after the guards, before the first step. They pass
// together (gate 0): a resume after any step asks none again.
func (x *run) confirmRun(ctx context.Context) error {
	gates := x.topGates()
	if len(gates) <= 1 {
		g := topGate{name: x.pb.Name}
		if len(gates) == 1 {
			g = gates[0]
		}
		err := x.confirm(ctx, g.c, x.env(g.fr), &Gate{Step: g.name})
		if _, ok := err.(*ConfirmError); ok && g.c != nil {
			return fmt.Errorf("%s: %w", g.where, err)
		}
		return err
	}
	x.gateMu.Lock()
	passed := x.gatePassed(0)
	x.gateMu.Unlock()
	if passed {
		return nil
	}
	for _, g := range gates {
		var err error
		if x.dryRun {
			x.showGate(g.c, x.env(g.fr), &Gate{Step: g.name})
		} else {
			err = x.ask(ctx, g.c, x.env(g.fr), &Gate{Step: g.name})
		}
		if _, ok := err.(*ConfirmError); ok {
			return fmt.Errorf("%s: %w", g.where, err)
		}
		if err != nil {
			return err
		}
	}
	x.gateMu.Lock()
	x.passed[0] = true
	x.gateMu.Unlock()
	return nil
}
