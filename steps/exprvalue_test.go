package steps_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr/types"
	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/steps"
)

// TestExprValues: each typed field (integer, bounded integer, bool,
// duration, port) gives its literal, or its expression's value turned into
// the field's type at run time; a value that does not fit is an error
// naming the expression. String shows the literal or the expression as
// written, IsZero only a field given nothing.
func TestExprValues(t *testing.T) {
	d := &steps.Decoder{Diags: &diag.List{}, Scope: &tmpl.Scope{Params: types.Map{"v": types.Any}}}
	node := func(s string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Line: 1, Column: 1}
	}
	const v = "${{ params.v }}"
	intV, boundedV := d.IntValue(node(v), 0), d.IntValueIn(node(v), 0, 0, 10)
	boolV, durV, portV := d.BoolValue(node(v), false), d.Duration(node(v), 0), d.Port(node(v), 0)
	for _, c := range []struct {
		name string
		get  func(env map[string]any) (any, error)
		v    any
		// want is the value as fmt prints it, or a part of the error.
		want string
	}{
		{"integer from digits", func(env map[string]any) (any, error) { return intV.Get(env) }, " 12", "12"},
		{"integer from a whole float", func(env map[string]any) (any, error) { return intV.Get(env) }, 3.0, "3"},
		{"integer from a fraction", func(env map[string]any) (any, error) { return intV.Get(env) }, 2.5, "${{ params.v }} is 2.5 (float64), not an integer"},
		{"bounded integer within", func(env map[string]any) (any, error) { return boundedV.Get(env) }, 10, "10"},
		{"bounded integer over", func(env map[string]any) (any, error) { return boundedV.Get(env) }, 11, "${{ params.v }} is 11: this field takes 0 to 10"},
		{"bool from a word", func(env map[string]any) (any, error) { return boolV.Get(env) }, "yes", "true"},
		{"bool from a number", func(env map[string]any) (any, error) { return boolV.Get(env) }, 3, "${{ params.v }} is 3 (int), not true or false"},
		{"duration from seconds", func(env map[string]any) (any, error) { return durV.Get(env) }, 30, "30s"},
		{"duration from text", func(env map[string]any) (any, error) { return durV.Get(env) }, "1m30s", "1m30s"},
		{"duration not positive", func(env map[string]any) (any, error) { return durV.Get(env) }, "-1s", "${{ params.v }}: the duration must be positive, not -1s"},
		{"port from digits", func(env map[string]any) (any, error) { return portV.Get(env) }, "5433", "5433"},
		{"port out of range", func(env map[string]any) (any, error) { return portV.Get(env) }, 70000, "${{ params.v }}: 70000 is not a port number (1-65535)"},
	} {
		got, err := c.get(map[string]any{"params": map[string]any{"v": c.v}})
		if err != nil {
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want %q", c.name, err, c.want)
			}
			continue
		}
		if s := fmt.Sprint(got); s != c.want {
			t.Errorf("%s: %s, want %s", c.name, s, c.want)
		}
	}
	if len(d.Diags.Items) != 0 {
		t.Fatalf("decoding: %v", d.Diags.Items)
	}

	lit := d.Duration(node("90s"), 0)
	if got, err := lit.Get(nil); err != nil || got != 90*time.Second {
		t.Errorf("literal duration: %v %v", got, err)
	}
	for _, c := range []struct {
		name string
		s    fmt.Stringer
		want string
	}{
		{"literal", lit, "1m30s"},
		{"expression", durV, v},
		{"default port", d.Port(nil, 5432), "5432"},
	} {
		if got := c.s.String(); got != c.want {
			t.Errorf("String of the %s: %q, want %q", c.name, got, c.want)
		}
	}
	if !d.Duration(nil, 0).IsZero() || lit.IsZero() || durV.IsZero() {
		t.Error("IsZero: want true only for a duration given nothing")
	}
	if b, fixed := d.BoolValue(node("true"), false).Literal(); !b || !fixed {
		t.Errorf("Literal of true: %v %v", b, fixed)
	}
	if _, fixed := boolV.Literal(); fixed {
		t.Error("Literal of an expression: fixed")
	}
}
