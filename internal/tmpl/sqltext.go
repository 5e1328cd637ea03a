package tmpl

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/runbook-dev/runbook/internal/diag"
)

// SQL is the language of PostgreSQL statements. Each ${{ }} is quoted for
// the place it lands in:
//
//   - in the statement itself: as an identifier ("name", quotes doubled),
//     or as a string literal when the expression is literal(x);
//   - inside a quoted identifier ("pg_${{ x }}"): its quotes doubled;
//   - inside the dollar-quoted body of a DO block: as in the statement,
//     and the value may not hold the body's closing tag.
//
// Inside a string literal ('...', E'...', a dollar-quoted string that is
// not a DO body) or a comment, and joined to other text, the playbook is
// refused when it loads: values belong in args: ($1), or in literal().
//
// The text is split by a lexer of PostgreSQL's quoting rules (scan.l):
// comments (-- and nested /* */), '...' with doubled quotes
// (standard_conforming_strings on, which runbook sets for its sessions),
// E'...' with backslash escapes, B'...', X'...', N'...', U&'...' and
// U&"...", "..." with doubled quotes, $tag$...$tag$, and $1 parameters.
var SQL Lang = sqlLang{}

type sqlLang struct{}

// sqlKind is the quoting context of a value in SQL text.
type sqlKind int

const (
	sqlCode  sqlKind = iota // a token of the statement: an identifier, or literal()
	sqlIdent                // inside "..."
)

// MaxIdentifier is the longest identifier PostgreSQL keeps, in bytes
// (NAMEDATALEN - 1); a longer one is cut, naming another object.
const MaxIdentifier = 63

func (sqlLang) bind(t *Template) []*TemplateError {
	m := t.withMarkers()
	if len(m.exprs) == 0 {
		return nil
	}
	b := &sqlBinder{t: t, m: m, done: make([]bool, len(m.exprs))}
	b.scan(0, len(m.text), nil)
	for k := range m.exprs {
		if !b.done[k] {
			b.refuse(k, "${{ }} in a place of the SQL text that runbook cannot quote a value for: bind the value as $1 with args:")
		}
	}
	for k, pi := range m.exprs {
		e := t.parts[pi].expr
		s, _ := t.parts[pi].slot.(*sqlSlot)
		switch {
		case s == nil:
		case e.rawInput:
			b.errs = append(b.errs, &TemplateError{Offset: m.exprOffset(k), Error: &Error{Rule: diag.RuleUnsafeRaw,
				Msg: "raw() inserts its value into the SQL text unquoted, and this value comes from outside the playbook (params, inventory, results), so whoever sets it writes SQL: bind it as $1 with args:, or write literal(x) for a string and ${{ x }} for an identifier"}})
		case e.callsLiteral && s.kind == sqlIdent:
			b.refuse(k, "literal() inside a quoted identifier: a string literal cannot be part of a name; write ${{ x }}")
		}
	}
	return b.errs
}

type sqlBinder struct {
	t    *Template
	m    *markedText
	done []bool
	errs []*TemplateError
}

func (b *sqlBinder) refuse(k int, format string, args ...any) {
	b.done[k] = true
	b.errs = append(b.errs, &TemplateError{Offset: b.m.exprOffset(k), Error: &Error{Rule: diag.RuleSQLInterpolation, Msg: fmt.Sprintf(format, args...)}})
}

// markersIn calls f for every marker that starts in text[from:to].
func (b *sqlBinder) markersIn(from, to int, f func(k int)) {
	for k, s := range b.m.starts {
		if s >= from && s < to && !b.done[k] {
			f(k)
		}
	}
}

const (
	msgSQLString  = "${{ }} inside an SQL string literal, where a quote in the value would end the string: bind the value as $1 with args: [...], or, in a statement that takes no parameters (ALTER ROLE ... PASSWORD, COMMENT, DO), write ${{ literal(x) }} in place of the whole '...'"
	msgSQLDollar  = "${{ }} inside a dollar-quoted string: bind the value as $1 with args: [...], or write ${{ literal(x) }} in place of the whole $$...$$ (only in the body of a DO block is a value quoted as in the statement)"
	msgSQLComment = "${{ }} in an SQL comment, which a line break in the value would end: move it out of the comment"
	msgSQLJoined  = "${{ }} joined to other text: a value is quoted as one identifier (\"...\") or one literal, and cannot be part of a longer token: build the whole name in the expression (${{ \"prefix_\" + x }}), or put the value inside the quotes of \"...\""
	msgSQLUnicode = "${{ }} inside a U&\"...\" identifier, whose escapes runbook does not quote for: use \"...\""
	msgSQLTag     = "${{ }} in the tag of a dollar quote: write the tag in the statement"
)

