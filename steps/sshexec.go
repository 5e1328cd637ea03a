package steps

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/expr-lang/expr/types"
	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/redact"

	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/internal/transport"
)

// SSHExec runs a command on a host.
var SSHExec Type = kind{decodeSSHExec, Descriptor{
	Name:   "ssh-exec",
	Doc:    "run a shell command on the host; values interpolated into the command are quoted for where they land (a word, inside double or single quotes, a here-document)",
	Result: types.Map{"stdout": types.String, "stderr": types.String, "exit_code": types.Int, "skipped": types.Bool, "truncated": types.Bool},
	Fields: []Field{
		{Name: "command", Kind: String, Required: true, Doc: "the command line, run with /bin/sh; each ${{ }} value is quoted for where it lands (a word, \"...\", '...', a here-document) and refused where no quoting is safe", Example: "pg_ctl promote -w -D ${{ vars.data_dir }}"},
		{Name: "become", Kind: Literal, Doc: "run as this user (overrides the step's become)", Example: "postgres"},
		{Name: "env", Kind: StringMap, Doc: "environment variables for the command; the place for secrets, never the command line"},
		{Name: "stdin", Kind: String, Doc: "text fed to the command's standard input", Example: "${{ secrets.token }}"},
		{Name: "creates", Kind: String, Doc: "skip the command when this path exists on the host", Example: "/var/lib/postgresql/15/main/standby.signal"},
		{Name: "unless", Kind: String, Doc: "skip the command when this read-only command exits 0", Example: "test -f /etc/example.conf"},
		{Name: "expect_exit", Kind: IntList, Doc: "exit codes that mean success", Default: []int{0}},
		{Name: "read_only", Kind: Bool, Doc: "the command changes nothing: plan runs it for real and the step reports ok, not changed"},
		{Name: "max_output", Kind: Literal, Doc: "the most kept of each of stdout and stderr: bytes, or with KiB, MiB or GiB; a command that only reads is stopped there and fails, naming the limit; one that changes things and exits as expected is done, its result cut (result.truncated) with a warning naming the limit (default 1MiB); to keep a large output, use capture", Example: "4MiB"},
		{Name: "idempotent", Kind: Bool, Doc: "running it twice has the effect of running it once, so a resume may run it again when a crash left its outcome unknown (without it, creates or unless, a resume stops and asks)"},
	},
}}

type sshExec struct {
	command, stdin, creates, unless *tmpl.Template
	env                             map[string]*tmpl.Template
	become                          string
	expectExit                      []int
	readOnly, idempotent            bool
	maxOutput                       int
}

// decodeSSHExec builds a step of the type from its body (Type.Decode).
func decodeSSHExec(d *Decoder, b Body) Step {
	s := &sshExec{expectExit: []int{0}, become: d.Literal(b.Get("become")), readOnly: d.Bool(b.Get("read_only")), idempotent: d.Bool(b.Get("idempotent"))}
	for _, f := range []struct {
		key string
		dst **tmpl.Template
	}{{"command", &s.command}, {"creates", &s.creates}, {"unless", &s.unless}} {
		k := f.key
		n := b.Get(k)
		if n == nil {
			continue
		}
		var t *tmpl.Template
		if k == "creates" {
			// A path, looked up without a shell.
			t = d.Template(n)
			d.RefuseSecret(n, t, diag.RuleSecretExposed, k, "a path is shown in messages and the journal, and in any listing of its directory; name the file otherwise")
		} else {
			t = d.TemplateIn(n, tmpl.Shell)
			d.RefuseSecret(n, t, diag.RuleSecretInCommand, k, "on a command line the host's process list shows it; pass it with env: or stdin:")
			if in := d.Inside(k, n, t, tmpl.Shell); in != nil {
				in.Env = mapKeys(b.Get("env"))
			}
		}
		*f.dst = t
	}
	s.stdin = d.Template(b.Get("stdin"))
	s.env = d.TemplateMap(b.Get("env"), "env")
	if e := b.Get("expect_exit"); e != nil {
		s.expectExit = d.IntList(e)
	}
	s.maxOutput = d.Size(b.Get("max_output"), "max_output", transport.DefaultMaxOutput)
	return s
}

