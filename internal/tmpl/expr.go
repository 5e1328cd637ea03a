package tmpl

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/checker/nature"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/types"
	"github.com/expr-lang/expr/vm"

	"github.com/runbook-dev/runbook/internal/diag"
)

// Error is a problem in an expression, at a 0-based line and column of the
// expression's own source.
type Error struct {
	Line, Col int
	Rule      string
	Msg       string
}

func (e *Error) Error() string { return e.Msg }

const (
	ruleSyntax    = diag.RuleExprSyntax
	ruleType      = diag.RuleExprType
	ruleUndefined = diag.RuleUndefinedReference
	ruleForward   = diag.RuleForwardReference
)

// Expr is a compiled expression.
type Expr struct {
	Source string
	// path is set for a plain member chain (params.x, steps.a.result.stdout):
	// those are evaluated by lookup, without the expression VM, which keeps
	// loading large playbooks fast.
	path []string
	// tree and cfg are the checked expression, compiled into program on
	// first use.
	tree       *parser.Tree
	cfg        *conf.Config
	once       sync.Once
	program    *vm.Program
	compileErr error
	// Taint says why the expression's value may hold a secret; nil when
	// it cannot.
	Taint *Taint
	// dynamic is set when the taint depends on where the expression
	// stands (it reads steps or $env as a whole).
	dynamic bool
	// Steps lists the step ids the expression reads.
	Steps []string
	// typ is the type of the value when validation knows it; nil when it
	// is known only at run time.
	typ reflect.Type
	// callsLiteral is set when the expression calls literal(), callsRaw
	// when it calls raw(), rawInput when it calls raw() on anything but
	// constants.
	callsLiteral, callsRaw, rawInput bool
}

// CompileBool compiles an expression that must yield a bool (when, until,
// assert).
func CompileBool(src string, s *Scope) (*Expr, error) { return compile(src, s, true) }

// Compile compiles an expression of any type (inside ${{ }}).
func Compile(src string, s *Scope) (*Expr, error) { return compile(src, s, false) }

func compile(src string, s *Scope, asBool bool) (*Expr, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &Error{Rule: ruleSyntax, Msg: "empty expression"}
	}
	if off := exprTooDeep(src); off >= 0 {
		return nil, depthError(src, off, ruleSyntax, "the expression")
	}
	key, cacheable := cacheKey{src: src, host: s.Host, asBool: asBool, result: s.Result}, s.Item == nil
	if s.Result != nil {
		_, cacheable = s.Result.(*memo)
	}
	if cacheable && s.cache != nil {
		if e, ok := s.cache[key]; ok {
			return e, nil
		}
	}
	e, err := compileNew(src, s, asBool)
	// An expression that reads no step's result means the same wherever it
	// stands in the playbook: compile it once (a playbook repeats
	// ${{ params.primary }} in every step).
	if err == nil && cacheable && len(e.Steps) == 0 && !e.dynamic {
		if s.cache == nil {
			s.cache = map[cacheKey]*Expr{}
		}
		s.cache[key] = e
	}
	return e, err
}

type cacheKey struct {
	src    string
	host   bool
	asBool bool
	result types.Type
}

func compileNew(src string, s *Scope, asBool bool) (*Expr, error) {
	tree := parsePath(src)
	if tree == nil {
		var err error
		if tree, err = parser.Parse(src); err != nil {
			return nil, fromExprError(src, err, ruleSyntax)
		}
	}
	e := &Expr{Source: src}
	env := types.Map{}
	if err := s.checkRefs(src, tree.Node, e, env); err != nil {
		return nil, err
	}
	if p := memberPath(tree.Node); p != nil && !asBool && pathTyped(env, p) {
		e.path = p
		e.typ = pathType(env, p)
		if e.Taint, e.dynamic = s.taintOf(tree.Node, nil); e.Taint != nil && pathIsBool(env, p) {
			e.Taint = nil
		}
		return e, nil
	}
	// Type-check the tree parsed above against a copy of the shared base
	// configuration; compiling to a program waits for the first Eval, since
	// validation never needs it.
	cfg := *baseConfig
	cfg.NtCache = nature.Cache{}
	cfg.WithEnv(env)
	if asBool {
		expr.AsBool()(&cfg)
	}
	typ, err := new(checker.Checker).PatchAndCheck(tree, &cfg)
	if err != nil {
		return nil, fromExprError(src, err, ruleType)
	}
	e.typ = typ
	if !asBool {
		e.Taint, e.dynamic = s.taintOf(tree.Node, localsOf(tree.Node))
	}
	e.tree, e.cfg = tree, &cfg
	return e, nil
}

