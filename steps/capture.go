package steps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/expr-lang/expr/types"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/internal/transport"
)

// Capture saves a remote file, or what a command prints, to a local file
// per host: diagnostics collected from a fleet.
var Capture Type = kind{decodeCapture, Descriptor{
	Name:   "capture",
	Doc:    "save a remote file, or a command's standard output, to a local file on this machine (one per host: put ${{ host.name }} in dest), written atomically; more than max_size is an error, never a cut",
	Result: types.Map{"dest": types.String, "bytes": types.Int, "checksum": types.String, "source": types.String},
	Fields: []Field{
		{Name: "path", Kind: String, Doc: "the remote file to save (one of path and command)", Example: "/var/log/postgresql/postgresql-15-main.log"},
		{Name: "command", Kind: String, Doc: "a read-only command whose standard output is saved (one of path and command); a non-zero exit fails the step", Example: "journalctl -u postgresql@15-main -n 500 --no-pager"},
		{Name: "dest", Kind: String, Required: true, Doc: "the local file to write (its directories are created, mode 0700; the file 0600, replaced atomically); relative to the working directory of the run's first attempt (a resume writes there too)", Example: "diag/${{ host.name }}/postgresql.log"},
		{Name: "max_size", Kind: Literal, Doc: "the most it saves: bytes, or with KiB, MiB or GiB; more is an error naming the limit, never a silent cut (default 16MiB)", Example: "64MiB"},
		{Name: "become", Kind: Literal, Doc: "read as this user (overrides the step's become)", Example: "postgres"},
	},
}}

// DefaultCaptureMax bounds what capture saves when max_size is not given.
const DefaultCaptureMax = 16 << 20

type capture struct {
	path, command, dest *tmpl.Template
	max                 int
	become              string
	// dests are the files this run's hosts write, by host: two hosts
	// writing one file would overwrite each other.
	destMu sync.Mutex
	dests  map[string]string
}

// decodeCapture builds a step of the type from its body (Type.Decode).
func decodeCapture(d *Decoder, b Body) Step {
	s := &capture{become: d.Literal(b.Get("become"))}
	p, c := b.Get("path"), b.Get("command")
	switch {
	case p != nil && c != nil:
		d.Errorf(c, diag.RuleInvalidValue, "capture takes path or command, not both")
	case p == nil && c == nil:
		d.Errorf(b.Node, diag.RuleMissingField, "capture needs path (a remote file) or command (whose output is saved)")
	}
	if p != nil {
		s.path = d.Template(p)
		d.RefuseSecret(p, s.path, diag.RuleSecretExposed, "path", "a path is shown in messages and the journal")
	}
	if c != nil {
		s.command = d.TemplateIn(c, tmpl.Shell)
		d.RefuseSecret(c, s.command, diag.RuleSecretInCommand, "command", "on a command line the host's process list shows it")
		d.Inside("command", c, s.command, tmpl.Shell)
	}
	if n := b.Get("dest"); n != nil {
		s.dest = d.Template(n)
		d.RefuseSecret(n, s.dest, diag.RuleSecretExposed, "dest", "a path is shown in messages and the journal")
		if _, e := s.dest.Leading(); e != nil && (len(e.Steps) > 0 || strings.Contains(e.Source, "facts")) {
			d.Diags.Warnf(Pos(n), diag.RuleInvalidValue, "dest begins with ${{ %s }}, a value a host gives: should it come out absolute, the capture is refused (a host must not pick a file on this machine); begin dest with a directory, written here or a param (${{ params.dir }}/...)", strings.TrimSpace(e.Source))
		}
	}
	s.max = d.Size(b.Get("max_size"), "max_size", DefaultCaptureMax)
	return s
}

