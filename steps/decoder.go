package steps

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr/types"
	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/tmpl"
)

// Body is a mapping's values by key, already checked against its fields: no
// unknown keys, every required key present, every value of the right shape.
type Body struct {
	// Node is the mapping itself, for problems that concern it as a whole.
	Node   *yaml.Node
	values map[string]*yaml.Node
}

// Get returns the value of key, or nil when the key is absent.
func (b Body) Get(key string) *yaml.Node { return b.values[key] }

// Decoder turns YAML nodes into typed values, reporting every problem with
// its position. It never stops at the first problem.
type Decoder struct {
	Diags *diag.List
	Scope *tmpl.Scope
	// Source is the file's text, to place expressions inside block scalars.
	Source []byte
	lines  []string
	// DecodeProbe decodes a read-only step body with its own host; the
	// engine provides it, since only the engine knows the step-type keys.
	DecodeProbe func(d *Decoder, n *yaml.Node) *ProbeSpec
	// Taint is the first taint of a template compiled since it was last
	// reset: the engine resets it before a step's body, and a body that
	// read a secret makes the step's result tainted.
	Taint *tmpl.Taint
	// Tainted lists the templates compiled since the engine last reset it
	// whose values may hold a secret: a run masks what they give, along
	// with the secrets themselves.
	Tainted []*tmpl.Template
	// Insides, when not nil, collects the commands and SQL texts that
	// validate reads further with their languages' checkers (Inside).
	Insides *[]*Inside
}

// ProbeSpec is a decoded probe: a read-only step body and the host it runs on.
type ProbeSpec struct {
	// Host names the host; nil means the host of the enclosing step.
	Host *tmpl.Template
	// Become is the user the probe runs as; "" keeps the step's.
	Become string
	// ServicePorts are tried when the host's SSH port does not answer
	// (Exec.ServicePorts).
	ServicePorts []*tmpl.Template
	Type         Type
	Step         Step
	Pos          diag.Pos
}

// ProbeResult is the type of `result` for a probe of type t: its result plus
// `reachable`, false when the probe's host could not be connected to.
func ProbeResult(t Type) types.Type {
	return derived(&probeTypes, t, func(desc Descriptor) types.Type {
		m := types.Map{"reachable": types.Bool, "error": types.String}
		for k, v := range desc.Result {
			m[k] = v
		}
		return tmpl.Memo(m)
	})
}

// ResultType is the type of `result` in a step's assert.
func ResultType(t Type) types.Type {
	return derived(&resultTypes, t, func(desc Descriptor) types.Type { return tmpl.Memo(desc.Result) })
}

// StepEntryType is the type of steps.<id> for a step of type t.
func StepEntryType(t Type) types.Type {
	return derived(&entryTypes, t, func(desc Descriptor) types.Type { return tmpl.StepEntry(desc.Result) })
}

// The types derived from step types' results, by step-type name: they are
// the same for every step, so their checker natures are built only once.
var probeTypes, resultTypes, entryTypes sync.Map

// derived is the type that build derives from step type t's descriptor,
// built the first time and kept in cache under the type's name.
func derived(cache *sync.Map, t Type, build func(Descriptor) types.Type) types.Type {
	desc := t.Describe()
	if v, ok := cache.Load(desc.Name); ok {
		return v.(types.Type)
	}
	v, _ := cache.LoadOrStore(desc.Name, build(desc))
	return v.(types.Type)
}

// Pos returns the position of a node.
func Pos(n *yaml.Node) diag.Pos { return diag.Pos{Line: n.Line, Col: n.Column} }

// Errorf reports an error at n.
func (d *Decoder) Errorf(n *yaml.Node, rule, format string, args ...any) {
	d.Diags.Errorf(Pos(n), rule, format, args...)
}

