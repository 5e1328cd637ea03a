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
	"slices"
	"strconv"
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
	shell  *shellRunner // nil without shellcheck
	limits Limits

	mu  sync.Mutex
	sql map[string]*sqlResult
}

// Config is what a Checker checks with.
type Config struct {
	// Shellcheck is the path of the shellcheck program; empty skips the
	// shell checks.
	Shellcheck string
	// Limits bound each shellcheck process; the zero value is
	// DefaultLimits.
	Limits Limits
	// CacheDir is where shellcheck's findings are kept between runs,
	// so that a text checked before is not checked again; empty keeps
	// none. CacheMax bounds its disk use (0: DefaultCacheMax).
	CacheDir string
	CacheMax int64
	// CacheTop is the directory the cache was given in (--cache-dir's,
	// the user's home). It is no longer used: CacheDir and every
	// directory above it up to / must be the user's (or root's) and
	// writable by no one else (sticky ones excepted), or the cache is
	// not used (CacheErr says why).
	CacheTop string
}

// New returns a checker that runs the shellcheck program at shellcheck
// (an empty path skips the shell checks) within DefaultLimits, with no
// cache between runs, until ctx ends.
func New(ctx context.Context, shellcheck string) *Checker {
	return NewWithConfig(ctx, Config{Shellcheck: shellcheck})
}

// NewWithLimits is New with limits of its own.
func NewWithLimits(ctx context.Context, shellcheck string, limits Limits) *Checker {
	return NewWithConfig(ctx, Config{Shellcheck: shellcheck, Limits: limits})
}

// NewWithConfig returns a checker made as cfg says, until ctx ends. Close
// it when done with it.
func NewWithConfig(ctx context.Context, cfg Config) *Checker {
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits
	}
	c := &Checker{sql: map[string]*sqlResult{}, limits: cfg.Limits}
	if cfg.Shellcheck != "" {
		c.shell = newShellRunner(ctx, cfg.Shellcheck, cfg.Limits)
		if cfg.CacheDir != "" {
			c.shell.results = newResultCache(cfg.CacheDir, cfg.CacheMax)
		}
	}
	return c
}

// Close trims the cache, when it is due (it is looked at by a run that
// wrote to it, once an hour at most unless the run wrote more than a
// quarter of the bound): past its bound, the entries used longest ago
// go. A checker with no cache has nothing to close.
func (c *Checker) Close() error {
	if c.shell == nil || c.shell.results == nil {
		return nil
	}
	defer c.shell.results.close()
	return c.shell.results.maybeTrim()
}

// Stats counts the distinct shell texts given to shellcheck, and those
// read from the cache instead.
func (c *Checker) Stats() Stats {
	if c.shell == nil {
		return Stats{}
	}
	c.shell.mu.Lock()
	defer c.shell.mu.Unlock()
	return c.shell.stats
}

// CacheErr returns why the cache was not used (its directory could not be
// made or is not private, or shellcheck would not say its version), or
// nil. The checks are whole without it: only the time they take suffers.
func (c *Checker) CacheErr() error {
	if c.shell == nil || c.shell.results == nil {
		return nil
	}
	return c.shell.results.failure()
}

// CacheWriteErr returns how many entries of the cache could not be
// written, and why the first could not (a full disk, a read-only
// directory); the entries read were used still.
func (c *Checker) CacheWriteErr() (int, error) {
	if c.shell == nil || c.shell.results == nil {
		return 0, nil
	}
	return c.shell.results.putFailure()
}

// ShellChecked reports whether commands are checked (shellcheck was
// found).
func (c *Checker) ShellChecked() bool { return c.shell != nil }

// SQLChecked reports whether SQL is parsed: PostgreSQL's parser is C code,
// linked only into a build with cgo.
func (c *Checker) SQLChecked() bool { return sqlParserLinked }

// SQLParserLinked is whether this build holds PostgreSQL's parser (cgo).
const SQLParserLinked = sqlParserLinked

// Err returns the first failure of shellcheck itself (it could not be
// run, or gave no report), not of a text it checked.
func (c *Checker) Err() error {
	if c.shell == nil {
		return nil
	}
	return c.shell.failure()
}

