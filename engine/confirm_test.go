package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/engine"
)

// operator answers gates as a test tells it to, and remembers them.
type operator struct {
	mu    sync.Mutex
	gates []engine.Gate
	// answer is typed at every gate; "" types the gate's word.
	answer string
	// check runs when a gate is asked, before the answer.
	check func(g *engine.Gate)
}

func (o *operator) confirm(_ context.Context, g *engine.Gate) (engine.Answer, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.gates = append(o.gates, *g)
	if o.check != nil {
		o.check(g)
	}
	typed := o.answer
	if typed == "" {
		typed = g.Word
	}
	return engine.Answer{Typed: typed + "\n", Operator: "alice@laptop"}, nil
}

func (o *operator) asked() []engine.Gate {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]engine.Gate(nil), o.gates...)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

const stepGates = `
version: 1
name: gates
params:
  dir: {type: string}
  node: {type: string, default: pg2}
secrets:
  pw: {env: PW}
steps:
  - id: noop
    confirm: {text: never asked, word: noop}
    ssh-exec:
      command: touch ${{ params.dir }}/noop
      creates: ${{ params.dir }}
  - id: off
    when: params.node == "nobody"
    confirm: {text: never asked, word: "off"}
    ssh-exec: {command: "touch ${{ params.dir }}/off"}
  - id: evidence
    ssh-exec: {command: "echo timeline 7", read_only: true}
  - id: promote
    retries: 3
    retry_delay: 1ms
    confirm:
      text: |
        Promote ${{ params.node }}? ${{ steps.evidence.result.stdout }}
        password ${{ secrets.pw }}
      word: ${{ params.node }}
    ssh-exec:
      command: touch ${{ params.dir }}/promoted
      creates: ${{ params.dir }}/promoted
  - id: after
    ssh-exec: {command: "touch ${{ params.dir }}/after"}
`

// TestConfirmStepGate: a step's gate is asked just before the step makes
// its change, with the earlier steps' results in its text and secrets
// redacted, and never for a step that changes nothing or does not run.
func TestConfirmStepGate(t *testing.T) {
	dir := t.TempDir()
	pb := mustLoad(t, stepGates)
	op := &operator{check: func(g *engine.Gate) {
		if exists(filepath.Join(dir, "promoted")) {
			t.Error("the step changed its host before the gate was answered")
		}
	}}
	rec, err := run(t, pb, map[string]string{"dir": dir}, map[string]string{"pw": "s3cret-value"}, func(r *engine.Runner) { r.Confirm = op.confirm })
	if err != nil {
		t.Fatal(err)
	}
	gates := op.asked()
	if len(gates) != 1 {
		t.Fatalf("asked %d gates, want only promote's: %+v", len(gates), gates)
	}
	g := gates[0]
	if g.Index != 4 || g.ID != "promote" || g.Word != "pg2" || g.Host != "localhost" || !strings.Contains(g.Plan, "touch") {
		t.Errorf("gate %+v", g)
	}
	if g.Text != "Promote pg2? timeline 7\n\npassword "+engine.Redacted {
		t.Errorf("text %q: want the evidence, and the secret redacted", g.Text)
	}
	if !exists(filepath.Join(dir, "promoted")) || !exists(filepath.Join(dir, "after")) {
		t.Error("the confirmed step or the one after it did not run")
	}
	answers := rec.of(engine.EventConfirm)
	if len(answers) != 1 || answers[0].Status != engine.StatusOK || answers[0].Answer != "pg2\n" || answers[0].Operator != "alice@laptop" ||
		strings.Contains(answers[0].Message, "s3cret") {
		t.Errorf("confirm events %+v", answers)
	}
}

