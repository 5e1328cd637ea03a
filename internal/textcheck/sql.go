package textcheck

import (
	"fmt"
	"strings"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/steps"
)

// sqlResult is what PostgreSQL's parser says of a text: a syntax error
// at a byte offset, or the $n parameters the statement refers to.
type sqlResult struct {
	err    string
	errAt  int
	params []sqlParam
}

// sqlParam is a $n in the statement, at a byte offset.
type sqlParam struct{ n, at int }

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

// checkSQL reports a syntax error in SQL text, and $n parameters that do
// not match args:. The driver sends exactly as many values as the
// statement has parameters, numbered from $1 without a gap (PostgreSQL
// cannot tell the type of one never used), so every $n must have a value
// and every value its $n.
func (c *Checker) checkSQL(in *steps.Inside, ct *tmpl.CheckText) []*diag.Diagnostic {
	r := c.parsed(ct.Text)
	at := func(off int) diag.Pos { return in.Pos(ct.SourceOffset(off)) }
	if r.err != "" {
		return []*diag.Diagnostic{{Pos: at(r.errAt), Rule: diag.RuleSQLSyntax, Severity: diag.Error,
			Message: fmt.Sprintf("%s: %s (PostgreSQL's parser)", in.Field, ct.Unmark(r.err))}}
	}
	if in.ArgsUnknown {
		return nil
	}
	var ds []*diag.Diagnostic
	used := map[int]bool{}
	for _, p := range r.params {
		if used[p.n] {
			continue
		}
		used[p.n] = true
		if p.n > len(in.Args) {
			ds = append(ds, &diag.Diagnostic{Pos: at(p.at), Rule: diag.RuleSQLArgs, Severity: diag.Error,
				Message: fmt.Sprintf("%s uses $%d, but args: gives %s: add the value to args:", in.Field, p.n, values(len(in.Args)))})
		}
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

func values(n int) string {
	switch n {
	case 0:
		return "no value"
	case 1:
		return "1 value"
	}
	return fmt.Sprintf("%d values", n)
}
