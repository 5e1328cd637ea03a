// Package tmpl compiles the expressions and ${{ }} templates of a playbook
// once, at load time, against a typed scope, and evaluates them at run time.
package tmpl

import (
	"sync"

	"github.com/expr-lang/expr/checker/nature"
	"github.com/expr-lang/expr/types"
)

// Scope is the typed environment an expression is checked against. The
// names are the roots a playbook author can use: params, secrets, steps,
// host and, inside probes and asserts, result.
type Scope struct {
	Params  types.Map
	Secrets types.Map
	// Vars are the playbook's computed values.
	Vars types.Map
	// Steps holds the result types of the steps that run before the
	// expression, keyed by step id.
	Steps types.Map
	// Later holds the ids of steps that run after the expression, so that a
	// reference to one can be told apart from a typo.
	Later map[string]bool
	// Host is true where the expression runs for a host (a step's fields).
	Host bool
	// Item is the type of `item` in a step with for_each, or nil.
	Item types.Type
	// Result is the type of `result`, or nil where there is none. Wrap it
	// with Memo when it is shared.
	Result types.Type
	// Facts holds the types of the playbook's facts by name, or nil where
	// facts cannot be read (they are observed after the vars, before the
	// guards). Set it with SetFacts.
	Facts types.Map
	// hostFacts is HostType with `facts`: the values of the facts on the
	// host an expression runs for.
	hostFacts types.Type

	// Tainted holds, by step id, why the result of an earlier step may hold
	// a secret (its inputs read one); an expression that reads it is
	// tainted too.
	Tainted map[string]*Taint
	// ItemTaint is why `item` may hold a secret (the for_each list may), or
	// nil.
	ItemTaint *Taint
	// ParamTaint holds, by param name, why a param's value may hold a
	// secret: a playbook that runs this one gave it a value read from one.
	ParamTaint map[string]*Taint
	// FactTaint holds, by fact name, why a fact's value may hold a secret:
	// its probe's inputs read one.
	FactTaint map[string]*Taint

	// Used records the params, secrets and vars expressions read
	// ("params.standby"), for the unused-param lint; nil records nothing.
	Used map[string]bool

	cache map[cacheKey]*Expr
}

// HostType is the type of `host` in expressions.
var HostType = types.Map{
	"name":    types.String,
	"address": types.String,
	"vars":    types.Map{types.Extra: types.Any},
}

// InventoryType is the type of `inventory`: the hosts by name, each with
// name, address and vars, known only at run time.
var InventoryType = types.Map{types.Extra: HostType}

// AnyMap is a map whose keys are not known before run time.
var AnyMap = types.Map{types.Extra: types.Any}

// StepEntry is the type of steps.<id> for a step whose result has type r.
func StepEntry(r types.Map) types.Type {
	return Memo(types.Map{
		"result":  r,
		"status":  types.String,
		"changed": types.Bool,
		"results": types.Array(types.Map{"host": types.String, "status": types.String, "result": r}),
	})
}

// memo is a type whose checker nature is built once and then shared: the
// result types of step types are the same for every step of every
// playbook, and building their natures for each expression dominated
// validation. The checker only reads natures it gets from the environment.
type memo struct {
	types.Type
	once sync.Once
	nt   nature.Nature
}

// Memo wraps t so that its nature is computed once. Use it for types that
// never change after they are built.
func Memo(t types.Type) types.Type {
	if _, ok := t.(*memo); ok {
		return t
	}
	return &memo{Type: t}
}

func (m *memo) Nature() nature.Nature {
	m.once.Do(func() { m.nt = m.Type.Nature() })
	return m.nt
}

func unmemo(t types.Type) types.Type {
	if m, ok := t.(*memo); ok {
		return m.Type
	}
	return t
}

// SetFacts makes facts readable from here on: `facts.NAME` (by host) and
// `host.facts.NAME` (on the host an expression runs for).
func (s *Scope) SetFacts(facts types.Map) {
	s.Facts = facts
	byHost := types.Map{}
	for k, v := range HostType {
		byHost[k] = v
	}
	perHost := types.Map{}
	for name, t := range facts {
		if m, ok := unmemo(t).(types.Map); ok {
			perHost[name] = m[types.Extra]
		}
	}
	byHost["facts"] = perHost
	s.hostFacts = Memo(byHost)
}

// FactType is the type of facts.NAME for a fact whose value on a host has
// type v: the values by host name.
func FactType(v types.Type) types.Type { return Memo(types.Map{types.Extra: v}) }

// Roots lists the root names available in this scope.
func (s *Scope) Roots() []string {
	roots := []string{"params", "secrets", "vars", "steps", "inventory"}
	if s.Facts != nil {
		roots = append(roots, "facts")
	}
	if s.Host {
		roots = append(roots, "host")
	}
	if s.Item != nil {
		roots = append(roots, "item")
	}
	if s.Result != nil {
		roots = append(roots, "result")
	}
	return roots
}

func (s *Scope) root(name string) (types.Type, bool) {
	switch name {
	case "params":
		return s.Params, true
	case "secrets":
		return s.Secrets, true
	case "vars":
		return s.Vars, true
	case "steps":
		return s.Steps, true
	case "host":
		if s.Host && s.hostFacts != nil {
			return s.hostFacts, true
		}
		if s.Host {
			return HostType, true
		}
	case "facts":
		if s.Facts != nil {
			return s.Facts, true
		}
	case "inventory":
		return InventoryType, true
	case "item":
		if s.Item != nil {
			return s.Item, true
		}
	case "result":
		if s.Result != nil {
			return s.Result, true
		}
	}
	return nil, false
}

// WithResult returns a copy of s in which `result` has type r. The copy
// shares s's cache of compiled expressions.
func (s *Scope) WithResult(r types.Type) *Scope {
	if s.cache == nil {
		s.cache = map[cacheKey]*Expr{}
	}
	c := *s
	c.Result = r
	return &c
}
