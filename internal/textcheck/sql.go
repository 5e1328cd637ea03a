package textcheck

import (
	"fmt"
	"math/big"
	"strings"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/steps"
)

// sqlResult is what PostgreSQL's parser says of a text: a syntax error
// at a byte offset, or where its statements start and where the $n
// parameters the driver binds are.
type sqlResult struct {
	err    string
	errAt  int
	stmts  []int
	params []int
	// bodyErrs are the errors of PL/pgSQL bodies (DO, LANGUAGE
	// plpgsql), each at its body's start.
	bodyErrs []sqlErr
}

// sqlErr is an error of a parser at a byte offset of the text.
type sqlErr struct {
	msg string
	at  int
}

// maxParams is the most parameters a statement can have: the protocol
// counts them in 16 bits.
const maxParams = 65535

// parsed parses text once, however many playbooks hold it.
func (c *Checker) parsed(text string) *sqlResult {
	c.mu.Lock()
	r, ok := c.sql[text]
	c.mu.Unlock()
	if ok {
		return r
	}
	r = parseSQL(text)
	c.mu.Lock()
	c.sql[text] = r
	c.mu.Unlock()
	return r
}

// checkSQL reports a syntax error in SQL text, several statements where
// the driver sends one prepared statement, and $n parameters that do not
// match args:. The driver sends exactly as many values as the statement
// has parameters, numbered from $1 without a gap (PostgreSQL cannot tell
// the type of one never used), so every $n must have a value and every
// value its $n.
func (c *Checker) checkSQL(in *steps.Inside, ct *tmpl.CheckText) []*diag.Diagnostic {
	r := c.parsed(ct.Text)
	at := func(off int) diag.Pos { return in.Pos(ct.SourceOffset(off)) }
	if r.err != "" {
		return []*diag.Diagnostic{{Pos: at(r.errAt), Rule: diag.RuleSQLSyntax, Severity: diag.Error,
			Message: fmt.Sprintf("%s: %s (PostgreSQL's parser)%s", in.Field, strings.ReplaceAll(ct.Unmark(r.err), `""${{ }}""`, `"${{ }}"`), metaCommand(ct.Text, r.errAt))}}
	}
	var ds []*diag.Diagnostic
	for _, e := range r.bodyErrs {
		ds = append(ds, &diag.Diagnostic{Pos: at(e.at), Rule: diag.RuleSQLSyntax, Severity: diag.Error,
			Message: fmt.Sprintf("%s: PL/pgSQL body: %s (PostgreSQL's PL/pgSQL parser, which does not say where in the body)", in.Field, ct.Unmark(e.msg))})
	}
	if len(r.stmts) > 1 && (in.Field != "exec" || len(in.Args) > 0 || in.ArgsUnknown && len(r.params) > 0) {
		why := "query and unless are sent as a prepared statement"
		if in.Field == "exec" {
			why = "an exec with args: is sent as a prepared statement"
		}
		ds = append(ds, &diag.Diagnostic{Pos: at(skipSpace(ct.Text, r.stmts[1])), Rule: diag.RuleSQLStatements, Severity: diag.Error,
			Message: fmt.Sprintf("%s holds %d statements, but %s, which holds one: PostgreSQL refuses it (cannot insert multiple commands into a prepared statement); make each statement a step of its own", in.Field, len(r.stmts), why)})
	}
	used := map[int]bool{}
	for _, p := range r.params {
		n, digits := paramNumber(ct.Text, p)
		switch {
		case n == 0:
			ds = append(ds, &diag.Diagnostic{Pos: at(p), Rule: diag.RuleSQLArgs, Severity: diag.Error,
				Message: fmt.Sprintf("%s uses $%s, which no value can be bound to: parameters count from $1", in.Field, digits)})
			continue
		case n > maxParams:
			ds = append(ds, &diag.Diagnostic{Pos: at(p), Rule: diag.RuleSQLArgs, Severity: diag.Error,
				Message: fmt.Sprintf("%s uses $%s, but a statement has at most %d parameters", in.Field, digits, maxParams)})
			continue
		}
		if used[n] || in.ArgsUnknown {
			used[n] = true
			continue
		}
		used[n] = true
		if n > len(in.Args) {
			ds = append(ds, &diag.Diagnostic{Pos: at(p), Rule: diag.RuleSQLArgs, Severity: diag.Error,
				Message: fmt.Sprintf("%s uses $%d, but args: gives %s: add the value to args:", in.Field, n, values(len(in.Args)))})
		}
	}
	if in.ArgsUnknown {
		return ds
	}
	var unused []string
	for n := 1; n <= len(in.Args); n++ {
		if !used[n] {
			unused = append(unused, fmt.Sprintf("$%d", n))
		}
	}
	if len(unused) > 0 {
		ds = append(ds, &diag.Diagnostic{Pos: at(0), Rule: diag.RuleSQLArgs, Severity: diag.Error,
			Message: fmt.Sprintf("args: gives %s, but %s uses no %s: the driver sends as many values as the statement has parameters, and PostgreSQL cannot tell the type of one it never sees", values(len(in.Args)), in.Field, strings.Join(unused, ", "))})
	}
	return ds
}

// paramNumber reads the number of the $n at offset at of text: n, or
// maxParams+1 for one too large to count, and its digits as written.
func paramNumber(text string, at int) (int, string) {
	if at < 0 || at >= len(text) || text[at] != '$' {
		return 0, "?"
	}
	end := at + 1
	for end < len(text) && text[end] >= '0' && text[end] <= '9' {
		end++
	}
	digits := text[at+1 : end]
	n, ok := new(big.Int).SetString(digits, 10)
	if !ok {
		return 0, digits
	}
	if !n.IsInt64() || n.Int64() > maxParams {
		return maxParams + 1, digits
	}
	return int(n.Int64()), digits
}

// skipSpace returns the offset of the first character of text at or
// after off that is not white space or a comment: where a statement
// starts.
func skipSpace(text string, off int) int {
	for off < len(text) {
		switch {
		case strings.ContainsRune(" \t\r\n\f", rune(text[off])):
			off++
		case strings.HasPrefix(text[off:], "--"):
			i := strings.IndexByte(text[off:], '\n')
			if i < 0 {
				return len(text)
			}
			off += i + 1
		case strings.HasPrefix(text[off:], "/*"):
			i := strings.Index(text[off+2:], "*/")
			if i < 0 {
				return len(text)
			}
			off += i + 4
		default:
			return off
		}
	}
	return off
}

// metaCommand explains a syntax error on a psql meta-command (\set, \c):
// the text goes to the server, which knows no meta-commands.
func metaCommand(text string, errAt int) string {
	if errAt < len(text) && text[errAt] == '\\' {
		return ": a psql meta-command (\\set, \\c, ...) is not SQL; the sql step sends its text to the server, not to psql"
	}
	return ""
}

func values(n int) string {
	switch n {
	case 0:
		return "no value"
	case 1:
		return "1 value"
	}
	return fmt.Sprintf("%d values", n)
}
