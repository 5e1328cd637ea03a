package tmpl

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/runbook-dev/runbook/internal/diag"
)

// MaxDepth is the deepest nesting runbook reads in an expression, a
// command or SQL text. The parsers of those languages (expr, mvdan.cc/sh,
// shellcheck) and the walkers of their trees recurse once per level: a
// text nested a million deep would overflow the stack and crash the
// process, which no recover() catches. Playbooks written by people nest
// a few levels; a text deeper than this is refused before any parser
// sees it, at the place where it goes too deep.
const MaxDepth = 100

// depthError is the refusal of a text nested deeper than MaxDepth, at
// byte offset off of src.
func depthError(src string, off int, rule, what string) *Error {
	line := strings.Count(src[:off], "\n")
	col := utf8.RuneCountInString(src[strings.LastIndexByte(src[:off], '\n')+1 : off])
	return &Error{Line: line, Col: col, Rule: rule, Msg: fmt.Sprintf(
		"%s nests deeper than %d levels here (brackets, operators that each open a level): runbook refuses it rather than overflow its parser; split it, or compute parts in earlier steps", what, MaxDepth)}
}

// exprTooDeep returns the offset where an expression's nesting passes
// MaxDepth, or -1. It counts brackets, the ? of conditionals (the parser
// recurses into each branch) and runs of prefix operators (!!x, - -x, not
// not x), and skips string literals. It overestimates, never
// underestimates, the depth of the parser's recursion.
func exprTooDeep(src string) int {
	depth, unary, opens := 0, 0, 0
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			for i++; i < len(src) && src[i] != c; i++ {
				if src[i] == '\\' && c != '`' {
					i++
				}
			}
			unary = 0
			continue
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == '?':
			opens++
		case c == ')' || c == ']' || c == '}':
			depth--
		case c == '!' || c == '-' || c == '+':
			unary++
		case strings.HasPrefix(src[i:], "not ") && (i == 0 || !isWordByte(src[i-1])):
			unary++
			i += 2
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		default:
			unary = 0
		}
		if depth+unary+opens > MaxDepth {
			return i
		}
	}
	return -1
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// textTooDeep returns the offset in src where the nesting of a command
// or SQL text, at depth before src, passes MaxDepth, or -1, and the depth
// after src: brackets of every kind, and the shell's compound commands
// (if, while, until, for, case, select), counted whether quoted or not,
// so that it overestimates.
func textTooDeep(src string, depth int) (int, int) {
	for i := 0; i < len(src); i++ {
		switch c := src[i]; c {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		case '`':
			// A backquoted command nests; the next backquote may close it.
			depth++
		default:
			if isWordByte(c) && (i == 0 || !isWordByte(src[i-1])) {
				j := i
				for j < len(src) && isWordByte(src[j]) {
					j++
				}
				switch src[i:j] {
				case "if", "while", "until", "for", "case", "select":
					depth++
				case "fi", "done", "esac":
					depth--
				}
				i = j - 1
			}
		}
		if depth > MaxDepth {
			return i, depth
		}
	}
	return -1, depth
}

// checkTextDepth refuses a template of a language whose text nests too
// deep for its parser (and shellcheck's), at the ${{-free offset.
func checkTextDepth(t *Template, what string) []*TemplateError {
	// The text around the ${{ }}: an expression is checked on its own.
	depth := 0
	for _, p := range t.parts {
		if p.expr != nil {
			continue
		}
		var off int
		if off, depth = textTooDeep(p.lit, depth); off < 0 {
			continue
		}
		return []*TemplateError{{Offset: p.offset + off, Error: &Error{Rule: diag.RuleInvalidValue, Msg: fmt.Sprintf(
			"%s nests deeper than %d levels here (brackets, $(...), compound commands): runbook refuses it rather than overflow its parser; split it into steps", what, MaxDepth)}}}
	}
	return nil
}
