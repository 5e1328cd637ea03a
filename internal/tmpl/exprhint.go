package tmpl

import (
	"fmt"

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
	toks, err := lexer.Lex(file.NewSource(src))
	if err != nil || len(toks) == 0 {
		return "", 0, false
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