// TestConfirmRefused: a wrong word stops the run before the step's change,
// is not retried, and says what was expected.
func TestConfirmRefused(t *testing.T) {
	dir := t.TempDir()
	pb := mustLoad(t, stepGates)
	op := &operator{answer: "pg1"}
	rec, err := run(t, pb, map[string]string{"dir": dir}, map[string]string{"pw": "s3cret-value"}, func(r *engine.Runner) { r.Confirm = op.confirm })
	var ce *engine.ConfirmError
	if !errors.As(err, &ce) || ce.Word != "pg2" || ce.Typed != "pg1\n" {
		t.Fatalf("err = %v, want a ConfirmError", err)
	}
	if !strings.Contains(err.Error(), `typed "pg1\n" where "pg2" was asked for`) {
		t.Errorf("message %q", err)
	}
	if len(op.asked()) != 1 {
		t.Errorf("asked %d times: a refusal is not retried", len(op.asked()))
	}
	if exists(filepath.Join(dir, "promoted")) || exists(filepath.Join(dir, "after")) {
		t.Error("a refused step, or a step after it, ran")
	}
	if st := rec.ends()["promote"]; st != engine.StatusFailed {
		t.Errorf("promote ended %s, want failed", st)
	}
}

const playbookGate = `
version: 1
name: gated
params:
  dir: {type: string}
  marker: {type: string}
require:
  - name: the marker exists
    ssh-exec: {command: "test -e ${{ params.marker }}"}
    assert: result.exit_code == 0
confirm:
  text: Go on in ${{ params.dir }}?
  word: go
steps:
  - id: first
    ssh-exec: {command: "touch ${{ params.dir }}/first"}
`

// TestConfirmPlaybookGate: the playbook's gate is asked after the guards
// pass and before the first step; a failed guard refuses without asking.
func TestConfirmPlaybookGate(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	pb := mustLoad(t, playbookGate)
	params := map[string]string{"dir": dir, "marker": marker}
	op := &operator{}
	_, err := run(t, pb, params, nil, func(r *engine.Runner) { r.Confirm = op.confirm })
	var ge *engine.GuardError
	if !errors.As(err, &ge) || len(op.asked()) != 0 {
		t.Fatalf("err = %v, asked %d: want the guard's refusal and no question", err, len(op.asked()))
	}
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	op = &operator{answer: "no", check: func(g *engine.Gate) {
		if exists(filepath.Join(dir, "first")) {
			t.Error("the first step ran before the playbook's gate")
		}
	}}
	_, err = run(t, pb, params, nil, func(r *engine.Runner) { r.Confirm = op.confirm })
	var ce *engine.ConfirmError
	if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), "before the first step: not confirmed") {
		t.Fatalf("err = %v, want the playbook's gate refused", err)
	}
	if g := op.asked(); len(g) != 1 || g[0].Index != 0 || g[0].Step != "gated" || g[0].Text != "Go on in "+dir+"?" {
		t.Errorf("gates %+v", g)
	}
	if exists(filepath.Join(dir, "first")) {
		t.Error("a step ran after the playbook's gate was refused")
	}
	op.answer = ""
	if _, err = run(t, pb, params, nil, func(r *engine.Runner) { r.Confirm = op.confirm }); err != nil || !exists(filepath.Join(dir, "first")) {
		t.Fatalf("confirmed: err %v, first ran %v", err, exists(filepath.Join(dir, "first")))
	}
}

// TestConfirmNobodyToAnswer: with no one to answer, a run that could reach
// a gate is refused before anything runs, guards and earlier steps
// included.
func TestConfirmNobodyToAnswer(t *testing.T) {
	pb, dir := mustLoadInDir(t, "unattended", `
require:
  - name: a probe that leaves a trace
    ssh-exec: {command: "touch ${{ params.dir }}/guard"}
    assert: result.exit_code == 0
steps:
  - id: before
    ssh-exec: {command: "touch ${{ params.dir }}/before"}
  - id: gated
    name: the gated step
    confirm: {text: "sure?", word: "yes"}
    ssh-exec: {command: "touch ${{ params.dir }}/gated"}
`)
	_, err := run(t, pb, map[string]string{"dir": dir}, nil)
	var ue *engine.UnconfirmedError
	if !errors.As(err, &ue) || len(ue.Gates) != 1 || ue.Gates[0] != "[2] the gated step" {
		t.Fatalf("err = %v, want an UnconfirmedError naming the gate", err)
	}
	for _, f := range []string{"guard", "before", "gated"} {
		if exists(filepath.Join(dir, f)) {
			t.Errorf("%s ran", f)
		}
	}
	// A dry run asks nobody.
	if _, err := run(t, pb, map[string]string{"dir": dir}, nil, func(r *engine.Runner) { r.DryRun = true }); err != nil {
		t.Fatalf("dry run: %v", err)
	}
}

