package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/expr-lang/expr/types"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/steps"
)

// poll is a step type of this test's own that waits: the loader and lint
// must know it from its descriptor alone, not by the name wait-until.
type poll struct{}

var pollType = steps.Descriptor{
	Name:   "poll",
	Doc:    "wait for something",
	Fields: []steps.Field{{Name: "for", Kind: steps.String, Required: true, Doc: "what to wait for"}},
	Result: types.Map{"seen": types.Bool},
	Waits:  true,
}

func (poll) Describe() steps.Descriptor { return pollType }

func (poll) Decode(d *steps.Decoder, b steps.Body) steps.Step { return pollStep{} }

type pollStep struct{}

func (pollStep) Probe(context.Context, *steps.Exec) (steps.Result, error) { return nil, nil }
func (pollStep) Plan(context.Context, *steps.Exec) (*steps.Plan, error)   { return &steps.Plan{}, nil }
func (pollStep) Apply(context.Context, *steps.Exec, *steps.Plan) (steps.Result, error) {
	return nil, nil
}

func withPoll() *engine.Loader {
	return &engine.Loader{Registry: steps.NewRegistry(append(steps.Builtin().All(), poll{})...)}
}

func TestWaitingTypeIsNoGuardNorProbe(t *testing.T) {
	_, ds := withPoll().Load("test.yaml", []byte(`version: 1
name: t
require:
  - name: g
    poll: {for: x}
    assert: result.seen
steps:
  - id: w
    wait-until:
      probe:
        poll: {for: x}
      until: result.seen
      timeout: 1s
`))
	all := strings.Join(printed(ds), "\n")
	for _, want := range []string{
		"test.yaml:5:11: a guard checks the state once; use a probe step type, not poll",
		"test.yaml:11:15: a probe cannot be a poll",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("diagnostics lack %q:\n%s", want, all)
		}
	}
}

func TestWaitingTypeVerifiesTheChangesBeforeIt(t *testing.T) {
	const change = `version: 1
name: t
steps:
  - id: touch
    ssh-exec: {command: touch /tmp/x}
`
	rules := func(src string) []string {
		_, ds := withPoll().Load("test.yaml", []byte(src))
		var out []string
		for _, d := range ds {
			out = append(out, d.Rule)
		}
		return out
	}
	if got := rules(change); len(got) != 1 || got[0] != diag.RuleUnguardedChange {
		t.Fatalf("a change with no guard nor verification: rules %v, want %s", got, diag.RuleUnguardedChange)
	}
	if got := rules(change + "  - poll: {for: x}\n"); len(got) != 0 {
		t.Errorf("a change verified by a waiting step after it: rules %v, want none", got)
	}
}