// baseConfig is the expression configuration every compile starts from.
// It is only read after init: each compile copies it.
var baseConfig = func() *conf.Config {
	c := conf.CreateNew()
	for _, f := range funcs {
		f(c)
	}
	return c
}()

func (e *Expr) compileProgram() error {
	e.once.Do(func() {
		if e.cfg.Optimize {
			if err := optimizer.Optimize(&e.tree.Node, e.cfg); err != nil {
				e.compileErr = err
				return
			}
		}
		e.program, e.compileErr = compiler.Compile(e.tree, e.cfg)
	})
	return e.compileErr
}

// checkRefs walks the tree for references to the roots of the scope, reports
// the first undefined one with a did-you-mean, and fills env with the types of
// just the roots the expression uses: building the checker's environment from
// the whole scope would make compiling cost grow with the playbook.
func (s *Scope) checkRefs(src string, node ast.Node, e *Expr, env types.Map) error {
	var firstErr error
	locals := localsOf(node)
	fail := func(n ast.Node, rule, format string, args ...any) {
		if firstErr == nil {
			line, col := offsetToLineCol(src, n.Location().From)
			firstErr = &Error{Line: line, Col: col, Rule: rule, Msg: fmt.Sprintf(format, args...)}
		}
	}
	visit := visitor(func(n ast.Node) {
		switch n := n.(type) {
		case *ast.CallNode:
			if id, ok := n.Callee.(*ast.IdentifierNode); ok {
				switch id.Value {
				case "literal":
					e.callsLiteral = true
				case "raw":
					e.callsRaw = true
					for _, a := range n.Arguments {
						if readsInput(a, locals) {
							e.rawInput = true
						}
					}
				}
			}
		case *ast.IdentifierNode:
			if isFunc(n.Value) || isBuiltin(n.Value) || locals[n.Value] {
				return
			}
			t, ok := s.root(n.Value)
			if !ok {
				if strings.Contains(src, ".."+n.Value) {
					fail(n, ruleUndefined, "unknown name %s: .. is the range operator (1..3), so ..%s is no field: a field is read with one dot (.%s)", n.Value, n.Value, n.Value)
					return
				}
				fail(n, ruleUndefined, "unknown name %s; available here: %s%s", n.Value, strings.Join(s.Roots(), ", "), didYouMean(n.Value, s.Roots()))
				return
			}
			if _, done := env[n.Value]; !done {
				switch n.Value {
				case "steps":
					env["steps"] = types.Map{}
				default:
					env[n.Value] = t
				}
			}
		case *ast.MemberNode:
			id, ok := n.Node.(*ast.IdentifierNode)
			if !ok {
				return
			}
			prop, ok := n.Property.(*ast.StringNode)
			if !ok {
				return
			}
			switch id.Value {
			case "params", "secrets", "vars":
				m := s.Params
				if id.Value == "vars" {
					m = s.Vars
				}
				if id.Value == "secrets" {
					m = s.Secrets
				}
				if _, ok := m[prop.Value]; !ok {
					fail(n.Property, ruleUndefined, "%s.%s is not defined%s", id.Value, prop.Value, didYouMean(prop.Value, keys(m)))
				} else if s.Used != nil {
					s.Used[id.Value+"."+prop.Value] = true
				}
			case "facts":
				if _, ok := s.Facts[prop.Value]; !ok && s.Facts != nil {
					fail(n.Property, ruleUndefined, "no fact is named %q%s", prop.Value, didYouMean(prop.Value, keys(s.Facts)))
				}
			case "steps":
				t, ok := s.Steps[prop.Value]
				switch {
				case ok:
					if sm, _ := env["steps"].(types.Map); sm != nil {
						sm[prop.Value] = t
					}
					if !slices.Contains(e.Steps, prop.Value) {
						e.Steps = append(e.Steps, prop.Value)
					}
				case s.Later[prop.Value]:
					fail(n.Property, ruleForward, "step %q runs later; only the results of earlier steps can be used here", prop.Value)
				default:
					fail(n.Property, ruleUndefined, "no step has id %q%s", prop.Value, didYouMean(prop.Value, keys(s.Steps)))
				}
			}
		}
	})
	ast.Walk(&node, visit)
	return firstErr
}