// TestConfirmResume: on a resume, a gate an earlier attempt passed and
// acted on is not asked again, one it did not pass is, and the gate of a
// step it finished cannot be reached: no one need answer it.
func TestConfirmResume(t *testing.T) {
	pb, dir := mustLoadInDir(t, "resumed", `
confirm: {text: "start?", word: start}
steps:
  - id: one
    confirm: {text: "one?", word: one}
    ssh-exec: {command: "echo one >> ${{ params.dir }}/log"}
  - id: two
    confirm: {text: "two?", word: two}
    ssh-exec: {command: "echo two >> ${{ params.dir }}/log"}
`)
	params := map[string]string{"dir": dir}
	done := map[engine.StepKey]engine.Outcome{{Index: 1, Host: "localhost"}: {Status: engine.StatusChanged, ID: "one"}}
	op := &operator{}
	_, err := run(t, pb, params, nil, func(r *engine.Runner) {
		r.Confirm = op.confirm
		r.Resume = &engine.Resume{Done: done, Confirmed: map[engine.GateKey]bool{{Index: 0, Word: "start", Text: "start?"}: true, {Index: 1, Word: "one", Text: "one?"}: true}}
	})
	if err != nil {
		t.Fatal(err)
	}
	if g := op.asked(); len(g) != 1 || g[0].Word != "two" {
		t.Errorf("asked %+v, want only two's gate", g)
	}
	// Two is in doubt, its gate passed and acted on: nobody is asked.
	inDoubt := map[engine.StepKey]string{{Index: 2, Host: "localhost"}: "two"}
	_, err = run(t, pb, params, nil, func(r *engine.Runner) {
		r.Resume = &engine.Resume{Done: done, InDoubt: inDoubt, RetryInDoubt: true, Confirmed: map[engine.GateKey]bool{{Index: 0, Word: "start", Text: "start?"}: true, {Index: 2, Word: "two", Text: "two?"}: true}}
	})
	if err != nil {
		t.Fatalf("resume with every reachable gate passed: %v", err)
	}
	// The playbook's gate was not acted on: it is asked again.
	_, err = run(t, pb, params, nil, func(r *engine.Runner) {
		r.Resume = &engine.Resume{Done: done, InDoubt: inDoubt, RetryInDoubt: true, Confirmed: map[engine.GateKey]bool{{Index: 2, Word: "two", Text: "two?"}: true}}
	})
	var ue *engine.UnconfirmedError
	if !errors.As(err, &ue) || len(ue.Gates) != 1 || ue.Gates[0] != "before the first step" {
		t.Fatalf("err = %v, want the playbook's gate unanswerable", err)
	}
}