// Check checks that n is a mapping whose keys are all in fields, that every
// required field is there and that every value has the right shape, and
// returns the values by key. where names the mapping in messages.
func (d *Decoder) Check(n *yaml.Node, fields []Field, where string) Body {
	body := Body{Node: n, values: map[string]*yaml.Node{}}
	if n.Kind != yaml.MappingNode {
		d.Errorf(n, diag.RuleTypeMismatch, "%s must be a mapping, not %s", where, DescribeNode(n))
		return body
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f := fieldNamed(fields, k.Value)
		if f == nil {
			known := fieldNames(fields)
			d.Errorf(k, diag.RuleUnknownKey, "unknown key %q in %s%s; expected one of: %s", k.Value, where, diag.DidYouMean(k.Value, known), strings.Join(known, ", "))
			continue
		}
		if _, dup := body.values[k.Value]; dup {
			// The first value counts; the loader reports the key written
			// twice (duplicate-key), in every mapping of the file.
			continue
		}
		if d.checkShape(v, f, where) {
			body.values[k.Value] = v
		}
	}
	for _, f := range fields {
		if f.Required {
			// A misspelt key has already been reported with a did-you-mean
			// naming this field; saying it is missing too would be noise.
			if _, ok := body.values[f.Name]; !ok && !hasKey(n, f.Name) && !typoOf(n, f.Name, fieldNames(fields)) {
				d.Errorf(n, diag.RuleMissingField, "%s needs %q: %s", where, f.Name, f.Doc)
			}
		}
	}
	return body
}

// fieldNamed finds a field by name; a linear scan beats a map for the
// dozen fields a mapping has, and allocates nothing.
func fieldNamed(fields []Field, name string) *Field {
	for i := range fields {
		if fields[i].Name == name {
			return &fields[i]
		}
	}
	return nil
}

func fieldNames(fields []Field) []string {
	out := make([]string, len(fields))
	for i := range fields {
		out[i] = fields[i].Name
	}
	return out
}

func typoOf(n *yaml.Node, field string, known []string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if !slices.Contains(known, k) && diag.Closest(k, known) == field {
			return true
		}
	}
	return false
}

func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

// checkShape reports a value whose YAML shape cannot be a value of f.
func (d *Decoder) checkShape(v *yaml.Node, f *Field, where string) bool {
	bad := func(want string) bool {
		d.Errorf(v, diag.RuleTypeMismatch, "%s: %s must be %s, not %s", where, f.Name, want, DescribeNode(v))
		return false
	}
	switch f.Kind {
	case String, Literal:
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			return bad("a string")
		}
		if f.Kind == Literal && strings.Contains(v.Value, "${{") {
			d.Errorf(v, diag.RuleInvalidValue, "%s: %s is read as it is written: ${{ }} is not interpolated here; write a fixed value", where, f.Name)
			return false
		}
	case Expr:
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			return bad("an expression")
		}
	case Bool, Int:
		want := map[Kind]string{Bool: "true or false", Int: "an integer"}[f.Kind]
		tag := map[Kind]string{Bool: "!!bool", Int: "!!int"}[f.Kind]
		if v.Kind == yaml.ScalarNode && strings.Contains(v.Value, "${{") {
			if f.Dynamic {
				return true
			}
			d.Errorf(v, diag.RuleTypeMismatch, "%s: %s takes a fixed value (%s), not an expression: it decides the step's shape when the playbook is loaded", where, f.Name, want)
			return false
		}
		if v.Kind != yaml.ScalarNode || v.Tag != tag {
			return bad(want)
		}
	case Port:
		if v.Kind != yaml.ScalarNode {
			return bad("a port number")
		}
		if strings.Contains(v.Value, "${{") {
			return true
		}
		if p, err := strconv.Atoi(v.Value); err != nil || v.Tag != "!!int" || p < 1 || p > 65535 {
			return bad("a port number (1-65535)")
		}
	case Duration:
		if v.Kind != yaml.ScalarNode {
			return bad("a duration such as 30s or 5m")
		}
		if strings.Contains(v.Value, "${{") {
			return true
		}
		if _, err := time.ParseDuration(v.Value); err != nil || v.Tag == "!!int" {
			return bad("a duration such as 30s or 5m")
		}
	case StringMap:
		if v.Kind != yaml.MappingNode {
			return bad("a mapping of names to strings")
		}
		for i := 0; i+1 < len(v.Content); i += 2 {
			d.refuseKeyExpr(v.Content[i], where+": "+f.Name)
		}
	case StringList:
		if v.Kind == yaml.ScalarNode && strings.Contains(v.Value, "${{") {
			return true
		}
		if v.Kind != yaml.SequenceNode {
			return bad("a list of strings")
		}
	case IntList:
		if v.Kind == yaml.ScalarNode && v.Tag == "!!int" {
			return true
		}
		if v.Kind != yaml.SequenceNode {
			return bad("an integer or a list of integers")
		}
		for _, e := range v.Content {
			if e.Kind != yaml.ScalarNode || e.Tag != "!!int" {
				d.Errorf(e, diag.RuleTypeMismatch, "%s: %s must list integers, not %s", where, f.Name, DescribeNode(e))
				return false
			}
		}
	case Object, Probe:
		if v.Kind != yaml.MappingNode {
			return bad("a mapping")
		}
	case ObjectList:
		if v.Kind != yaml.SequenceNode {
			return bad("a list of mappings")
		}
	}
	if len(f.Enum) > 0 && v.Kind == yaml.ScalarNode && !strings.Contains(v.Value, "${{") {
		for _, e := range f.Enum {
			if v.Value == e {
				return true
			}
		}
		d.Errorf(v, diag.RuleInvalidValue, "%s: %s must be one of %s, not %q%s", where, f.Name, strings.Join(f.Enum, ", "), v.Value, diag.DidYouMean(v.Value, f.Enum))
		return false
	}
	return true
}

