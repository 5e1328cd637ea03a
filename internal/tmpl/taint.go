package tmpl

import (
	"reflect"
	"sort"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/types"
)

// Taint says that a value may hold a secret, or part of one, and why: the
// secret it comes from and what it went through on the way. Any value
// computed from a secret is tainted, except a bool: true or false tells
// nothing of the secret's text.
type Taint struct {
	// Secret is the secret, as secrets.NAME, or "the secrets" when the
	// expression reaches them without naming one (get(secrets, ...)).
	Secret string
	// Via lists what carried it, in order: "steps.ID.result" of a step
	// whose inputs read it, "item" of a for_each over such a value, "$env".
	Via []string
}

// String describes the taint for a diagnostic: "secrets.pw", or
// "secrets.pw through steps.echo.result".
func (t *Taint) String() string {
	if len(t.Via) == 0 {
		return t.Secret
	}
	return t.Secret + " through " + strings.Join(t.Via, ", ")
}

// Through returns the taint of a value that carries t through via.
func (t *Taint) Through(via string) *Taint {
	return &Taint{Secret: t.Secret, Via: append(append([]string(nil), t.Via...), via)}
}

// taintOf finds why an expression may hold a secret: it reads the
// secrets, the result of a step whose inputs read one, an item from such
// a value, a param an including playbook gave such a value, or the whole
// environment. It returns nil for an expression of
// type bool, and for the status and changed of a step, which the engine
// sets. dynamic is set when the taint depends on the step the expression
// stands in (bare steps or $env), so that it must not be shared.
func (s *Scope) taintOf(node ast.Node, locals map[string]bool) (t *Taint, dynamic bool) {
	// Nodes that read steps.ID in a way that cannot carry its result:
	// steps.ID.status and steps.ID.changed; and the steps identifiers that
	// are the root of steps.ID (the others reach every step at once).
	var engineSet, rooted map[ast.Node]bool
	mark := func(set *map[ast.Node]bool, n ast.Node) {
		if *set == nil {
			*set = map[ast.Node]bool{}
		}
		(*set)[n] = true
	}
	ast.Walk(&node, visitor(func(n ast.Node) {
		m, ok := n.(*ast.MemberNode)
		if !ok {
			return
		}
		if id, ok := m.Node.(*ast.IdentifierNode); ok && (id.Value == "steps" || id.Value == "params" || id.Value == "facts") {
			if _, ok := m.Property.(*ast.StringNode); ok {
				mark(&rooted, id)
			}
		}
		inner, ok := m.Node.(*ast.MemberNode)
		if !ok || !isStepsMember(inner) {
			return
		}
		if p, ok := m.Property.(*ast.StringNode); ok && (p.Value == "status" || p.Value == "changed") {
			mark(&engineSet, inner)
		}
	}))
	keep := func(c *Taint) {
		if t == nil {
			t = c
		}
	}
	ast.Walk(&node, visitor(func(n ast.Node) {
		switch n := n.(type) {
		case *ast.IdentifierNode:
			if locals[n.Value] {
				return
			}
			switch n.Value {
			case "secrets":
				keep(&Taint{Secret: "the secrets"})
			case "$env":
				dynamic = true
				if len(s.Secrets) > 0 {
					keep(&Taint{Secret: "the secrets", Via: []string{"$env"}})
				} else if c := s.anyTaintedStep(); c != nil {
					keep(c.Through("$env"))
				}
			case "steps":
				if !rooted[n] {
					dynamic = true
					if c := s.anyTaintedStep(); c != nil {
						keep(c.Through("steps"))
					}
				}
			case "item":
				if s.ItemTaint != nil {
					keep(s.ItemTaint)
				}
			case "params":
				// Every param at once: the most direct taint of any.
				if !rooted[n] {
					for _, name := range sortedKeys(s.ParamTaint) {
						keep(s.ParamTaint[name])
					}
				}
			case "facts":
				if !rooted[n] {
					for _, name := range sortedKeys(s.FactTaint) {
						keep(s.FactTaint[name])
					}
				}
			}
		case *ast.MemberNode:
			prop, ok := n.Property.(*ast.StringNode)
			if !ok {
				return
			}
			// host.facts.NAME: the fact's value on the host.
			if inner, ok := n.Node.(*ast.MemberNode); ok {
				if h, ok := inner.Node.(*ast.IdentifierNode); ok && h.Value == "host" && !locals[h.Value] {
					if f, ok := inner.Property.(*ast.StringNode); ok && f.Value == "facts" {
						if c := s.FactTaint[prop.Value]; c != nil {
							keep(c)
						}
					}
				}
				return
			}
			id, ok := n.Node.(*ast.IdentifierNode)
			if !ok || locals[id.Value] {
				return
			}
			switch id.Value {
			case "secrets":
				// A named secret says more than "the secrets" found on
				// the identifier below it.
				if t == nil || t.Secret == "the secrets" && len(t.Via) == 0 {
					t = &Taint{Secret: "secrets." + prop.Value}
				}
			case "steps":
				if c := s.Tainted[prop.Value]; c != nil && !engineSet[n] {
					keep(c)
				}
			case "params":
				if c := s.ParamTaint[prop.Value]; c != nil {
					keep(c)
				}
			case "facts":
				if c := s.FactTaint[prop.Value]; c != nil {
					keep(c)
				}
			}
		}
	}))
	if t != nil && isBool(node) {
		return nil, dynamic
	}
	return t, dynamic
}

