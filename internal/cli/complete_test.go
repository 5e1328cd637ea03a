package cli_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/runbook-dev/runbook/internal/cli"
	"github.com/runbook-dev/runbook/internal/testsshd"
)

// shell is an interactive bash on a terminal, with what it wrote so far.
type shell struct {
	t      *testing.T
	tty    *os.File
	mu     sync.Mutex
	out    bytes.Buffer
	wrote  chan struct{}
	marker int
	// echo is the command (a format of the mark) whose output, not its
	// echo, holds "done" and the mark.
	echo string
}

// startShell starts the shell prog with args on a terminal, in dir.
func startShell(t *testing.T, dir string, env []string, prog string, args ...string) *shell {
	t.Helper()
	path, err := exec.LookPath(prog)
	testsshd.Require(t, err == nil, prog+" is not installed")
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Env = env
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 250})
	if err != nil {
		t.Fatal(err)
	}
	s := &shell{t: t, tty: tty, wrote: make(chan struct{}, 1), echo: "echo done${x}%s"}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			s.mu.Lock()
			s.out.Write(buf[:n])
			s.mu.Unlock()
			select {
			case s.wrote <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_, _ = tty.Write([]byte("\x15exit\n"))
		_ = cmd.Wait()
		tty.Close()
		<-done
	})
	return s
}

// waitFor returns what the shell wrote up to and including want, and
// drops it from what is kept; it fails the test if want does not come
// within 20 s.
func (s *shell) waitFor(want string) string {
	s.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		s.mu.Lock()
		got := s.out.String()
		if i := strings.Index(got, want); i >= 0 {
			s.out.Next(i + len(want))
			s.mu.Unlock()
			return got[:i+len(want)]
		}
		s.mu.Unlock()
		select {
		case <-s.wrote:
		case <-deadline:
			s.t.Fatalf("the shell did not write %q; it wrote:\n%s", want, got)
		}
	}
}

func (s *shell) send(text string) {
	s.t.Helper()
	if _, err := s.tty.Write([]byte(text)); err != nil {
		s.t.Fatal(err)
	}
}

// prompt is the shell's prompt: typing starts once it shows, when bash
// reads the line with readline (before, the terminal's own line editing
// would take the tabs).
const prompt = "RUNBOOK-TEST> "

// complete types line and three tabs (the first may insert what the
// candidates share, the next two list them, as an operator would press), then clears the line and returns all
// the shell wrote meanwhile (the completed line and the candidates).
func (s *shell) complete(line string) string {
	s.t.Helper()
	s.send(line + "\t\t\t")
	// A command run after the tabs marks where their output ends: the
	// shell prints its result (not its echo) only once it has read them.
	s.marker++
	mark := strings.Repeat("=", s.marker)
	s.send("\x15" + fmt.Sprintf(s.echo, mark) + "\n")
	out := s.waitFor("done" + mark + "\r\n")
	// zsh marks a last line without a newline before its prompt.
	s.waitFor(prompt)
	return out
}

// listing is one completion: after line and TAB, the shell shows each of
// want and none of unwanted.
type listing struct {
	name, line     string
	want, unwanted []string
}

// checkListings checks each listing in a subtest of t.
func (s *shell) checkListings(t *testing.T, listings []listing) {
	for _, l := range listings {
		t.Run(l.name, func(t *testing.T) {
			s.t = t
			got := s.complete(l.line)
			for _, w := range l.want {
				if !strings.Contains(got, w) {
					t.Errorf("%s<TAB> does not show %q; the shell wrote:\n%q", l.line, w, got)
				}
			}
			for _, w := range l.unwanted {
				if strings.Contains(got, w) {
					t.Errorf("%s<TAB> shows %q; the shell wrote:\n%q", l.line, w, got)
				}
			}
		})
	}
}

// completionWorld is a directory with runbook in bin/ (the test binary,
// which runs cli.Main when called runbook), the completion scripts of
// every shell, an inventory and a state directory with two failed runs
// (resumable) and one finished.
type completionWorld struct {
	dir, bin, state     string
	resumable, finished []string
}

