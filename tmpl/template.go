package tmpl

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Template is a string with ${{ expr }} parts, compiled once.
type Template struct {
	Source string
	parts  []part
}

type part struct {
	lit  string
	expr *Expr
	// Offset is the byte offset of the expression's source in the template.
	offset int
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
				t.parts = append(t.parts, part{lit: rest})
			}
			break
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: rest[:i]})
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

// Quoter quotes an interpolated value for the place it lands in, such as a
// shell command line. A nil Quoter inserts values as they are.
type Quoter func(string) string

// Render evaluates the template, passing every interpolated value through
// quote unless the expression marked it raw().
func (t *Template) Render(env map[string]any, quote Quoter) (string, error) {
	if t == nil {
		return "", nil
	}
	if len(t.parts) == 1 && t.parts[0].expr == nil {
		return t.parts[0].lit, nil
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.expr == nil {
			b.WriteString(p.lit)
			continue
		}
		v, err := p.expr.Eval(env)
		if err != nil {
			return "", fmt.Errorf("${{%s}}: %w", p.expr.Source, err)
		}
		if r, ok := v.(Raw); ok {
			b.WriteString(Format(r.Value))
			continue
		}
		s := Format(v)
		if quote != nil {
			s = quote(s)
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

// Value evaluates a template that is exactly one ${{ }} to the expression's
// value with its type, and any other template to its rendered string.
func (t *Template) Value(env map[string]any) (any, error) {
	if len(t.parts) == 1 && t.parts[0].expr != nil && strings.TrimSpace(t.Source) == t.Source {
		v, err := t.parts[0].expr.Eval(env)
		if r, ok := v.(Raw); ok {
			return r.Value, err
		}
		return v, err
	}
	return t.Render(env, nil)
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

// ShellQuote quotes s as one word for a POSIX shell.
func ShellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./-_", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
