// Package textcheck reads what is inside a playbook's steps in their own
// languages: commands through shellcheck, SQL through PostgreSQL's own
// parser (pg_query). It is validate's alone: a run never looks inside.
//
// Values interpolated with ${{ }} are read as the stand-ins of
// tmpl.CheckText: quoted as runbook quotes them for the place they land
// in, so that a checker judges the text around them, not them. Findings
// are diagnostics at the position in the YAML file of the text they
// concern.
package textcheck

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/steps"
)

// Checker checks the texts of playbooks. It is safe for concurrent use:
// validate's workers call Check for many files at once, and a text seen
// before (the same command in many playbooks) is checked only once.
type Checker struct {
	shell *shellRunner // nil without shellcheck

	mu  sync.Mutex
	sql map[string]*sqlResult
}

// New returns a checker that runs the shellcheck program at shellcheck
// (an empty path skips the shell checks) until ctx ends or Close.
func New(ctx context.Context, shellcheck string) (*Checker, error) {
	c := &Checker{sql: map[string]*sqlResult{}}
	if shellcheck != "" {
		r, err := newShellRunner(ctx, shellcheck)
		if err != nil {
			return nil, err
		}
		c.shell = r
	}
	return c, nil
}

// ShellChecked reports whether commands are checked (shellcheck was
// found).
func (c *Checker) ShellChecked() bool { return c.shell != nil }

// SQLChecked reports whether SQL is parsed: PostgreSQL's parser is C code,
// linked only into a build with cgo.
func (c *Checker) SQLChecked() bool { return sqlParserLinked }

// Err returns the first failure of shellcheck itself (it could not be
// run, or gave no report), not of a text it checked.
func (c *Checker) Err() error {
	if c.shell == nil {
		return nil
	}
	return c.shell.failure()
}

// Close removes the checker's temporary files.
func (c *Checker) Close() error {
	if c.shell == nil {
		return nil
	}
	return c.shell.close()
}

// Check reads each text in its language and returns the findings, at
// their positions in the file (the caller sets the file's name).
func (c *Checker) Check(texts []*steps.Inside) []*diag.Diagnostic {
	type pending struct {
		in  *steps.Inside
		ct  *tmpl.CheckText
		job *shellJob
	}
	var shell, sql []pending
	var ds []*diag.Diagnostic
	// The shell texts go to shellcheck first, so that it runs while the
	// SQL is parsed here.
	for _, in := range texts {
		switch {
		case in.Lang == tmpl.Shell && c.shell != nil:
			if ct, ok := in.Template.CheckText(); ok {
				shell = append(shell, pending{in, ct, c.shell.submit(ct.Text)})
			}
		case in.Lang == tmpl.SQL && sqlParserLinked:
			if ct, ok := in.Template.CheckText(); ok {
				sql = append(sql, pending{in: in, ct: ct})
			}
		}
	}
	for _, p := range sql {
		ds = append(ds, c.checkSQL(p.in, p.ct)...)
	}
	for _, p := range shell {
		<-p.job.done
		for _, cm := range p.job.comments {
			if d := shellDiag(p.in, p.ct, cm); d != nil {
				ds = append(ds, d)
			}
		}
	}
	return ds
}

// shellDiag turns a shellcheck comment into a diagnostic, or nil for one
// that is not a problem in a playbook: a variable given by env: that
// the script reads without setting it.
func shellDiag(in *steps.Inside, ct *tmpl.CheckText, cm shellComment) *diag.Diagnostic {
	if cm.Code == 2154 {
		name, _, _ := strings.Cut(cm.Message, " ")
		for _, e := range in.Env {
			if e == name {
				return nil
			}
		}
	}
	sev := diag.Warning
	if cm.Level == "error" {
		sev = diag.Error
	}
	off := textOffset(ct.Text, cm.Line, cm.Column)
	return &diag.Diagnostic{
		Pos:      in.Pos(ct.SourceOffset(off)),
		Rule:     fmt.Sprintf("%sSC%04d", diag.RuleShellcheckPrefix, cm.Code),
		Severity: sev,
		Message:  ct.Unmark(cm.Message),
	}
}

// textOffset converts a 1-based line and column (in characters) of text
// to a byte offset. A position past the text's last character (where a
// parser reports what it expected at the end) is placed right after it.
func textOffset(text string, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(text[off:], '\n')
		if i < 0 {
			off = len(text)
			break
		}
		off += i + 1
	}
	for c := 1; c < col && off < len(text) && text[off] != '\n'; c++ {
		_, w := utf8.DecodeRuneInString(text[off:])
		off += w
	}
	return min(off, len(strings.TrimRight(text, " \t\r\n")))
}

// runeOffset converts a 1-based position in characters, as PostgreSQL
// reports errors, to a byte offset of text.
func runeOffset(text string, pos int) int {
	off := 0
	for c := 1; c < pos && off < len(text); c++ {
		_, w := utf8.DecodeRuneInString(text[off:])
		off += w
	}
	return min(off, len(strings.TrimRight(text, " \t\r\n")))
}
