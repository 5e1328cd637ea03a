package tmpl

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Template is a string with ${{ expr }} parts, compiled once.
type Template struct {
	Source string
	parts  []part
	// broken is set when an expression did not compile or a value could
	// not be placed in the template's language: its text is then not
	// what a run would have.
	broken bool
}

type part struct {
	lit  string
	expr *Expr
	// offset is the byte offset of the expression's source in the
	// template, or of the literal text.
	offset int
	// slot quotes the expression's value for the place it lands in; nil
	// inserts it as it is.
	slot slot
}

// TemplateError is an expression error inside a template, at a byte offset
// of the template's source.
type TemplateError struct {
	Offset int
	*Error
}

// ParseTemplate compiles every ${{ }} of src against s. It returns all the
// errors it finds, not only the first.
func ParseTemplate(src string, s *Scope) (*Template, []*TemplateError) {
	t := &Template{Source: src}
	var errs []*TemplateError
	rest, base := src, 0
	for {
		i := strings.Index(rest, "${{")
		if i < 0 {
			if rest != "" {
				t.parts = append(t.parts, part{lit: rest, offset: base})
			}
			break
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: rest[:i], offset: base})
		}
		j := strings.Index(rest[i+3:], "}}")
		if j < 0 {
			errs = append(errs, &TemplateError{Offset: base + i, Error: &Error{Rule: ruleSyntax, Msg: "unclosed ${{: add the closing }}"}})
			break
		}
		inner := rest[i+3 : i+3+j]
		off := base + i + 3
		e, err := Compile(inner, s)
		if err != nil {
			te := err.(*Error)
			// The expression's own column counts runes from its start.
			errs = append(errs, &TemplateError{Offset: off + byteOffset(inner, te.Line, te.Col), Error: te})
		} else {
			t.parts = append(t.parts, part{expr: e, offset: off})
		}
		rest = rest[i+3+j+2:]
		base += i + 3 + j + 2
	}
	t.broken = len(errs) > 0
	return t, errs
}

// Literal returns a template that is the given text with no expressions.
func Literal(s string) *Template {
	if s == "" {
		return &Template{}
	}
	return &Template{Source: s, parts: []part{{lit: s}}}
}

func byteOffset(s string, line, col int) int {
	off := 0
	for l := 0; l < line; l++ {
		i := strings.IndexByte(s[off:], '\n')
		if i < 0 {
			return off
		}
		off += i + 1
	}
	for c := 0; c < col && off < len(s); c++ {
		_, n := utf8.DecodeRuneInString(s[off:])
		off += n
	}
	return off
}

// IsLiteral reports whether the template has no expressions.
func (t *Template) IsLiteral() bool {
	for _, p := range t.parts {
		if p.expr != nil {
			return false
		}
	}
	return true
}

// Leading returns what the template begins with: its first text, or (lit
// empty) its first expression.
func (t *Template) Leading() (lit string, e *Expr) {
	for _, p := range t.parts {
		if p.expr != nil {
			return "", p.expr
		}
		if p.lit != "" {
			return p.lit, nil
		}
	}
	return "", nil
}

// UsesSecret reports whether the template's value may hold a secret: an
// expression of it is tainted (see Taint).
func (t *Template) UsesSecret() bool {
	taint, _ := t.Taint()
	return taint != nil
}

// Steps lists the step ids the template reads.
func (t *Template) Steps() []string {
	var out []string
	for _, p := range t.parts {
		if p.expr != nil {
			out = append(out, p.expr.Steps...)
		}
	}
	return out
}

// Exprs returns the template's compiled expressions.
func (t *Template) Exprs() []*Expr {
	var out []*Expr
	for _, p := range t.parts {
		if p.expr != nil {
			out = append(out, p.expr)
		}
	}
	return out
}

// Render evaluates the template, quoting every interpolated value for the
// context it lands in when the template was bound to a language (In), and
// inserting it as it is otherwise. A value that cannot be placed safely is
// an error that never shows the value.
func (t *Template) Render(env map[string]any) (string, error) {
	if t == nil {
		return "", nil
	}
	if len(t.parts) == 1 && t.parts[0].expr == nil {
		return t.parts[0].lit, nil
	}
	var b strings.Builder
	var spans []span
	for i, p := range t.parts {
		if p.expr == nil {
			b.WriteString(p.lit)
			continue
		}
		v, err := p.expr.Eval(env)
		if err != nil {
			return "", fmt.Errorf("${{%s}}: %w", p.expr.Source, err)
		}
		if p.slot == nil {
			b.WriteString(Format(unmark(v)))
			continue
		}
		s, err := p.slot.quote(v)
		if err != nil {
			return "", fmt.Errorf("${{%s}}: %w", p.expr.Source, err)
		}
		if _, ok := p.slot.(spanChecker); ok {
			spans = append(spans, span{part: i, start: b.Len(), end: b.Len() + len(s)})
		}
		b.WriteString(s)
	}
	out := b.String()
	for _, sp := range spans {
		p := t.parts[sp.part]
		if err := p.slot.(spanChecker).checkSpan(out, sp.start, sp.end); err != nil {
			return "", fmt.Errorf("${{%s}}: %w", p.expr.Source, err)
		}
	}
	return out, nil
}

// span is where a quoted value landed in a rendered template.
type span struct{ part, start, end int }

// slot quotes the value of one ${{ }} for the place it lands in.
type slot interface {
	quote(v any) (string, error)
}

// spanChecker is a slot that also checks the rendered text around its
// value, for what quoting alone cannot rule out (a value that completes a
// here-document's end line, or a dollar-quote's closing tag, with the text
// next to it).
type spanChecker interface {
	checkSpan(out string, start, end int) error
}