// scan lexes text[from:to] as SQL statements, inside the dollar-quoted
// bodies named by tags (outermost first), and places the markers in it.
func (b *sqlBinder) scan(from, to int, tags []string) {
	s := b.m.text
	var prev [3]string // the last identifiers, lower-cased, latest first
	word := func(w string) { prev = [3]string{strings.ToLower(w), prev[0], prev[1]} }
	for i := from; i < to; {
		c := s[i]
		switch {
		case c == '-' && i+1 < to && s[i+1] == '-':
			j := strings.IndexByte(s[i:to], '\n')
			if j < 0 {
				j = to - i
			}
			b.markersIn(i, i+j, func(k int) { b.refuse(k, msgSQLComment) })
			i += j
		case c == '/' && i+1 < to && s[i+1] == '*':
			j := blockCommentEnd(s[:to], i)
			b.markersIn(i, j, func(k int) { b.refuse(k, msgSQLComment) })
			i = j
		case c == '\'':
			j := stringEnd(s[:to], i+1, false)
			b.markersIn(i, j, func(k int) { b.refuse(k, msgSQLString) })
			i = j
			prev = [3]string{}
		case c == '"':
			j := quotedIdentEnd(s[:to], i+1)
			b.markersIn(i, j, func(k int) {
				b.place(k, &sqlSlot{kind: sqlIdent, tags: tags})
			})
			word(s[i:j])
			i = j
		case (c == 'u' || c == 'U') && i+2 < to && s[i+1] == '&' && (s[i+2] == '\'' || s[i+2] == '"'):
			var j int
			if s[i+2] == '"' {
				j = quotedIdentEnd(s[:to], i+3)
				b.markersIn(i, j, func(k int) { b.refuse(k, msgSQLUnicode) })
			} else {
				j = stringEnd(s[:to], i+3, false)
				b.markersIn(i, j, func(k int) { b.refuse(k, msgSQLString) })
			}
			i = j
			prev = [3]string{}
		case strings.IndexByte("eEbBxXnN", c) >= 0 && i+1 < to && s[i+1] == '\'':
			j := stringEnd(s[:to], i+2, c == 'e' || c == 'E')
			b.markersIn(i, j, func(k int) { b.refuse(k, msgSQLString) })
			i = j
			prev = [3]string{}
		case c == '$' && i+1 < to && s[i+1] >= '0' && s[i+1] <= '9':
			j := i + 1
			for j < to && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			i = j
		case c == '$':
			tagEnd, ok := dollarTag(s[:to], i)
			if !ok {
				i++
				continue
			}
			tag := s[i:tagEnd]
			b.markersIn(i, tagEnd, func(k int) { b.refuse(k, msgSQLTag) })
			body := tagEnd
			end := strings.Index(s[body:to], tag)
			bodyEnd, next := to, to
			if end >= 0 {
				bodyEnd, next = body+end, body+end+len(tag)
			}
			if prev[0] == "do" || prev[0] == "plpgsql" && prev[1] == "language" && prev[2] == "do" {
				b.scan(body, bodyEnd, append(tags[:len(tags):len(tags)], tag))
			} else {
				b.markersIn(body, bodyEnd, func(k int) { b.refuse(k, msgSQLDollar) })
			}
			b.markersIn(bodyEnd, next, func(k int) { b.refuse(k, msgSQLTag) })
			i = next
			prev = [3]string{}
		case identStart(c) || c >= '0' && c <= '9':
			j := i + 1
			for j < to && identPart(s[j]) {
				j++
			}
			b.markersIn(i, j, func(k int) {
				start, n := b.m.starts[k], len(b.m.marker(k))
				if start != i || start+n != j || joinsBefore(s, from, i) || joinsAfter(s, to, j) {
					b.refuse(k, msgSQLJoined)
					return
				}
				b.place(k, &sqlSlot{kind: sqlCode, tags: tags})
			})
			word(s[i:j])
			i = j
		default:
			if c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' {
				prev = [3]string{}
			}
			i++
		}
	}
}