// ParseSize reads a size: bytes, or a number with KiB, MiB or GiB.
func ParseSize(v string) (int, error) {
	num, unit := strings.TrimSpace(v), 1
	for _, u := range []struct {
		suffix string
		n      int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(num, u.suffix) {
			num, unit = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.n
			break
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > (1<<40)/unit {
		return 0, fmt.Errorf("%q is not a size such as 1048576, 512KiB or 16MiB", v)
	}
	return n * unit, nil
}

// FormatSize writes a size as ParseSize reads it, in the largest unit
// that divides it.
func FormatSize(n int) string {
	for _, u := range []struct {
		suffix string
		n      int
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n%u.n == 0 {
			return strconv.Itoa(n/u.n) + u.suffix
		}
	}
	return strconv.Itoa(n) + " bytes"
}

// absoluteByPlaybook says whether dest may be absolute: it begins with /
// in the playbook's own text, or with a param (the operator's, or an
// including playbook's, which never come from a host). A dest that begins
// with any other value (a fact, a step's result: what a host printed)
// must not pick a file anywhere on this machine.
func (s *capture) absoluteByPlaybook() bool {
	lit, e := s.dest.Leading()
	if e == nil {
		return strings.HasPrefix(lit, "/")
	}
	p := e.Path()
	return len(p) == 2 && p[0] == "params"
}

// target renders what to read and where to write it.
type captureTarget struct {
	cmd    *transport.Command
	source string
	dest   string
}

func (s *capture) render(x *Exec) (*captureTarget, error) {
	dest, err := s.dest.Render(x.Env)
	if err != nil {
		return nil, fmt.Errorf("dest: %w", err)
	}
	if dest == "" {
		return nil, errors.New("dest is empty")
	}
	// A value from a host (a fact, a result) must not lead the file out of
	// the directory the playbook names, nor give it a name no one can type.
	if i := strings.IndexFunc(dest, unicode.IsControl); i >= 0 {
		return nil, fmt.Errorf("dest %q has a control character (%q): a value in it made a file name no one can read or type; trim the value; nothing was saved", dest, dest[i:i+1])
	}
	for _, part := range strings.Split(filepath.ToSlash(dest), "/") {
		if part == ".." {
			return nil, fmt.Errorf("dest %s has a .. element: a value in it would write outside the directory the playbook names; nothing was saved", dest)
		}
	}
	if filepath.IsAbs(dest) && !s.absoluteByPlaybook() {
		return nil, fmt.Errorf("dest %s is absolute because of the value it begins with, which may come from a host (a fact, a result) and so name any file on this machine: begin dest with the directory, written in the playbook (/srv/diag/...) or given as a param (${{ params.dir }}/...), or make it relative; nothing was saved", dest)
	}
	if !filepath.IsAbs(dest) && x.LocalDir != "" {
		dest = filepath.Join(x.LocalDir, dest)
	}
	s.destMu.Lock()
	if s.dests == nil {
		s.dests = map[string]string{}
	}
	key := filepath.Clean(dest)
	if other, taken := s.dests[key]; taken && other != x.Host.Name {
		s.destMu.Unlock()
		return nil, fmt.Errorf("dest %s is the file %s writes too: each host would overwrite the other's; put ${{ host.name }} in dest", dest, other)
	}
	s.dests[key] = x.Host.Name
	s.destMu.Unlock()
	become := x.Become
	if s.become != "" {
		become = s.become
	}
	// One byte past the limit tells a file of exactly the limit from a
	// larger one; head stops reading there, so a huge file costs little.
	c := &transport.Command{Become: become, MaxOutput: s.max + 1, StopAtLimit: true}
	var source string
	if s.path != nil {
		p, err := s.path.Render(x.Env)
		if err != nil {
			return nil, fmt.Errorf("path: %w", err)
		}
		c.Line = "head -c " + strconv.Itoa(s.max+1) + " -- " + tmpl.ShellQuote(p)
		source = p
	} else {
		line, err := s.command.Render(x.Env)
		if err != nil {
			return nil, fmt.Errorf("command: %w", err)
		}
		c.Line, source = line, "the output of "+line
	}
	return &captureTarget{cmd: c, source: source, dest: dest}, nil
}

// Probe reads what would be saved, without saving it (nor holding it:
// it is counted and hashed as it arrives).
func (s *capture) Probe(ctx context.Context, x *Exec) (Result, error) {
	t, err := s.render(x)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	cw := &countingWriter{w: h}
	if err := s.read(ctx, x, t, cw); err != nil {
		return nil, err
	}
	return captureResult(t, cw.n, h), nil
}

// Plan says what would be saved where; it reads nothing.
func (s *capture) Plan(ctx context.Context, x *Exec) (*Plan, error) {
	t, err := s.render(x)
	if err != nil {
		return nil, err
	}
	return &Plan{Changes: true, Summary: fmt.Sprintf("save %s from %s to %s (at most %s)", t.source, x.Host.Name, t.dest, FormatSize(s.max)), State: t}, nil
}

// Apply reads and saves: the output goes to a temporary file beside dest
// as it arrives (max_size may be large: it is never held in memory),
// which replaces dest once it is whole and within max_size.
func (s *capture) Apply(ctx context.Context, x *Exec, p *Plan) (Result, error) {
	t := p.State.(*captureTarget)
	f := &localFile{dest: t.dest}
	defer f.discard()
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(f, h)}
	if err := s.read(ctx, x, t, cw); err != nil {
		return nil, err
	}
	if err := f.commit(); err != nil {
		return nil, err
	}
	return captureResult(t, cw.n, h), nil
}

// read runs the capture's command with its output going to w, and fails
// when it printed more than max_size or failed.
func (s *capture) read(ctx context.Context, x *Exec, t *captureTarget, w *countingWriter) error {
	conn, err := x.Connect(ctx)
	if err != nil {
		return err
	}
	c := *t.cmd
	c.Stdout = w
	out, err := conn.Run(ctx, &c)
	if err != nil {
		return err
	}
	// Over the limit first: a command stopped there ends by a signal.
	if out.Truncated || w.n > s.max {
		return fmt.Errorf("%s is larger than max_size %s: nothing was saved (raise max_size, or capture less)", t.source, FormatSize(s.max))
	}
	if out.ExitCode != 0 {
		return fmt.Errorf("reading %s: exit status %d: %s", t.source, out.ExitCode, lastLine(x.Redact, out.Stderr))
	}
	return w.err
}

func captureResult(t *captureTarget, n int, h hash.Hash) Result {
	return Result{"dest": t.dest, "bytes": n, "checksum": hex.EncodeToString(h.Sum(nil)), "source": t.source}
}

// countingWriter counts what it passes on, and keeps its first error.
type countingWriter struct {
	w   io.Writer
	n   int
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += len(p)
	if c.err == nil {
		_, c.err = c.w.Write(p)
	}
	return len(p), nil
}

// localFile replaces a local file atomically: what is written goes to a
// temporary file beside it (created on the first write, so that a read
// that fails before any output leaves nothing), which commit syncs and
// renames over it, then syncs the directory. A reader sees the old file
// or the whole new one, never a part.
type localFile struct {
	dest string
	f    *os.File
}

func (l *localFile) open() error {
	if l.f != nil {
		return nil
	}
	dir := filepath.Dir(l.dest)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("dest: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(l.dest)+".tmp-*")
	if err != nil {
		return fmt.Errorf("dest: %w", err)
	}
	l.f = f
	return nil
}

func (l *localFile) Write(p []byte) (int, error) {
	if err := l.open(); err != nil {
		return 0, err
	}
	return l.f.Write(p)
}

// commit puts the file in place (an empty one when nothing was written).
func (l *localFile) commit() error {
	if err := l.open(); err != nil {
		return err
	}
	err := l.f.Sync()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(l.f.Name(), l.dest)
	}
	if err != nil {
		return fmt.Errorf("dest %s: %w", l.dest, err)
	}
	l.f = nil
	if d, err := os.Open(filepath.Dir(l.dest)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// discard removes the temporary file of a capture that was not
// committed.
func (l *localFile) discard() {
	if l.f != nil {
		l.f.Close()
		os.Remove(l.f.Name())
	}
}

// MayChange implements Changer: capture changes no host.
func (s *capture) MayChange() bool { return false }

// Rechecks implements Rechecker: saving again replaces the file whole.
func (s *capture) Rechecks() bool { return true }