// TestConfirmOncePerStep: a step on several hosts, or over several
// elements, asks its gate once, before the first change, for all of them.
func TestConfirmOncePerStep(t *testing.T) {
	inv := mustInventory(t, "defaults: {transport: local}\nhosts:\n  a: {}\n  b: {}\n  c: {}\n  d: {}\ngroups:\n  all: [a, b, c, d]\n")
	pb, dir := mustLoadInDir(t, "once", `
steps:
  - id: each
    hosts: [all]
    parallel: 4
    confirm: {text: "${{ host.name }} and the others?", word: all}
    ssh-exec: {command: "touch ${{ params.dir }}/${{ host.name }}"}
  - id: items
    for_each: ${{ ["x", "y", "z"] }}
    confirm: {text: "${{ item }} and the others?", word: items}
    ssh-exec: {command: "touch ${{ params.dir }}/${{ item }}"}
`)
	op := &operator{}
	if _, err := run(t, pb, map[string]string{"dir": dir}, nil, func(r *engine.Runner) { r.Inventory, r.Confirm = inv, op.confirm }); err != nil {
		t.Fatal(err)
	}
	if g := op.asked(); len(g) != 2 || g[0].Word != "all" || g[1].Word != "items" || g[1].Text != "x and the others?" {
		t.Errorf("asked %+v, want each gate once", g)
	}
	for _, f := range []string{"a", "b", "c", "d", "x", "y", "z"} {
		if !exists(filepath.Join(dir, f)) {
			t.Errorf("%s was not made", f)
		}
	}
	// Refused, no host of the step makes its change.
	dir2 := t.TempDir()
	op = &operator{answer: "none"}
	_, err := run(t, pb, map[string]string{"dir": dir2}, nil, func(r *engine.Runner) { r.Inventory, r.Confirm = inv, op.confirm })
	if !errors.As(err, new(*engine.ConfirmError)) || len(op.asked()) != 1 {
		t.Fatalf("err = %v, asked %d", err, len(op.asked()))
	}
	if ents, _ := os.ReadDir(dir2); len(ents) != 0 {
		t.Errorf("refused, yet %d host(s) changed", len(ents))
	}
}