func (b *sqlBinder) place(k int, s *sqlSlot) {
	b.done[k] = true
	b.t.parts[b.m.exprs[k]].slot = s
}

// joinsBefore reports whether the character before a token at i would
// join a quoted value to it: a closing quote ("a""b" is one identifier),
// $, the & of U&, or the digits of $1.
func joinsBefore(s string, from, i int) bool {
	return i > from && (strings.IndexByte(`"'$&`, s[i-1]) >= 0 || identPart(s[i-1]))
}

// joinsAfter reports the same of the character after a token ending at j.
func joinsAfter(s string, to, j int) bool {
	return j < to && strings.IndexByte(`"'$`, s[j]) >= 0
}

func identStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func identPart(c byte) bool {
	return identStart(c) || c >= '0' && c <= '9' || c == '$'
}

// stringEnd returns the offset after the quote that ends a string literal
// whose text starts at i: a doubled quote is a quote inside it, and with
// escapes (E'...') so is a quote after a backslash.
func stringEnd(s string, i int, escapes bool) int {
	for i < len(s) {
		switch {
		case escapes && s[i] == '\\':
			i += 2
		case s[i] == '\'' && i+1 < len(s) && s[i+1] == '\'':
			i += 2
		case s[i] == '\'':
			return i + 1
		default:
			i++
		}
	}
	return len(s)
}

// quotedIdentEnd returns the offset after the quote that ends a quoted
// identifier whose text starts at i ("" is a quote inside it).
func quotedIdentEnd(s string, i int) int {
	for i < len(s) {
		if s[i] == '"' {
			if i+1 < len(s) && s[i+1] == '"' {
				i += 2
				continue
			}
			return i + 1
		}
		i++
	}
	return len(s)
}

// blockCommentEnd returns the offset after the */ that ends the comment
// starting at i; block comments nest.
func blockCommentEnd(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch {
		case strings.HasPrefix(s[i:], "/*"):
			depth++
			i += 2
		case strings.HasPrefix(s[i:], "*/"):
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return len(s)
}

// dollarTag returns the offset after the tag of a dollar quote starting
// at i ($$ or $name$), and false when the $ starts none.
func dollarTag(s string, i int) (int, bool) {
	j := i + 1
	if j < len(s) && identStart(s[j]) {
		for j < len(s) && (identStart(s[j]) || s[j] >= '0' && s[j] <= '9') {
			j++
		}
	}
	if j < len(s) && s[j] == '$' {
		return j + 1, true
	}
	return 0, false
}

// sqlSlot quotes a value for its place in SQL text.
type sqlSlot struct {
	kind sqlKind
	// tags are the closing tags of the dollar-quoted bodies around the
	// value, which it must not complete.
	tags []string
}

func (s *sqlSlot) quote(v any) (string, error) {
	switch v := v.(type) {
	case Raw:
		return Format(v.Value), nil
	case SQLString:
		if s.kind != sqlCode {
			return "", errors.New("literal() cannot be part of a quoted identifier")
		}
		if err := sqlText(v.Value); err != nil {
			return "", err
		}
		return v.String(), nil
	}
	str := Format(v)
	if err := sqlText(str); err != nil {
		return "", err
	}
	if s.kind == sqlIdent {
		return strings.ReplaceAll(str, `"`, `""`), nil
	}
	if str == "" {
		return "", errors.New("an empty value cannot be an identifier")
	}
	if len(str) > MaxIdentifier {
		return "", fmt.Errorf("the value is %d bytes long, and PostgreSQL would cut an identifier to %d, naming another object", len(str), MaxIdentifier)
	}
	return `"` + strings.ReplaceAll(str, `"`, `""`) + `"`, nil
}

// sqlText checks that PostgreSQL can take s in statement text.
func sqlText(s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return errors.New("the value holds a NUL byte, which SQL text cannot carry")
	}
	if !utf8.ValidString(s) {
		return errors.New("the value is not valid UTF-8")
	}
	return nil
}

func (s *sqlSlot) checkSpan(out string, start, end int) error {
	for _, tag := range s.tags {
		from, to := max(0, start-len(tag)+1), min(len(out), end+len(tag)-1)
		if strings.Contains(out[from:to], tag) {
			return fmt.Errorf("the value, with the text around it, holds %s and would end the dollar-quoted body early", tag)
		}
	}
	return nil
}