// Check reads each text in its language and returns the findings, at
// their positions in the file (the caller sets the file's name). A text
// reached from several places (a YAML alias, a << merge) is reported
// once.
func (c *Checker) Check(texts []*steps.Inside) []*diag.Diagnostic {
	type pending struct {
		in  *steps.Inside
		ct  *tmpl.CheckText
		job *shellJob
	}
	var shell, sql []pending
	var ds []*diag.Diagnostic
	var stepOf []string // the step of each of ds
	add := func(in *steps.Inside, more ...*diag.Diagnostic) {
		for _, d := range more {
			ds = append(ds, d)
			stepOf = append(stepOf, in.Step)
		}
	}
	// The shell texts go to shellcheck first, so that it runs while the
	// SQL is parsed here.
	for _, in := range texts {
		if d := nulByte(in); d != nil {
			add(in, d)
			continue
		}
		if in.Lang == tmpl.Shell {
			add(in, foldedComments(in)...)
		}
		ct, ok := in.Template.CheckText()
		switch {
		case !ok:
		case in.Lang == tmpl.Shell && c.shell != nil:
			if len(ct.Text) > c.limits.MaxText {
				add(in, &diag.Diagnostic{Pos: in.Pos(0), Rule: diag.RuleShellcheckLimit, Severity: diag.Warning,
					Message: fmt.Sprintf("this %s is %d KiB, over the %d KiB shellcheck is given: it is not checked (a script that long belongs in a file of its own, installed and checked as one)", in.Field, len(ct.Text)>>10, c.limits.MaxText>>10)})
				continue
			}
			shell = append(shell, pending{in, ct, c.shell.submit(ct.Text)})
		case in.Lang == tmpl.SQL && sqlParserLinked:
			sql = append(sql, pending{in: in, ct: ct})
		}
	}
	for _, p := range sql {
		add(p.in, c.checkSQL(p.in, p.ct)...)
	}
	for _, p := range shell {
		<-p.job.done
		if p.job.limit != "" {
			add(p.in, &diag.Diagnostic{Pos: p.in.Pos(0), Rule: diag.RuleShellcheckLimit, Severity: diag.Error,
				Message: fmt.Sprintf("shellcheck %s reading this %s and was stopped: it is not checked (simplify it, or silence this with # runbook:ignore %s)", p.job.limit, p.in.Field, diag.RuleShellcheckLimit)})
			continue
		}
		for _, cm := range p.job.comments {
			if d := shellDiag(p.in, p.ct, cm); d != nil {
				add(p.in, d)
			}
		}
	}
	return dedupe(ds, stepOf)
}

// dedupe drops a diagnostic equal to one before it: the findings of a
// text that several steps share through an alias (stepOf[i] names the
// step of ds[i]). The one kept names those steps, since its position is
// the anchor's, in one of them or in none.
func dedupe(ds []*diag.Diagnostic, stepOf []string) []*diag.Diagnostic {
	type key struct {
		pos           diag.Pos
		rule, message string
	}
	first := map[key]int{}
	sharing := map[int][]string{}
	out := ds[:0]
	for i, d := range ds {
		k := key{d.Pos, d.Rule, d.Message}
		j, seen := first[k]
		if !seen {
			first[k] = len(out)
			out = append(out, d)
			if stepOf[i] != "" {
				sharing[len(out)-1] = []string{stepOf[i]}
			}
			continue
		}
		if stepOf[i] != "" && !slices.Contains(sharing[j], stepOf[i]) {
			sharing[j] = append(sharing[j], stepOf[i])
		}
	}
	for j, names := range sharing {
		if len(names) > 1 {
			d := *out[j]
			d.Message += fmt.Sprintf(" (the text of steps %s, shared through a YAML anchor)", quotedList(names))
			out[j] = &d
		}
	}
	return out
}

// quotedList is "a" and "b", or "a", "b" and "c".
func quotedList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}

// nulByte reports a NUL byte in a text: no command line can hold one
// (exec refuses it), and PostgreSQL's parser stops reading at it.
func nulByte(in *steps.Inside) *diag.Diagnostic {
	i := strings.IndexByte(in.Template.Source, 0)
	if i < 0 {
		return nil
	}
	return &diag.Diagnostic{Pos: in.Pos(i), Rule: diag.RuleNULByte, Severity: diag.Error,
		Message: fmt.Sprintf("%s holds a NUL byte (\\0), which no command line and no SQL text can hold: remove it", in.Field)}
}

// foldedComments reports a shell comment in a folded (>) scalar that
// YAML joins with the line after it: the comment then runs to the end of
// that line too, and the shell never runs what it hides.
func foldedComments(in *steps.Inside) []*diag.Diagnostic {
	if !in.Folded() {
		return nil
	}
	src := in.Template.Source
	var ds []*diag.Diagnostic
	for _, at := range commentStarts(src) {
		end := strings.IndexByte(src[at:], '\n')
		if end < 0 {
			end = len(src) - at
		}
		end += at
		from, to := in.Pos(at), in.Pos(end-1)
		if from.Line != to.Line {
			ds = append(ds, &diag.Diagnostic{Pos: from, Rule: diag.RuleFoldedComment, Severity: diag.Warning,
				Message: fmt.Sprintf("this comment is folded (>) into the line after it, so it comments out what follows it up to line %d too, at run time as well: use a literal block (|), or a blank line after the comment", to.Line)})
		}
	}
	return ds
}

// commentStarts returns the offsets of the # that start a shell comment
// in text: at the start of a word, outside quotes.
func commentStarts(text string) []int {
	var at []int
	var quote byte
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			}
		case c == '\\':
			i++
		case quote == '"':
			if c == '"' {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '#' && (i == 0 || strings.IndexByte(" \t\n;&|()", text[i-1]) >= 0):
			at = append(at, i)
			for i < len(text) && text[i] != '\n' {
				i++
			}
		}
	}
	return at
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
