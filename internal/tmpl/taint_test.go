package tmpl

import (
	"testing"

	"github.com/expr-lang/expr/types"
)

func taintScope() *Scope {
	entry := StepEntry(types.Map{"stdout": types.String, "exit_code": types.Int, "ok": types.Bool})
	return &Scope{
		Params:  types.Map{"node": types.String},
		Secrets: types.Map{"pw": types.String},
		Vars:    types.Map{},
		Steps:   types.Map{"echo": entry, "plain": entry},
		Tainted: map[string]*Taint{"echo": {Secret: "secrets.pw", Via: []string{"steps.echo.result"}}},
		Host:    true,
	}
}

func TestTaint(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"params.node", ""},
		{"secrets.pw", "secrets.pw"},
		{`secrets["pw"]`, "secrets.pw"},
		{`get(secrets, "pw")`, "the secrets"},
		{"let s = secrets; s.pw", "the secrets"},
		{"let secrets = params.node; secrets", ""},
		{"upper(secrets.pw) + params.node", "secrets.pw"},
		{"len(secrets.pw)", "secrets.pw"},
		{"len(secrets.pw) > 8", ""},
		{`secrets.pw == "x" ? "a" : "b"`, "secrets.pw"},
		{"$env[params.node]", "the secrets through $env"},
		{"steps.echo.result.stdout", "secrets.pw through steps.echo.result"},
		{"trim(steps.echo.result.stdout)", "secrets.pw through steps.echo.result"},
		{"steps.echo.result.exit_code", "secrets.pw through steps.echo.result"},
		{"steps.echo.result.ok", ""},
		{"steps.echo.status", ""},
		{"steps.echo.changed", ""},
		{"steps.plain.result.stdout", ""},
		{"toJSON(steps)", "secrets.pw through steps.echo.result, steps"},
		{`get(steps, params.node)`, "secrets.pw through steps.echo.result, steps"},
	} {
		e, err := Compile(tc.src, taintScope())
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		got := ""
		if e.Taint != nil {
			got = e.Taint.String()
		}
		if got != tc.want {
			t.Errorf("%s: taint %q, want %q", tc.src, got, tc.want)
		}
	}
}

func TestTaintOfItem(t *testing.T) {
	s := taintScope()
	s.Item = types.Any
	s.ItemTaint = &Taint{Secret: "secrets.pw", Via: []string{"item"}}
	tpl, errs := ParseTemplate("echo ${{ item }} ${{ params.node }}", s)
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	taint, off := tpl.Taint()
	if taint == nil || taint.String() != "secrets.pw through item" || off != 5 {
		t.Errorf("taint %v at %d", taint, off)
	}
}

// TestTaintNotShared: an expression that reads every step is compiled
// again where it stands, since the steps before it change.
func TestTaintNotShared(t *testing.T) {
	s := taintScope()
	s.Tainted = map[string]*Taint{}
	before, err := Compile("toJSON(steps)", s)
	if err != nil {
		t.Fatal(err)
	}
	s.Tainted["echo"] = &Taint{Secret: "secrets.pw", Via: []string{"steps.echo.result"}}
	after, err := Compile("toJSON(steps)", s)
	if err != nil {
		t.Fatal(err)
	}
	if before.Taint != nil || after.Taint == nil {
		t.Errorf("before %v, after %v", before.Taint, after.Taint)
	}
}

func TestTaintedValues(t *testing.T) {
	tpl, errs := ParseTemplate("u=${{ params.node }} p=${{ upper(secrets.pw) }} r=${{ raw(secrets.pw) }}", taintScope())
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	env := map[string]any{"params": map[string]any{"node": "pg1"}, "secrets": map[string]any{"pw": "s3cret-pw"}}
	got := tpl.TaintedValues(env)
	if len(got) != 2 || got[0] != "S3CRET-PW" || got[1] != "s3cret-pw" {
		t.Errorf("got %q", got)
	}
}