// refuseKeyExpr refuses a ${{ }} in a mapping key: keys are names (of a
// setting, a variable, a header, a JSON member) and are used as written,
// so an expression there would reach the host as its literal text.
func (d *Decoder) refuseKeyExpr(k *yaml.Node, where string) {
	if strings.Contains(k.Value, "${{") {
		d.Errorf(k, diag.RuleInvalidValue, "%s: the key %q is used as it is written: ${{ }} is not interpolated in keys; write the key itself, a fixed name", where, k.Value)
	}
}

// DescribeNode names a YAML value for a message: "a mapping", "a list",
// "an alias", "empty", "the boolean true", "the number 5", or a string
// quoted as Go quotes it.
func DescribeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.Tag {
	case "!!null":
		return "empty"
	case "!!bool":
		return "the boolean " + n.Value
	case "!!int", "!!float":
		return "the number " + n.Value
	}
	return strconv.Quote(n.Value)
}

// Template compiles a string value with ${{ }} expressions.
func (d *Decoder) Template(n *yaml.Node) *tmpl.Template {
	if n == nil {
		return nil
	}
	t, errs := tmpl.ParseTemplate(n.Value, d.Scope)
	for _, e := range errs {
		d.Diags.Errorf(d.PosIn(n, e.Offset), e.Rule, "%s", e.Msg)
	}
	if taint, _ := t.Taint(); taint != nil {
		if d.Taint == nil {
			d.Taint = taint
		}
		d.Tainted = append(d.Tainted, t)
	}
	return t
}

// Credential compiles a string value that the step only hands to a server
// to authenticate (a database password): the server never sends it back,
// so unlike other inputs it does not make the step's result tainted.
func (d *Decoder) Credential(n *yaml.Node) *tmpl.Template {
	saved := d.Taint
	t := d.Template(n)
	d.Taint = saved
	return t
}

// RefuseSecret reports an error at the expression of t that may put a
// secret where none may go, and returns whether it did. what names the
// value ("command", "the lock name"), and why says what would expose the
// secret there and what to do instead.
func (d *Decoder) RefuseSecret(n *yaml.Node, t *tmpl.Template, rule, what, why string) bool {
	taint, off := t.Taint()
	if taint == nil || n == nil {
		return false
	}
	d.Diags.Errorf(d.PosIn(n, off), rule, "%s may hold %s: %s", what, taint, why)
	return true
}

// TemplateIn compiles a string value whose text is in lang (a shell
// command, SQL), so that each value is quoted for the place it lands in,
// and reports the ${{ }} that no quoting makes safe.
func (d *Decoder) TemplateIn(n *yaml.Node, lang tmpl.Lang) *tmpl.Template {
	if n == nil {
		return nil
	}
	t := d.Template(n)
	for _, e := range t.In(lang) {
		d.Diags.Errorf(d.PosIn(n, e.Offset), e.Rule, "%s", e.Msg)
	}
	return t
}

