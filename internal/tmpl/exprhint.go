package tmpl

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser/lexer"
)

var closing = map[string]string{"(": ")", "[": "]", "{": "}"}

// syntaxHint says what was expected where an expression does not parse,
// for the mistakes expr reports only as "unexpected token": a function
// after | written without its call (x | trim), an operator with nothing
// after it, a bracket left open or closed by the wrong one. at is the
// rune offset to point at.
func syntaxHint(src string) (msg string, at int, ok bool) {
	if i := strings.Index(src, "${{"); i >= 0 {
		return "${{ inside an expression: write the inner expression as it is (params.x, not ${{ params.x }})", utf8.RuneCountInString(src[:i]), true
	}
	toks, err := lexer.Lex(file.NewSource(src))
	if err != nil {
		if q, at := openQuote(src); q != 0 {
			return fmt.Sprintf("the string opened by %c here is never closed: expected a %c after its text", q, q), at, true
		}
		return "", 0, false
	}
	if len(toks) == 0 {
		return "", 0, false
	}
	for i := 1; i < len(toks); i++ {
		a, b := toks[i-1], toks[i]
		switch {
		case a.Is(lexer.Operator, "..") && i >= 2 && toks[i-2].Kind == lexer.Identifier && b.Kind == lexer.Identifier:
			return fmt.Sprintf(".. is the range operator (1..3): a field is read with one dot (%s.%s)", toks[i-2].Value, b.Value), a.From, true
		case a.Kind == lexer.Operator && b.Kind == lexer.Operator && !unary[b.Value] && a.Value != "." && !(a.Value == "not" && b.Value == "in"):
			return fmt.Sprintf("%s cannot follow %s: a value is expected between them", b.Value, a.Value), b.From, true
		case a.Is(lexer.Bracket, ")") && b.Is(lexer.Operator, ".") && i+1 < len(toks) && toks[i+1].Kind == lexer.Identifier:
			n := toks[i+1].Value
			return fmt.Sprintf(".%s after a call reads a field of its result: to apply a function, write %s(...) or x | %s()", n, n, n), b.From, true
		}
	}
	hasColon := false
	for _, t := range toks {
		if t.Is(lexer.Operator, ":") {
			hasColon = true
		}
	}
	for _, t := range toks {
		if t.Is(lexer.Operator, "?") && !hasColon {
			return "a condition ? needs : and the value otherwise (x ? a : b)", t.From, true
		}
	}
	for i, t := range toks {
		if !t.Is(lexer.Operator, "|") || i+1 >= len(toks) {
			continue
		}
		next := toks[i+1]
		switch {
		case next.Kind == lexer.Identifier && (i+2 >= len(toks) || !toks[i+2].Is(lexer.Bracket, "(")):
			n := next.Value
			return fmt.Sprintf("expected a function call after |: write %s() (x | %s() is %s(x))", n, n, n), next.From, true
		case next.Kind == lexer.EOF:
			return "expected a function call after |, such as trim()", t.From, true
		}
	}
	type open struct {
		value string
		at    int
	}
	var stack []open
	for _, t := range toks {
		if t.Kind != lexer.Bracket {
			continue
		}
		if _, isOpen := closing[t.Value]; isOpen {
			stack = append(stack, open{t.Value, t.From})
			continue
		}
		if len(stack) == 0 {
			return fmt.Sprintf("%s closes nothing", t.Value), t.From, true
		}
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if closing[top.value] != t.Value {
			return fmt.Sprintf("expected %s here, to close the %s before it, not %s", closing[top.value], top.value, t.Value), t.From, true
		}
	}
	if len(stack) > 0 {
		top := stack[len(stack)-1]
		return fmt.Sprintf("this %s is never closed: expected %s after what it encloses", top.value, closing[top.value]), top.at, true
	}
	if n := len(toks); n >= 2 && toks[n-1].Kind == lexer.EOF && toks[n-2].Kind == lexer.Operator {
		return fmt.Sprintf("expected a value after %s", toks[n-2].Value), toks[n-2].From, true
	}
	return "", 0, false
}

// unary are the operators that may start a value.
var unary = map[string]bool{"-": true, "+": true, "!": true, "not": true}

// openQuote finds a string literal that is never closed: its quote and
// the rune offset where it opens, or 0.
func openQuote(src string) (rune, int) {
	var q rune
	at, n := 0, 0
	esc := false
	for _, r := range src {
		switch {
		case esc:
			esc = false
		case q != 0 && r == '\\':
			esc = true
		case q != 0 && r == q:
			q = 0
		case q == 0 && (r == '"' || r == '\'' || r == '`'):
			q, at = r, n
		}
		n++
	}
	return q, at
}
