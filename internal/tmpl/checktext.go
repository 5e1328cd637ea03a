package tmpl

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// CheckText is a template's text as a checker of its language
// (shellcheck, PostgreSQL's parser) should read it: every ${{ }} is
// replaced by a stand-in that reads as its value would once quoted for
// the place it lands in. In a command, a value that runbook quotes as one
// word stands as "${NAME}", one inside double quotes or an unquoted
// here-document as ${NAME}, one inside single quotes or a quoted
// here-document as a plain word; in SQL, an identifier as "name", a
// literal() as 'name', one inside a quoted identifier as a plain word.
// raw() of constants stands as its value, unquoted, as a run inserts it.
type CheckText struct {
	Text string
	// segs are the literal texts and stand-ins of Text in order, with
	// where each starts in the template's source.
	segs   []checkSeg
	prefix string
}

// checkSeg is a piece of the text: a stand-in maps as a whole to its ${{
// (src) and, at its end, to the end of its }} (srcEnd).
type checkSeg struct {
	start, end, src, srcEnd int
	standIn                 bool
}

// standIner is a slot that knows what a checker of its language reads in
// place of its value: text that parses as the value would, quoted as the
// slot quotes it. name is a word of letters and digits found nowhere else
// in the text.
type standIner interface {
	standIn(name string, e *Expr) string
}

// CheckText returns the text a checker of the template's language should
// read, and false when there is none to check: an expression of it did
// not compile, or a value could not be placed (both already reported).
func (t *Template) CheckText() (*CheckText, bool) {
	if t == nil || t.broken {
		return nil, false
	}
	prefix := "rbslot"
	for strings.Contains(strings.ToLower(t.Source), prefix) {
		prefix += "q"
	}
	c := &CheckText{prefix: prefix}
	var b strings.Builder
	k := 0
	for _, p := range t.parts {
		if p.expr == nil {
			c.segs = append(c.segs, checkSeg{start: b.Len(), end: b.Len() + len(p.lit), src: p.offset, srcEnd: p.offset + len(p.lit)})
			b.WriteString(p.lit)
			continue
		}
		name := prefix + strconv.Itoa(k) + "z"
		k++
		s := name
		switch si, ok := p.slot.(standIner); {
		case p.expr.callsRaw && !p.expr.rawInput:
			if v, err := p.expr.Eval(map[string]any{}); err == nil {
				if r, ok := v.(Raw); ok {
					s = Format(r.Value)
				}
			}
		case ok:
			s = si.standIn(name, p.expr)
		}
		c.segs = append(c.segs, checkSeg{start: b.Len(), end: b.Len() + len(s), src: p.offset - 3, srcEnd: p.offset + len(p.expr.Source) + 2, standIn: true})
		b.WriteString(s)
	}
	c.Text = b.String()
	return c, true
}

// SourceOffset maps an offset of Text to the template's source: text of
// the template to itself, a stand-in to its ${{.
func (c *CheckText) SourceOffset(off int) int {
	for _, g := range c.segs {
		switch {
		case off >= g.end:
		case g.standIn:
			return g.src
		default:
			return g.src + max(off-g.start, 0)
		}
	}
	if len(c.segs) == 0 {
		return 0
	}
	return c.segs[len(c.segs)-1].srcEnd
}

// Unmark writes the stand-ins a checker's message names as the ${{ }}
// they stand for.
func (c *CheckText) Unmark(msg string) string {
	if !strings.Contains(strings.ToLower(msg), c.prefix) {
		return msg
	}
	re, ok := standInNames.Load(c.prefix)
	if !ok {
		re, _ = standInNames.LoadOrStore(c.prefix, regexp.MustCompile(`(?i)\$?\{?`+c.prefix+`[0-9]+z\}?`))
	}
	return re.(*regexp.Regexp).ReplaceAllString(msg, "${{ }}")
}

// standInNames are the patterns of stand-in names by prefix, compiled
// once: nearly every text has the same prefix.
var standInNames sync.Map

func (s *shellSlot) standIn(name string, _ *Expr) string {
	switch s.kind {
	case shBare:
		return `"${` + strings.ToUpper(name) + `}"`
	case shDouble, shHeredoc:
		return "${" + strings.ToUpper(name) + "}"
	}
	return name
}

func (s *sqlSlot) standIn(name string, e *Expr) string {
	switch {
	case s.kind == sqlIdent:
		return name
	case e.callsLiteral:
		return "'" + name + "'"
	}
	return `"` + name + `"`
}