// Expr compiles a bare bool expression. result is the type of `result` in
// it, or nil where there is none.
func (d *Decoder) Expr(n *yaml.Node, result types.Type) *tmpl.Expr {
	if n == nil {
		return nil
	}
	scope := d.Scope.WithResult(result)
	src := n.Value
	if strings.HasPrefix(strings.TrimSpace(src), "${{") {
		d.Errorf(n, diag.RuleExprSyntax, "this is a bare expression: write it without ${{ }}")
		return nil
	}
	e, err := tmpl.CompileBool(src, scope)
	if err != nil {
		te := err.(*tmpl.Error)
		off := 0
		for l := 0; l < te.Line; l++ {
			off += strings.IndexByte(src[off:], '\n') + 1
		}
		for c := 0; c < te.Col && off < len(src); c++ {
			_, w := utf8.DecodeRuneInString(src[off:])
			off += w
		}
		d.Diags.Errorf(d.PosIn(n, off), te.Rule, "%s", te.Msg)
		return nil
	}
	return e
}

// PosIn returns the position in the source of the byte at offset in a
// scalar's value: quotes, escapes, folded lines and block indentation are
// read again as YAML reads them (scalarPos), and estimated when the source
// does not give the value back.
func (d *Decoder) PosIn(n *yaml.Node, offset int) diag.Pos {
	if d.lines == nil {
		d.lines = diag.SplitLines(string(d.Source))
	}
	if p, ok := scalarPos(d.lines, n, offset); ok {
		return p
	}
	v := n.Value
	if offset > len(v) {
		offset = len(v)
	}
	line := strings.Count(v[:offset], "\n")
	lineStart := strings.LastIndexByte(v[:offset], '\n') + 1
	col := utf8.RuneCountInString(v[lineStart:offset])
	switch n.Style &^ yaml.TaggedStyle {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		srcLine := n.Line + 1 + line
		valueLine := v[lineStart:]
		if i := strings.IndexByte(valueLine, '\n'); i >= 0 {
			valueLine = valueLine[:i]
		}
		indent := n.Column + 1
		if srcLine-1 < len(d.lines) {
			if i := strings.Index(d.lines[srcLine-1], valueLine); i >= 0 && valueLine != "" {
				indent = utf8.RuneCountInString(d.lines[srcLine-1][:i]) + 1
			}
		}
		return diag.Pos{Line: srcLine, Col: indent + col}
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if line == 0 {
			return diag.Pos{Line: n.Line, Col: n.Column + 1 + col}
		}
	default:
		if line == 0 {
			return diag.Pos{Line: n.Line, Col: n.Column + col}
		}
	}
	return diag.Pos{Line: n.Line + line, Col: col + 1}
}

// Literal returns a string value that must not contain expressions.
func (d *Decoder) Literal(n *yaml.Node) string {
	if n == nil {
		return ""
	}
	if strings.Contains(n.Value, "${{") {
		d.Errorf(n, diag.RuleInvalidValue, "expressions are not allowed here; write a fixed value")
	}
	return n.Value
}

// Bool returns a bool value, false when n is nil.
func (d *Decoder) Bool(n *yaml.Node) bool {
	return n != nil && n.Value == "true"
}

// Int returns an integer value, def when n is nil.
func (d *Decoder) Int(n *yaml.Node, def int) int {
	if n == nil || strings.Contains(n.Value, "${{") {
		// An expression was refused (or taken by IntValue) by the check
		// of the field's shape.
		return def
	}
	i, err := strconv.Atoi(n.Value)
	if err != nil {
		d.Errorf(n, diag.RuleTypeMismatch, "%q is not an integer", n.Value)
	}
	return i
}

// Size returns a size in bytes as ParseSize reads it (bytes, or with KiB,
// MiB or GiB), def when n is nil; key names the field in the error.
func (d *Decoder) Size(n *yaml.Node, key string, def int) int {
	if n == nil {
		return def
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		d.Errorf(n, diag.RuleInvalidValue, "%s: %v", key, err)
	}
	return v
}

// ExprValue is a value of a step's field written literally (Fixed) or as an
// expression (retries: ${{ params.n }}), known for sure only at run time.
// The decoder's constructors (IntValue, IntValueIn, BoolValue, Duration,
// Port) give it the rule that turns the expression's value into a T; the
// zero ExprValue is the zero T, written literally.
type ExprValue[T comparable] struct {
	Fixed T
	expr  *tmpl.Template
	// conv turns the value x of the expression src into a T, naming src
	// in its errors; set whenever expr is.
	conv func(src string, x any) (T, error)
}