// Value evaluates a template that is exactly one ${{ }} to the expression's
// value with its type, and any other template to its rendered string.
func (t *Template) Value(env map[string]any) (any, error) {
	if len(t.parts) == 1 && t.parts[0].expr != nil && strings.TrimSpace(t.Source) == t.Source {
		v, err := t.parts[0].expr.Eval(env)
		return unmark(v), err
	}
	return t.Render(env)
}

// Type is the type of Value's result when validation knows it: the
// expression's for a template that is exactly one ${{ }}, string for any
// other; nil when it is known only at run time (or did not compile).
func (t *Template) Type() reflect.Type {
	if t == nil || t.broken {
		return nil
	}
	if len(t.parts) == 1 && t.parts[0].expr != nil && strings.TrimSpace(t.Source) == t.Source {
		return t.parts[0].expr.typ
	}
	return reflect.TypeOf("")
}

// Format turns an expression value into the text a template inserts.
func Format(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case fmt.Stringer:
		return v.String()
	default:
		return fmt.Sprint(v)
	}
}

// Lang is the language of a template's text, such as a shell command or
// SQL: it finds the context every ${{ }} lands in and quotes values for
// it, or refuses the template when no quoting makes a value safe there.
type Lang interface {
	bind(t *Template) []*TemplateError
}

// In binds the template to lang, so that Render quotes each value for
// the place it lands in. It returns the ${{ }} that cannot be placed
// safely, with the reason and the fix, at offsets of the template's
// source. A template with expression errors is not bound.
func (t *Template) In(lang Lang) []*TemplateError {
	if t == nil {
		return nil
	}
	if what, ok := deepLangs[lang]; ok {
		if errs := checkTextDepth(t, what); errs != nil {
			t.broken = true
			return errs
		}
	}
	if t.IsLiteral() {
		return nil
	}
	errs := lang.bind(t)
	if len(errs) > 0 {
		t.broken = true
	}
	return errs
}

// deepLangs are the languages whose parsers recurse on the text's
// nesting, by what their text is called in a refusal.
var deepLangs = map[Lang]string{Shell: "the command", SQL: "the SQL text"}

// markedText is a template's text with every ${{ }} replaced by a marker:
// a word of letters and digits that a parser of the language reads like
// a plain name, so that where each marker lands tells where its value
// would.
type markedText struct {
	text   string
	prefix string
	// exprs are the indexes of the expression parts, in order; marker k
	// stands for t.parts[exprs[k]].
	exprs []int
	// starts[k] is the offset of marker k in text; src[k] that of its
	// ${{ in the template's source.
	starts, src []int
	// lits maps offsets of text back to the template: the start of each
	// literal part in text and in the source.
	lits [][2]int
}

func (t *Template) withMarkers() *markedText {
	m := &markedText{prefix: "rbslot"}
	for strings.Contains(strings.ToLower(t.Source), m.prefix) {
		m.prefix += "q"
	}
	var b strings.Builder
	for i, p := range t.parts {
		if p.expr == nil {
			m.lits = append(m.lits, [2]int{b.Len(), p.offset})
			b.WriteString(p.lit)
			continue
		}
		m.starts = append(m.starts, b.Len())
		m.src = append(m.src, p.offset-3)
		b.WriteString(m.marker(len(m.exprs)))
		m.exprs = append(m.exprs, i)
	}
	m.text = b.String()
	return m
}

func (m *markedText) marker(k int) string { return m.prefix + strconv.Itoa(k) + "z" }

// find returns the markers in s.
func (m *markedText) find(s string) []int {
	var out []int
	for {
		i := strings.Index(s, m.prefix)
		if i < 0 {
			return out
		}
		s = s[i+len(m.prefix):]
		j := 0
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j > 0 && j < len(s) && s[j] == 'z' {
			if k, err := strconv.Atoi(s[:j]); err == nil && k < len(m.exprs) {
				out = append(out, k)
			}
		}
		s = s[j:]
	}
}

// unmark writes the markers in a parser's message as the ${{ }} they
// stand for.
func (m *markedText) unmark(msg string) string {
	for k := len(m.exprs) - 1; k >= 0; k-- {
		msg = strings.ReplaceAll(msg, m.marker(k), "${{ }}")
	}
	return msg
}

// exprOffset is the offset in the template's source of marker k's ${{.
func (m *markedText) exprOffset(k int) int { return m.src[k] }

// sourceOffset maps an offset of the marked text to the template's source.
func (m *markedText) sourceOffset(off int) int {
	for k := len(m.starts) - 1; k >= 0; k-- {
		if off >= m.starts[k] && off < m.starts[k]+len(m.marker(k)) {
			return m.src[k]
		}
	}
	for i := len(m.lits) - 1; i >= 0; i-- {
		if off >= m.lits[i][0] {
			return m.lits[i][1] + off - m.lits[i][0]
		}
	}
	return 0
}

// before returns the byte before marker k in the text, or 0.
func (m *markedText) before(k int) byte {
	if m.starts[k] == 0 {
		return 0
	}
	return m.text[m.starts[k]-1]
}

// afterBackslash reports whether marker k follows an odd run of
// backslashes, which would escape the first character of its value.
func (m *markedText) afterBackslash(k int) bool {
	n := 0
	for i := m.starts[k] - 1; i >= 0 && m.text[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

// wordStart reports whether marker k starts a word of a plain command.
func (m *markedText) wordStart(k int) bool {
	c := m.before(k)
	return c == 0 || strings.IndexByte(" \t\n;&|>", c) >= 0
}