func newCompletionWorld(t *testing.T) *completionWorld {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	linkRunbook(t, bin)
	state := filepath.Join(dir, "state")
	t.Setenv("XDG_STATE_HOME", state)
	for _, shell := range []string{"bash", "zsh", "fish"} {
		var script bytes.Buffer
		if code := cli.Main([]string{"runbook", "completion", shell}, nil, &script, os.Stderr); code != cli.ExitOK {
			t.Fatalf("runbook completion %s: exit %d", shell, code)
		}
		if err := os.WriteFile(filepath.Join(dir, "runbook."+shell), script.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Two runs that failed (resumable) and one that finished (not).
	failing := "version: 1\nname: failing\nsteps:\n  - id: a\n    ssh-exec: {command: \"false\"}\n"
	ok := "version: 1\nname: fine\nsteps:\n  - id: a\n    ssh-exec: {command: \"true\"}\n"
	inv := "hosts:\n  dbnode-a: {address: 10.0.0.1}\n  dbnode-b: {address: 10.0.0.2}\n"
	for _, f := range []struct{ name, src string }{{"failing.yaml", failing}, {"fine.yaml", ok}, {"inv.yaml", inv}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, pb := range []string{"failing.yaml", "failing.yaml", "fine.yaml"} {
		var out bytes.Buffer
		cli.Main([]string{"runbook", "run", filepath.Join(dir, pb)}, nil, &out, &out)
	}
	var runs bytes.Buffer
	cli.Main([]string{"runbook", "runs"}, nil, &runs, os.Stderr)
	var resumable, finished []string
	for _, l := range strings.Split(runs.String(), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) > 3 && f[1] == "failing":
			resumable = append(resumable, f[0])
		case len(f) > 3 && f[1] == "fine":
			finished = append(finished, f[0])
		}
	}
	if len(resumable) != 2 || len(finished) != 1 {
		t.Fatalf("want two failed runs and one finished; runbook runs:\n%s", runs.String())
	}
	return &completionWorld{dir: dir, bin: bin, state: state, resumable: resumable, finished: finished}
}

// env is the shells' environment.
func (w *completionWorld) env() []string {
	return []string{"PATH=" + w.bin + ":" + os.Getenv("PATH"), "HOME=" + w.dir, "XDG_STATE_HOME=" + w.state,
		"PS1=" + prompt, "TERM=dumb", "INPUTRC=/dev/null", "LANG=C"}
}

// TestBashCompletion drives a real interactive bash on a terminal, with
// the script of runbook completion bash sourced, and presses TAB.
func TestBashCompletion(t *testing.T) {
	w := newCompletionWorld(t)
	resumable, finished := w.resumable, w.finished
	sh := startShell(t, w.dir, w.env(), "bash", "--norc", "--noprofile", "-i")
	// runbook's script uses the bash-completion package, as every
	// distribution's bash does once it is installed.
	const bashCompletion = "/usr/share/bash-completion/bash_completion"
	_, err := os.Stat(bashCompletion)
	testsshd.Require(t, err == nil, "the bash-completion package is not installed (apt-get install bash-completion)")
	sh.waitFor(prompt)
	sh.send("source " + bashCompletion + "; source runbook.bash; echo sourced${x}\n")
	sh.waitFor("sourced\r\n" + prompt)

	sh.checkListings(t, []listing{
		{name: "playbook name", line: "runbook run pg-ha/pro", want: []string{"pg-ha/promote-standby "}},
		{name: "params", line: "runbook run pg-ha/promote-standby -p ", want: []string{"standby=", "old_primary=", "layout=", "pg_version=", "port="}},
		// bash shows the part after "=" (a word break).
		{name: "enum values", line: "runbook plan pg-ha/promote-standby -p layout=", want: []string{"rhel", "pgdg", "debian", "auto"}},
		{name: "inventory hosts", line: "runbook run pg-ha/promote-standby -i inv.yaml -p standby=", want: []string{"dbnode-a", "dbnode-b"}},
		{name: "resumable runs", line: "runbook resume ", want: resumable, unwanted: finished[:1]},
		{name: "show-run lists every run", line: "runbook show-run ", want: finished[:1]},
	})
}

// TestZshCompletion drives a real interactive zsh on a terminal, with its
// completion system on and the script of runbook completion zsh sourced.
func TestZshCompletion(t *testing.T) {
	w := newCompletionWorld(t)
	sh := startShell(t, w.dir, w.env(), "zsh", "-f", "-i")
	sh.send("PS1='" + prompt + "'; autoload -U compinit; compinit -u; source runbook.zsh; echo sourced${x}\n")
	sh.waitFor("sourced\r\n")
	sh.waitFor(prompt)
	sh.checkListings(t, []listing{
		{name: "playbook name", line: "runbook run pg-ha/pro", want: []string{"pg-ha/promote-standby"}},
		{name: "params", line: "runbook run pg-ha/promote-standby -p ", want: []string{"standby=", "old_primary=", "the warm standby to promote"}},
		{name: "resumable runs", line: "runbook resume ", want: w.resumable, unwanted: w.finished[:1]},
	})
}

// TestFishCompletion drives a real interactive fish on a terminal, with
// the script of runbook completion fish sourced.
func TestFishCompletion(t *testing.T) {
	w := newCompletionWorld(t)
	// fish shows its list of candidates (its pager) only on a terminal
	// that can draw it.
	sh := startShell(t, w.dir, append(w.env(), "TERM=xterm"), "fish", "--no-config", "-i")
	sh.echo = "echo done(echo '%s')"
	sh.send("function fish_prompt; printf '%s' '" + prompt + "'; end; source runbook.fish; echo sourced(echo '=')\n")
	sh.waitFor("sourced=\r\n")
	sh.waitFor(prompt)
	// fish's pager shows what follows the candidates' common prefix, with
	// the description.
	var resumable []string
	for _, id := range w.resumable {
		resumable = append(resumable, id[len(id)-6:]+"  (failing failed)")
	}
	finished := w.finished[0]
	sh.checkListings(t, []listing{
		{name: "playbook name", line: "runbook run pg-ha/pro", want: []string{"pg-ha/promote-standby"}},
		{name: "params", line: "runbook run pg-ha/promote-standby -p ", want: []string{"standby=", "old_primary="}},
		{name: "resumable runs", line: "runbook resume ", want: resumable, unwanted: []string{finished[len(finished)-6:]}},
	})
}