// Get returns the value: Fixed, or the expression evaluated against env
// and turned into a T by the rule of the field's constructor.
func (v ExprValue[T]) Get(env map[string]any) (T, error) {
	if v.expr == nil {
		return v.Fixed, nil
	}
	x, err := v.expr.Value(env)
	if err != nil {
		var zero T
		return zero, err
	}
	return v.conv(v.expr.Source, x)
}

// Literal returns the value and true when it was written literally.
func (v ExprValue[T]) Literal() (T, bool) { return v.Fixed, v.expr == nil }

// IsZero reports whether no value was given: no expression, and Fixed the
// zero T.
func (v ExprValue[T]) IsZero() bool {
	var zero T
	return v.expr == nil && v.Fixed == zero
}

// String shows the value or its expression as written.
func (v ExprValue[T]) String() string {
	if v.expr != nil {
		return v.expr.Source
	}
	return fmt.Sprint(v.Fixed)
}

// IntValue is an integer written literally or as an expression: an
// integer, a whole float, or a string of digits (a param given with -p).
type IntValue = ExprValue[int]

// BoolValue is true or false written literally or as an expression: a
// bool, or the strings true and false (yes, no, on, off).
type BoolValue = ExprValue[bool]

// DurationValue is a duration written literally or as an expression
// (timeout: ${{ params.wait }}): a duration, a number of seconds, or text
// such as 30s.
type DurationValue = ExprValue[time.Duration]

// PortValue is a port number written literally or as an expression
// (port: ${{ vars.port }}): an integer, or a string of digits (an
// inventory var written in quotes).
type PortValue = ExprValue[int]

// intFromExpr turns the value x of the expression src into an integer.
func intFromExpr(src string, x any) (int, error) {
	n, ok := 0, false
	switch x := x.(type) {
	case int:
		n, ok = x, true
	case int64:
		n, ok = int(x), true
	case float64:
		if x == float64(int(x)) {
			n, ok = int(x), true
		}
	case string:
		if i, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
			n, ok = i, true
		}
	}
	if !ok {
		return 0, fmt.Errorf("%s is %s, not an integer", src, describeValue(x))
	}
	return n, nil
}

// intIn is intFromExpr for a field that takes min to max.
func intIn(min, max int) func(src string, x any) (int, error) {
	return func(src string, x any) (int, error) {
		n, err := intFromExpr(src, x)
		if err == nil && (n < min || n > max) {
			return 0, fmt.Errorf("%s is %d: this field takes %d to %d", src, n, min, max)
		}
		return n, err
	}
}

// boolFromExpr turns the value x of the expression src into a bool.
func boolFromExpr(src string, x any) (bool, error) {
	switch x := x.(type) {
	case bool:
		return x, nil
	case string:
		if b, ok := parseBoolWord(x); ok {
			return b, nil
		}
	}
	return false, fmt.Errorf("%s is %s, not true or false (nor yes, no, on, off)", src, describeValue(x))
}

// parseBoolWord reads true or false as Go does (true, 1, t...), and as
// YAML 1.1 and the command line write it: yes, no, on, off, any case.
func parseBoolWord(s string) (bool, bool) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "yes", "on":
		return true, true
	case "no", "off":
		return false, true
	}
	b, err := strconv.ParseBool(s)
	return b, err == nil
}

func describeValue(x any) string {
	if s, ok := x.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%v (%T)", x, x)
}

// IntValue returns an integer written literally or as an expression, def
// when n is nil. An expression whose type is known at validation must be
// a number or a string (converted at run time).
func (d *Decoder) IntValue(n *yaml.Node, def int) IntValue {
	if n == nil {
		return IntValue{Fixed: def}
	}
	if strings.Contains(n.Value, "${{") {
		t := d.Template(n)
		d.checkExprKind(n, t, "an integer", reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64, reflect.String)
		return IntValue{expr: t, conv: intFromExpr}
	}
	return IntValue{Fixed: d.Int(n, def)}
}