// localsOf returns the names an expression declares with let.
func localsOf(node ast.Node) map[string]bool {
	var locals map[string]bool
	if _, simple := node.(*ast.MemberNode); !simple {
		ast.Walk(&node, visitor(func(n ast.Node) {
			if v, ok := n.(*ast.VariableDeclaratorNode); ok {
				if locals == nil {
					locals = map[string]bool{}
				}
				locals[v.Name] = true
			}
		}))
	}
	return locals
}

// readsInput reports whether an expression reads any name but the
// functions, builtins and its own variables: a value that can come from
// outside the playbook.
func readsInput(n ast.Node, locals map[string]bool) bool {
	found := false
	ast.Walk(&n, visitor(func(n ast.Node) {
		if id, ok := n.(*ast.IdentifierNode); ok && !isFunc(id.Value) && !isBuiltin(id.Value) && !locals[id.Value] {
			found = true
		}
	}))
	return found
}

// memberPath returns the names of a plain member chain like params.x or
// steps.a.result.stdout whose every element is a known field, or nil.
func memberPath(n ast.Node) []string {
	var rev []string
	for {
		switch m := n.(type) {
		case *ast.IdentifierNode:
			rev = append(rev, m.Value)
			out := make([]string, len(rev))
			for i := range rev {
				out[i] = rev[len(rev)-1-i]
			}
			return out
		case *ast.MemberNode:
			s, ok := m.Property.(*ast.StringNode)
			if !ok || m.Optional {
				return nil
			}
			rev = append(rev, s.Value)
			n = m.Node
		default:
			return nil
		}
	}
}

// Path returns the member chain of a plain reference like params.standby, or
// nil for any other expression.
func (e *Expr) Path() []string { return e.path }

// Eval evaluates the expression against env.
func (e *Expr) Eval(env map[string]any) (any, error) {
	if e.path != nil {
		return lookup(env, e.path)
	}
	if err := e.compileProgram(); err != nil {
		return nil, err
	}
	v, err := expr.Run(e.program, env)
	if err != nil {
		// A step whose result is missing (a dry run did not apply it) is
		// the reason, not the expression.
		if steps, ok := env["steps"].(map[string]any); ok {
			for _, id := range e.Steps {
				if _, done := steps[id]; !done {
					return nil, fmt.Errorf("the result of step %q: %w", id, ErrUnavailable)
				}
			}
		}
	}
	return v, err
}

// EvalBool evaluates an expression compiled with CompileBool.
func (e *Expr) EvalBool(env map[string]any) (bool, error) {
	v, err := e.Eval(env)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("expression %q gave %T, want bool", e.Source, v)
	}
	return b, nil
}

// ErrUnavailable is returned when an expression reads a value that does not
// exist yet, such as the result of a step that a dry run did not apply.
var ErrUnavailable = errors.New("value not available")

func lookup(env map[string]any, path []string) (any, error) {
	var cur any = env
	for i, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: %w", strings.Join(path[:i+1], "."), ErrUnavailable)
		}
		v, ok := m[p]
		if !ok {
			if i == 0 || path[0] != "steps" {
				// An unknown key of a map known only at run time (host.vars)
				// reads as nil, as it does in expr.
				if i > 0 {
					return nil, nil
				}
			}
			return nil, fmt.Errorf("%s: %w", strings.Join(path[:i+1], "."), ErrUnavailable)
		}
		cur = v
	}
	return cur, nil
}

func fromExprError(src string, err error, rule string) error {
	var fe *file.Error
	if errors.As(err, &fe) {
		if rule == ruleSyntax {
			if hint, at, ok := syntaxHint(src); ok {
				line, col := offsetToLineCol(src, at)
				return &Error{Line: line, Col: col, Rule: rule, Msg: hint}
			}
		}
		return &Error{Line: fe.Line - 1, Col: fe.Column, Rule: rule, Msg: fe.Message}
	}
	return &Error{Rule: rule, Msg: err.Error()}
}

func offsetToLineCol(src string, from int) (line, col int) {
	for i, r := range []rune(src) {
		if i == from {
			break
		}
		if r == '\n' {
			line++
			col = 0
		} else {
			col++
		}
	}
	return line, col
}