// TestConfirmDryRun: a plan shows each gate it reaches, rendered where it
// can be, without asking.
func TestConfirmDryRun(t *testing.T) {
	pb, dir := mustLoadInDir(t, "planned", `
confirm: {text: "Work in ${{ params.dir }}?", word: go}
steps:
  - id: make
    ssh-exec: {command: "echo made", idempotent: true}
  - id: use
    confirm: {text: "Use ${{ steps.make.result.stdout }}?", word: use}
    ssh-exec: {command: "touch ${{ params.dir }}/used"}
`)
	rec, err := run(t, pb, map[string]string{"dir": dir}, nil, func(r *engine.Runner) {
		r.DryRun = true
		r.Confirm = func(context.Context, *engine.Gate) (engine.Answer, error) {
			t.Error("a dry run asked")
			return engine.Answer{}, nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	shown := rec.of(engine.EventConfirm)
	if len(shown) != 2 || !shown[0].DryRun || shown[0].Message != "Work in "+dir+"?" || shown[0].Word != "go" {
		t.Fatalf("shown %+v", shown)
	}
	if shown[1].Index != 2 || shown[1].Word != "use" || !strings.HasPrefix(shown[1].Message, "Use ${{ steps.make.result.stdout }}?\n(rendered when the run gets here") {
		t.Errorf("gate of a step depending on an unapplied one: %+v", shown[1])
	}
	if exists(filepath.Join(dir, "used")) {
		t.Error("a dry run changed something")
	}
}

// TestConfirmTimeAndInterrupt: the operator's time at a gate does not
// count against the step's timeout, and Ctrl-C at a gate interrupts the
// run rather than refusing the gate.
func TestConfirmTimeAndInterrupt(t *testing.T) {
	pb, dir := mustLoadInDir(t, "slow-operator", `
steps:
  - id: gated
    timeout: 200ms
    confirm: {text: "sure?", word: "yes"}
    ssh-exec: {command: "touch ${{ params.dir }}/done"}
`)
	slow := func(ctx context.Context, g *engine.Gate) (engine.Answer, error) {
		time.Sleep(400 * time.Millisecond)
		return engine.Answer{Typed: g.Word}, nil
	}
	if _, err := run(t, pb, map[string]string{"dir": dir}, nil, func(r *engine.Runner) { r.Confirm = slow }); err != nil {
		t.Fatalf("a slow answer timed the step out: %v", err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	waiting := func(ctx context.Context, g *engine.Gate) (engine.Answer, error) {
		cancel(engine.ErrInterrupted)
		<-ctx.Done()
		return engine.Answer{}, ctx.Err()
	}
	vals, _ := engine.ResolveParams(pb, map[string]string{"dir": t.TempDir()})
	rec := &recorder{}
	err := (&engine.Runner{Sink: rec, Confirm: waiting}).Run(ctx, pb, engine.Inputs{Params: vals})
	if !errors.Is(err, engine.ErrInterrupted) || rec.ends()["gated"] != engine.StatusInterrupted {
		t.Fatalf("err = %v, ends %v: want interrupted", err, rec.ends())
	}
	for _, e := range rec.of(engine.EventConfirm) {
		t.Errorf("an interrupted question was recorded as an answer: %+v", e)
	}
}

// rollingGate is a rolling sequence over the hosts of batchInventory, one
// at a time within a budget of three failures, whose restart asks
// "restart HOST?" with word; it returns the playbook and the directory its
// restarts touch a file in.
func rollingGate(t *testing.T, word string) (*engine.Playbook, string) {
	t.Helper()
	return mustLoadInDir(t, "rolling-gates", `
steps:
  - name: Restart each node
    hosts: [all]
    serial: 1
    max_failures: 3
    steps:
      - id: restart
        confirm: {text: "restart ${{ host.name }}?", word: "`+word+`"}
        ssh-exec: {command: "touch ${{ params.dir }}/${{ host.name }}"}
`)
}

// askedOnEachHost runs pb, in dir, on the hosts of batchInventory with an
// operator who types each gate's word, and returns what of each gate
// (asked) was asked, in order.
func askedOnEachHost(t *testing.T, pb *engine.Playbook, dir string, asked func(engine.Gate) string) string {
	t.Helper()
	op := &operator{}
	if _, err := run(t, pb, map[string]string{"dir": dir}, nil, func(r *engine.Runner) { r.Inventory, r.Confirm = batchInventory(t), op.confirm }); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range op.asked() {
		out = append(out, asked(g))
	}
	return strings.Join(out, " ")
}

// TestConfirmPerHostWord: a gate whose word names the host is asked for
// each host of a rolling sequence: the answer about one host never
// decides another's, and a refusal of one is not reused for the next.
func TestConfirmPerHostWord(t *testing.T) {
	pb, dir := rollingGate(t, "${{ host.name }}")
	if words := askedOnEachHost(t, pb, dir, func(g engine.Gate) string { return g.Word }); words != "a b c d" {
		t.Fatalf("asked for %v, want each host in turn", words)
	}
	// Refused for a: b, c and d are asked, not refused with a's answer.
	dir2 := t.TempDir()
	op := &operator{answer: "a-no"}
	op.check = func(g *engine.Gate) {
		if g.Word != "a" {
			op.answer = ""
		}
	}
	_, _ = run(t, pb, map[string]string{"dir": dir2}, nil, func(r *engine.Runner) { r.Inventory, r.Confirm = batchInventory(t), op.confirm })
	if n := len(op.asked()); n != 4 {
		t.Fatalf("asked %d times, want 4 (a refused, then b, c, d each)", n)
	}
	if exists(filepath.Join(dir2, "a")) || !exists(filepath.Join(dir2, "b")) {
		t.Fatalf("a refused must not change, b confirmed must")
	}
}

// TestConfirmPerHostText: a gate whose text names the host and whose word
// is fixed is asked for each host of a rolling sequence: "restart a?"
// answered yes does not stand for "restart b?".
func TestConfirmPerHostText(t *testing.T) {
	pb, dir := rollingGate(t, "yes")
	if texts := askedOnEachHost(t, pb, dir, func(g engine.Gate) string { return g.Text }); texts != "restart a? restart b? restart c? restart d?" {
		t.Fatalf("asked %q, want each host's text in turn", texts)
	}
}