func (s *sshExec) cmd(x *Exec) (*transport.Command, error) {
	line, err := s.command.Render(x.Env)
	if err != nil {
		return nil, err
	}
	// A command that only reads is stopped once it printed too much (it
	// may never end by itself: tail -f); one that changes things is not
	// cut short in the middle of its change.
	c := &transport.Command{Line: line, Become: x.Become, MaxOutput: s.maxOutput, StopAtLimit: s.readOnly}
	if s.become != "" {
		c.Become = s.become
	}
	if s.env != nil {
		if c.Env, err = Render(s.env, x.Env); err != nil {
			return nil, err
		}
		for k, v := range c.Env {
			if strings.IndexByte(v, 0) >= 0 {
				return nil, fmt.Errorf("env %s: the value holds a NUL byte, which no environment variable can carry", k)
			}
		}
	}
	if s.stdin != nil {
		in, err := s.stdin.Render(x.Env)
		if err != nil {
			return nil, err
		}
		c.Stdin = []byte(in)
	}
	return c, nil
}

func (s *sshExec) run(ctx context.Context, x *Exec, c *transport.Command) (Result, *transport.Output, error) {
	conn, err := x.Connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	out, err := conn.Run(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	if out.Truncated && c.StopAtLimit {
		return nil, nil, fmt.Errorf("the command printed more than max_output %s on stdout or stderr (a command that only reads is stopped there): raise max_output, or save the output with capture", FormatSize(outputLimit(c)))
	}
	return Result{
		"stdout":    string(out.Stdout),
		"stderr":    string(out.Stderr),
		"exit_code": out.ExitCode,
		"skipped":   false,
		"truncated": out.Truncated,
	}, out, nil
}

// outputLimit is the most of each output c keeps.
func outputLimit(c *transport.Command) int {
	if c.MaxOutput <= 0 {
		return transport.DefaultMaxOutput
	}
	return c.MaxOutput
}

// cutError is a command that printed more than its limit where a cut
// result cannot stand: an observation (a probe, unless), whose end may
// decide an assert, or a command that failed anyway.
func cutError(c *transport.Command, out *transport.Output) error {
	return &CutError{Limit: FormatSize(outputLimit(c)), Code: out.ExitCode}
}

// CutError is a command that printed more than its max_output and exited
// with a code it does not expect. Result is what it gave (cut, with
// result.truncated true), for failed_when to judge; nil for an
// observation.
type CutError struct {
	Limit  string
	Code   int
	Result Result
}

func (e *CutError) Error() string {
	return fmt.Sprintf("the command printed more than max_output %s on stdout or stderr (exit status %d): raise max_output, or save the output with capture", e.Limit, e.Code)
}

// Observed implements ResultError.
func (e *CutError) Observed() Result { return e.Result }

// Probe runs the command: in a guard or a wait-until probe the command is a
// read-only observation. A non-zero exit is a result, not an error.
func (s *sshExec) Probe(ctx context.Context, x *Exec) (Result, error) {
	c, err := s.cmd(x)
	if err != nil {
		return nil, err
	}
	r, out, err := s.run(ctx, x, c)
	if err == nil && out.Truncated {
		// Never a silent cut: an observation missing its end can pass an
		// assert it would fail.
		return nil, cutError(c, out)
	}
	return r, err
}

// skip reports whether creates or unless say the command has already done
// its work.
func (s *sshExec) skip(ctx context.Context, x *Exec) (string, error) {
	if s.creates != nil {
		path, err := s.creates.Render(x.Env)
		if err != nil {
			return "", err
		}
		conn, err := x.Connect(ctx)
		if err != nil {
			return "", err
		}
		_, err = conn.Stat(ctx, path)
		switch {
		case err == nil:
			return path + " exists", nil
		case !errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("creates: %w", err)
		}
	}
	if s.unless != nil {
		line, err := s.unless.Render(x.Env)
		if err != nil {
			return "", err
		}
		become := x.Become
		if s.become != "" {
			become = s.become
		}
		_, out, err := s.run(ctx, x, &transport.Command{Line: line, Become: become})
		if err == nil && out.Truncated {
			err = cutError(&transport.Command{}, out)
		}
		if err != nil {
			return "", fmt.Errorf("unless: %w", err)
		}
		if out.ExitCode == 0 {
			return "unless command succeeded", nil
		}
	}
	return "", nil
}

// Plan checks creates and unless; a read-only command runs for real.
func (s *sshExec) Plan(ctx context.Context, x *Exec) (*Plan, error) {
	c, err := s.cmd(x)
	if err != nil {
		return nil, err
	}
	why, err := s.skip(ctx, x)
	if err != nil {
		return nil, err
	}
	if why != "" {
		return &Plan{Skipped: true, Summary: "skip: " + why, Result: Result{"stdout": "", "stderr": "", "exit_code": 0, "skipped": true, "truncated": false}}, nil
	}
	if s.readOnly {
		r, err := s.apply(ctx, x, c)
		if err != nil {
			return nil, err
		}
		return &Plan{Summary: "ran read-only: " + c.Line, Result: r}, nil
	}
	return &Plan{Changes: true, Summary: "run: " + c.Line, State: c}, nil
}

// Apply runs the command.
func (s *sshExec) Apply(ctx context.Context, x *Exec, p *Plan) (Result, error) {
	c := *p.State.(*transport.Command)
	c.Started = x.Started
	return s.apply(ctx, x, &c)
}

func (s *sshExec) apply(ctx context.Context, x *Exec, c *transport.Command) (Result, error) {
	r, out, err := s.run(ctx, x, c)
	if err != nil {
		return nil, err
	}
	ok := slices.Contains(s.expectExit, out.ExitCode)
	switch {
	case out.Truncated && !ok:
		return nil, &CutError{Limit: FormatSize(outputLimit(c)), Code: out.ExitCode, Result: r}
	case out.Truncated:
		// The command ran to its end and made its change: the step is
		// done (a resume must not run it again), its result cut and said
		// so, never silently.
		if x.Warn != nil {
			lim := FormatSize(outputLimit(c))
			x.Warn(fmt.Sprintf("the command completed (exit status %d) but printed more than max_output %s on stdout or stderr: its result keeps the whole lines of the first %s of each (nothing of a line longer than that: a secret cut at the limit would show its start unmasked, so an output of one long line is left out whole), and result.truncated is true; raise max_output, or save the output with capture", out.ExitCode, lim, lim))
		}
		return r, nil
	}
	if !ok {
		return r, &ExitError{Code: out.ExitCode, Expected: s.expectExit, Stderr: lastLine(x.Redact, out.Stderr), Stdout: lastLine(x.Redact, out.Stdout), Result: r,
			Cut: moreLines(out.Stderr) || moreLines(out.Stdout)}
	}
	return r, nil
}

// ExitError is a command that exited with an unexpected code.
type ExitError struct {
	Code     int
	Expected []int
	// Stderr and Stdout are the last lines of each (redacted): the cause
	// may be on either (PostgreSQL's tools print some errors on stdout).
	Stderr, Stdout string
	// Result is what the command gave, for failed_when to judge.
	Result Result
	// Cut says Stderr or Stdout left lines out: the message says where
	// the whole output is.
	Cut bool
}

// Observed implements ResultError.
func (e *ExitError) Observed() Result { return e.Result }

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("exit status %d", e.Code)
	if len(e.Expected) != 1 || e.Expected[0] != 0 {
		msg += fmt.Sprintf(" (expected %v)", e.Expected)
	}
	switch {
	case e.Stderr != "" && e.Stdout != "":
		msg += ": stderr: " + e.Stderr + "; stdout: " + e.Stdout
	case e.Stderr != "":
		msg += ": " + e.Stderr
	case e.Stdout != "":
		msg += ": " + e.Stdout
	}
	if e.Cut {
		msg += " (the last lines; the whole output: " + ShowRunHint + " --output json)"
	}
	return msg
}