// isStepsMember reports whether n is steps.ID.
func isStepsMember(n *ast.MemberNode) bool {
	id, ok := n.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "steps" {
		return false
	}
	_, ok = n.Property.(*ast.StringNode)
	return ok
}

// anyTaintedStep returns the taint of the earlier step whose result holds
// a secret most directly, for an expression that reads every step.
func (s *Scope) anyTaintedStep() *Taint {
	var best *Taint
	for _, id := range sortedKeys(s.Tainted) {
		if t := s.Tainted[id]; best == nil || len(t.Via) < len(best.Via) {
			best = t
		}
	}
	return best
}

func sortedKeys(m map[string]*Taint) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// isBool reports whether a checked expression gives a bool.
func isBool(n ast.Node) bool {
	t := n.Type()
	return t != nil && t.Kind() == reflect.Bool
}

// pathIsBool reports whether a member chain typed against env gives a bool.
func pathIsBool(env types.Map, path []string) bool { return typeAt(env, path) == types.Bool }

// Taint returns why the template's value may hold a secret, and the byte
// offset in its source of the ${{ of the first expression that makes it
// so; nil when it cannot.
func (t *Template) Taint() (*Taint, int) {
	if t == nil {
		return nil, 0
	}
	for _, p := range t.parts {
		if p.expr != nil && p.expr.Taint != nil {
			return p.expr.Taint, p.offset - len("${{")
		}
	}
	return nil, 0
}

// DerivedTaint is Taint for the expressions whose value is computed from
// a secret rather than read as it is (upper(secrets.pw), a slice of it, a
// sum): masking finds a secret's own value in the text shown, never a
// value made from it. A plain member chain (secrets.pw, params.x) is left
// out, and so is a value computed from a step's result: that text is
// the host's, in which the secret is masked as the host printed it (a
// trim or a line of it keeps it whole); what the host made of the secret,
// no expression check can see.
func (t *Template) DerivedTaint() (*Taint, int) {
	if t == nil {
		return nil, 0
	}
	for _, p := range t.parts {
		if p.expr != nil && p.expr.Taint != nil && p.expr.path == nil && !p.expr.Taint.viaResult() {
			return p.expr.Taint, p.offset - len("${{")
		}
	}
	return nil, 0
}

// viaResult says whether the taint passed through a step's result.
func (t *Taint) viaResult() bool {
	for _, v := range t.Via {
		if strings.HasPrefix(v, "steps") {
			return true
		}
	}
	return false
}

// TaintedValues evaluates the expressions of the template that may hold a
// secret and returns their values as text, so that a run can mask values
// computed from secrets as well as the secrets themselves. An expression
// that cannot be evaluated yet (a result a dry run did not produce) is
// left out.
func (t *Template) TaintedValues(env map[string]any) []string {
	if t == nil {
		return nil
	}
	var out []string
	for _, p := range t.parts {
		if p.expr == nil || p.expr.Taint == nil {
			continue
		}
		v, err := p.expr.Eval(env)
		if err != nil {
			continue
		}
		if r, ok := v.(Raw); ok {
			v = r.Value
		}
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				out = append(out, Format(e))
			}
		case []string:
			out = append(out, v...)
		default:
			out = append(out, Format(v))
		}
	}
	return out
}