type visitor func(ast.Node)

func (v visitor) Visit(n *ast.Node) { v(*n) }

func isBuiltin(name string) bool {
	switch name {
	case "len", "all", "any", "none", "one", "filter", "map", "count", "sum", "find", "findIndex",
		"findLast", "findLastIndex", "groupBy", "sortBy", "reduce", "abs", "ceil", "floor", "round",
		"int", "float", "string", "trim", "trimPrefix", "trimSuffix", "upper", "lower", "split",
		"splitAfter", "replace", "repeat", "join", "indexOf", "lastIndexOf", "hasPrefix", "hasSuffix",
		"max", "min", "mean", "median", "toJSON", "fromJSON", "toBase64", "fromBase64", "now",
		"duration", "date", "timezone", "first", "last", "get", "keys", "values", "toPairs", "fromPairs",
		"type", "bitand", "bitor", "bitxor", "bitnand", "bitnot", "bitshl", "bitshr", "bitushr",
		"flatten", "uniq", "concat", "sort", "reverse", "take", "has", "$env", "#", "#index", "#acc":
		return true
	}
	return false
}

func keys(m types.Map) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if k != types.Extra {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// pathTyped reports whether every element of a member chain resolves in the
// types of env, or reaches a map whose keys are known only at run time.
func pathTyped(env types.Map, path []string) bool {
	var t types.Type = env
	for _, p := range path {
		m, ok := unmemo(t).(types.Map)
		if !ok {
			return false
		}
		next, ok := m[p]
		if !ok {
			_, open := m[types.Extra]
			return open
		}
		t = next
	}
	return true
}

// pathType is the type of the value at path when env says it; nil when
// it is open (a map known only at run time).
func pathType(env types.Map, path []string) reflect.Type {
	t := typeAt(env, path)
	if t == nil {
		return nil
	}
	return t.Nature().Type
}

// typeAt is the type of the value at path when env says it; nil when it
// is open (a map known only at run time).
func typeAt(env types.Map, path []string) types.Type {
	var t types.Type = env
	for _, p := range path {
		m, ok := unmemo(t).(types.Map)
		if !ok {
			return nil
		}
		if t, ok = m[p]; !ok {
			return nil
		}
	}
	return unmemo(t)
}

func didYouMean(s string, candidates []string) string { return diag.DidYouMean(s, candidates) }

// parsePath builds the tree of a plain member chain such as
// params.standby or steps.a.result.stdout without the expression parser:
// most templates are just that, and parsing them dominates load time.
// It returns nil for anything else.
func parsePath(src string) *parser.Tree {
	var node ast.Node
	i := 0
	for i < len(src) && src[i] == ' ' {
		i++
	}
	for {
		start := i
		for i < len(src) && (src[i] == '_' || src[i] >= 'a' && src[i] <= 'z' || src[i] >= 'A' && src[i] <= 'Z' || i > start && src[i] >= '0' && src[i] <= '9') {
			i++
		}
		if i == start {
			return nil
		}
		name := src[start:i]
		if node == nil {
			if isKeyword(name) {
				return nil
			}
			id := &ast.IdentifierNode{Value: name}
			id.SetLocation(file.Location{From: start, To: i})
			node = id
		} else {
			prop := &ast.StringNode{Value: name}
			prop.SetLocation(file.Location{From: start, To: i})
			m := &ast.MemberNode{Node: node, Property: prop}
			m.SetLocation(file.Location{From: start - 1, To: i})
			node = m
		}
		if i < len(src) && src[i] == '.' {
			i++
			continue
		}
		break
	}
	for i < len(src) && src[i] == ' ' {
		i++
	}
	if i != len(src) {
		return nil
	}
	return &parser.Tree{Node: node, Source: file.NewSource(src)}
}

func isKeyword(s string) bool {
	switch s {
	case "true", "false", "nil", "not", "and", "or", "in", "matches", "contains", "startsWith", "endsWith", "let", "if", "else":
		return true
	}
	return false
}

func isFunc(name string) bool {
	switch name {
	case "raw", "literal", "scram_sha256", "scram_verify", "conninfo_value", "pgpass_value", "standby_names", "sync_standbys":
		return true
	}
	return false
}