// moreLines says whether out has more non-empty lines than lastLine
// shows.
func moreLines(out []byte) bool {
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) != "" {
			n++
		}
	}
	return n > 3
}

// lastLine returns the last non-empty lines (up to three, joined) of the
// first output that has any: what a failed command last said is usually
// why it failed, and tools often add a line of cleanup after the error.
// Each output is redacted first: a secret of several lines, or one with
// blanks around it, would not be found once its lines are trimmed and
// joined.
func lastLine(red *redact.Redactor, outs ...[]byte) string {
	for _, o := range outs {
		var keep []string
		for _, l := range strings.Split(strings.TrimSpace(red.String(string(o))), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				keep = append(keep, l)
			}
		}
		if len(keep) > 3 {
			keep = keep[len(keep)-3:]
		}
		if len(keep) > 0 {
			// Redacted again once joined: the lines of a secret the
			// command split are one line again here.
			return red.String(strings.Join(keep, " / "))
		}
	}
	return ""
}

// MayChange implements Changer.
func (s *sshExec) MayChange() bool { return !s.readOnly }

// Idle implements Idler: the command is the word true, with nothing that
// could make it do more.
func (s *sshExec) Idle() bool {
	return s.command != nil && s.command.IsLiteral() && strings.TrimSpace(s.command.Source) == "true" &&
		s.stdin == nil && s.creates == nil && s.unless == nil && len(s.env) == 0
}

var _ Idler = (*sshExec)(nil)

// Rechecks implements Rechecker: creates and unless find a change
// already made; otherwise only the author can say the command is safe to
// repeat.
func (s *sshExec) Rechecks() bool {
	return s.readOnly || s.idempotent || s.creates != nil || s.unless != nil
}

// mapKeys returns the keys of a mapping node, nil for any other.
func mapKeys(n *yaml.Node) []string {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var out []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		out = append(out, n.Content[i].Value)
	}
	return out
}
