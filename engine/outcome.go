package engine

import (
	"fmt"
	"math"

	"github.com/expr-lang/expr/types"
	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/steps"
)

// RunOutcome is what a playbook that reports (a status view, a monitoring
// check) makes of its run once it ends: a text for people or a monitoring
// system, a value for machines, and the exit status of the command.
// Its expressions see everything a step does, the steps' results so far
// among it, and `result`: whether the run went through (ok) and, when it
// did not, its error; text and exit_code also see the value, computed
// first, as result.value.
type RunOutcome struct {
	Pos  diag.Pos
	Text *tmpl.Template
	// Value, a mapping, is the run-end event's value (--output json).
	Value *tmpl.Template
	// ExitCode, an integer from 0 to 125, replaces the run's exit status.
	ExitCode *tmpl.Template
}

var outcomeFields = []steps.Field{
	{Name: "text", Kind: steps.String, Doc: "printed on standard output when the run ends, the step lines going to standard error: a status line, a table; result.value is the value", Example: "${{ result.ok ? \"OK\" : \"UNKNOWN - \" + result.error }}"},
	{Name: "value", Kind: steps.String, Doc: "a mapping, computed first, given as the run-end event's value with --output json, and journaled", Example: "${{ {\"nodes\": steps.observe.results} }}"},
	{Name: "exit_code", Kind: steps.String, Doc: "the exit status of the run, an integer from 0 to 125 (result.value is the value), in place of runbook's own (a monitoring plugin's 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)", Example: "${{ result.ok ? 0 : 3 }}"},
}

// OutcomeFields returns the keys of outcome:, for the schema.
func OutcomeFields() []steps.Field { return outcomeFields }

// runResultType is the type of `result` in an outcome.
var runResultType = types.Map{"ok": types.Bool, "error": types.String, "value": tmpl.AnyMap}

// decodeOutcome decodes outcome: after the steps, whose results it reads.
func decodeOutcome(d *steps.Decoder, n *yaml.Node) *RunOutcome {
	f := d.Check(n, outcomeFields, "outcome")
	saved, savedHost := d.Scope.Result, d.Scope.Host
	d.Scope.Result, d.Scope.Host = runResultType, false
	o := &RunOutcome{Pos: steps.Pos(n), Text: d.Template(f.Get("text")), Value: d.Template(f.Get("value")), ExitCode: d.Template(f.Get("exit_code"))}
	d.Scope.Result, d.Scope.Host = saved, savedHost
	if o.Text != nil {
		d.RefuseSecret(f.Get("text"), o.Text, diag.RuleSecretExposed, "outcome text", "it is printed and journaled")
	}
	if o.Value != nil {
		d.RefuseSecret(f.Get("value"), o.Value, diag.RuleSecretExposed, "outcome value", "it is printed and journaled")
	}
	return o
}

// outcomeOf evaluates the playbook's outcome at the end of a run that
// ended with err (nil: it went through). ok is false when the playbook
// has none, in a dry run, and when the run stopped before its inputs were
// known; an outcome that cannot be evaluated is an error for the run-end
// event's message.
func (x *run) outcomeOf(err error) (text string, value steps.Result, code *int, ok bool, oerr error) {
	o := x.pb.Outcome
	fe := x.frames[nil]
	if o == nil || x.dryRun || fe == nil || fe.base == nil {
		return "", nil, nil, false, nil
	}
	base := fe.base
	env := make(map[string]any, len(base)+1)
	for k, v := range base {
		env[k] = v
	}
	res := map[string]any{"ok": err == nil, "error": "", "value": map[string]any{}}
	if err != nil {
		res["error"] = x.redactor().String(err.Error())
	}
	env["result"] = res
	fail := func(what string, e error) (string, steps.Result, *int, bool, error) {
		return "", nil, nil, false, fmt.Errorf("%s:%s: outcome %s: %w", x.pb.File, o.Pos, what, e)
	}
	if o.Value != nil {
		v, err := o.Value.Value(env)
		if err != nil {
			return fail("value", err)
		}
		m, isMap := v.(map[string]any)
		if !isMap {
			return fail("value", fmt.Errorf("a mapping is expected, not %T", v))
		}
		value = steps.Result(m)
		res["value"] = m
	}
	if o.Text != nil {
		if text, err = o.Text.Render(env); err != nil {
			return fail("text", err)
		}
	}
	if o.ExitCode != nil {
		v, err := o.ExitCode.Value(env)
		if err != nil {
			return fail("exit_code", err)
		}
		n, isInt := toExitCode(v)
		if !isInt {
			return fail("exit_code", fmt.Errorf("an integer from 0 to 125 is expected, not %v", v))
		}
		code = &n
	}
	return text, value, code, true, nil
}

// toExitCode is v as an exit status from 0 to 125 (126 and above mean
// something to shells).
func toExitCode(v any) (int, bool) {
	var f float64
	switch n := v.(type) {
	case int:
		f = float64(n)
	case int64:
		f = float64(n)
	case float64:
		f = n
	default:
		return 0, false
	}
	if f != math.Trunc(f) || f < 0 || f > 125 {
		return 0, false
	}
	return int(f), true
}