// IntValueIn is IntValue bounded to min..max: a literal, or an expression
// whose value is known when the playbook loads (a constant), out of range
// is an error at validation; any other expression is checked when it runs.
func (d *Decoder) IntValueIn(n *yaml.Node, def, min, max int) IntValue {
	v := d.IntValue(n, def)
	v.conv = intIn(min, max)
	if n == nil {
		return v
	}
	if v.expr == nil {
		if v.Fixed < min || v.Fixed > max {
			d.Errorf(n, diag.RuleInvalidValue, "%d is out of range: this field takes %d to %d", v.Fixed, min, max)
		}
		return v
	}
	if constant(v.expr) {
		if _, err := v.Get(map[string]any{}); err != nil {
			d.Errorf(n, diag.RuleInvalidValue, "%v", err)
		}
	}
	return v
}

// constant reports whether a template's value is known when the playbook
// loads: it names nothing of the run (params, vars, steps, host...).
func constant(t *tmpl.Template) bool {
	if t == nil {
		return false
	}
	v, err := t.Value(map[string]any{})
	return err == nil && v != nil
}

// BoolValue returns true or false written literally or as an expression,
// def when n is nil. A constant expression that is no bool is an error at
// validation.
func (d *Decoder) BoolValue(n *yaml.Node, def bool) BoolValue {
	if n == nil {
		return BoolValue{Fixed: def}
	}
	if strings.Contains(n.Value, "${{") {
		t := d.Template(n)
		d.checkExprKind(n, t, "true or false", reflect.Bool, reflect.String)
		v := BoolValue{expr: t, conv: boolFromExpr}
		if constant(t) {
			if _, err := v.Get(map[string]any{}); err != nil {
				d.Errorf(n, diag.RuleInvalidValue, "%v", err)
			}
		}
		return v
	}
	return BoolValue{Fixed: d.Bool(n)}
}

// checkExprKind refuses, at validation, a value that is one expression
// whose type is known and none of kinds.
func (d *Decoder) checkExprKind(n *yaml.Node, t *tmpl.Template, want string, kinds ...reflect.Kind) {
	if t == nil {
		return
	}
	typ := t.Type()
	if typ == nil || typ.Kind() == reflect.Interface {
		return
	}
	for _, k := range kinds {
		if typ.Kind() == k {
			return
		}
	}
	d.Errorf(n, diag.RuleExprType, "%s is %s here; this field takes %s", strings.TrimSpace(n.Value), typ, want)
}

// durationFromExpr turns the value x of the expression src into a
// positive duration: a duration, a number of seconds, or text such as 30s.
func durationFromExpr(src string, x any) (time.Duration, error) {
	var dur time.Duration
	switch x := x.(type) {
	case time.Duration:
		dur = x
	case int:
		dur = time.Duration(x) * time.Second
	default:
		var err error
		if dur, err = time.ParseDuration(tmpl.Format(x)); err != nil {
			return 0, fmt.Errorf("%s: %q is not a duration such as 30s", src, tmpl.Format(x))
		}
	}
	if dur <= 0 {
		return 0, fmt.Errorf("%s: the duration must be positive, not %s", src, dur)
	}
	return dur, nil
}

// Duration returns a duration value, def when n is nil.
func (d *Decoder) Duration(n *yaml.Node, def time.Duration) DurationValue {
	if n == nil {
		return DurationValue{Fixed: def}
	}
	if strings.Contains(n.Value, "${{") {
		return DurationValue{expr: d.Template(n), conv: durationFromExpr}
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return DurationValue{Fixed: def}
	}
	if v <= 0 {
		d.Errorf(n, diag.RuleInvalidValue, "the duration must be positive")
	}
	return DurationValue{Fixed: v}
}

// ParsePort turns the value of an expression into a port number; src names
// the expression in the error.
func ParsePort(src string, x any) (int, error) {
	var p int
	switch x := x.(type) {
	case int:
		p = x
	case int64:
		p = int(x)
	case float64:
		if x != float64(int(x)) {
			return 0, fmt.Errorf("%s: %v is not a port number", src, x)
		}
		p = int(x)
	default:
		s := strings.TrimSpace(tmpl.Format(x))
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not a port number", src, s)
		}
		p = n
	}
	if p < 1 || p > 65535 {
		return 0, fmt.Errorf("%s: %d is not a port number (1-65535)", src, p)
	}
	return p, nil
}

// Port returns a port value, def when n is nil.
func (d *Decoder) Port(n *yaml.Node, def int) PortValue {
	if n == nil {
		return PortValue{Fixed: def}
	}
	if strings.Contains(n.Value, "${{") {
		t := d.Template(n)
		d.RefuseSecret(n, t, diag.RuleSecretExposed, "the port", "a port is shown in messages and journaled")
		return PortValue{expr: t, conv: ParsePort}
	}
	p, err := strconv.Atoi(n.Value)
	if err != nil {
		return PortValue{Fixed: def}
	}
	return PortValue{Fixed: p}
}

// IntList returns an integer or list of integers.
func (d *Decoder) IntList(n *yaml.Node) []int {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.ScalarNode {
		return []int{d.Int(n, 0)}
	}
	out := make([]int, 0, len(n.Content))
	for _, e := range n.Content {
		out = append(out, d.Int(e, 0))
	}
	return out
}

// TemplateMap returns a mapping of names to templates.
func (d *Decoder) TemplateMap(n *yaml.Node, where string) map[string]*tmpl.Template {
	if n == nil {
		return nil
	}
	out := make(map[string]*tmpl.Template, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			d.Errorf(v, diag.RuleTypeMismatch, "%s.%s must be a string, not %s", where, k.Value, DescribeNode(v))
			continue
		}
		out[k.Value] = d.Template(v)
	}
	return out
}

// TemplateList returns a list of templates.
func (d *Decoder) TemplateList(n *yaml.Node, where string) []*tmpl.Template {
	if n == nil {
		return nil
	}
	out := make([]*tmpl.Template, 0, len(n.Content))
	for _, v := range n.Content {
		if v.Kind != yaml.ScalarNode {
			d.Errorf(v, diag.RuleTypeMismatch, "%s must list strings, not %s", where, DescribeNode(v))
			continue
		}
		out = append(out, d.Template(v))
	}
	return out
}

// Value is a YAML value whose strings may hold expressions: a JSON body or
// a list of SQL arguments.
type Value struct {
	tmpl *tmpl.Template
	lit  any
	list []*Value
	keys []string
	vals []*Value
	kind yaml.Kind
}

// AnyValue decodes any YAML value, compiling the expressions in its strings.
func (d *Decoder) AnyValue(n *yaml.Node) *Value {
	if n == nil {
		return nil
	}
	switch n.Kind {
	case yaml.SequenceNode:
		v := &Value{kind: n.Kind}
		for _, e := range n.Content {
			v.list = append(v.list, d.AnyValue(e))
		}
		return v
	case yaml.MappingNode:
		v := &Value{kind: n.Kind}
		for i := 0; i+1 < len(n.Content); i += 2 {
			d.refuseKeyExpr(n.Content[i], "a mapping")
			v.keys = append(v.keys, n.Content[i].Value)
			v.vals = append(v.vals, d.AnyValue(n.Content[i+1]))
		}
		return v
	case yaml.ScalarNode:
		if n.Tag == "!!str" {
			return &Value{kind: n.Kind, tmpl: d.Template(n)}
		}
		var lit any
		if err := n.Decode(&lit); err != nil {
			d.Errorf(n, diag.RuleTypeMismatch, "%v", err)
		}
		return &Value{kind: n.Kind, lit: lit}
	}
	d.Errorf(n, diag.RuleTypeMismatch, "unsupported value: %s", DescribeNode(n))
	return nil
}

// Eval evaluates a Value against env, keeping the types of single
// expressions (a ${{ params.port }} of type int stays an int).
func (v *Value) Eval(env map[string]any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch v.kind {
	case yaml.SequenceNode:
		out := make([]any, 0, len(v.list))
		for _, e := range v.list {
			x, err := e.Eval(env)
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(v.keys))
		for i, k := range v.keys {
			x, err := v.vals[i].Eval(env)
			if err != nil {
				return nil, err
			}
			out[k] = x
		}
		return out, nil
	}
	if v.tmpl != nil {
		return v.tmpl.Value(env)
	}
	return v.lit, nil
}

// Render evaluates every template of a map.
func Render(m map[string]*tmpl.Template, env map[string]any) (map[string]string, error) {
	out := make(map[string]string, len(m))
	for k, t := range m {
		s, err := t.Render(env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = s
	}
	return out, nil
}
