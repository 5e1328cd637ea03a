package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/runbook-dev/runbook/internal/cli"
)

const gatedPlaybook = `version: 1
name: gated
params:
  dir: {type: string}
  node: {type: string, default: pg2}
confirm:
  text: Work in ${{ params.dir }}?
  word: ${{ params.node }}
steps:
  - id: first
    ssh-exec:
      command: touch ${{ params.dir }}/first
      creates: ${{ params.dir }}/first
  - id: evidence
    ssh-exec: {command: "echo timeline 7", read_only: true}
  - id: promote
    name: promote the node
    confirm:
      text: |
        Promote ${{ params.node }}? Evidence: ${{ steps.evidence.result.stdout }}
      word: ${{ params.node }}
    ssh-exec:
      command: touch ${{ params.dir }}/promoted
      creates: ${{ params.dir }}/promoted
`

// terminal is the operator's side of a pseudo-terminal: what runbook
// writes on it, and the keys typed.
type terminal struct {
	ptmx, tty *os.File
	mu        sync.Mutex
	seen      bytes.Buffer
	done      chan int
}

// openTerminal opens a pseudo-terminal, or skips the test where there is
// none, and reads what is written on it until it is closed.
func openTerminal(t *testing.T) *terminal {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	m := &terminal{ptmx: ptmx, tty: tty, done: make(chan int, 1)}
	go m.read()
	return m
}

func (m *terminal) close() {
	m.tty.Close()
	m.ptmx.Close()
}

// start runs runbook with args in the background, on the terminal (its
// input and its errors) with out for its output.
func (m *terminal) start(args []string, out *bytes.Buffer) {
	go func() {
		m.done <- cli.Main(append([]string{"runbook"}, args...), m.tty, out, m.tty)
	}()
}

// exitCode waits a while for the run start began to end, and returns its
// exit code.
func (m *terminal) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case code := <-m.done:
		return code
	case <-time.After(30 * time.Second):
		t.Fatalf("the run did not end; the terminal shows:\n%s", m.text())
	}
	return 0
}

func (m *terminal) read() {
	buf := make([]byte, 4096)
	for {
		n, err := m.ptmx.Read(buf)
		m.mu.Lock()
		m.seen.Write(buf[:n])
		m.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (m *terminal) text() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seen.String()
}

// waitFor waits a little for s to be on the screen.
func (m *terminal) waitFor(s string) {
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(m.text(), s) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConfirmOnTerminal answers the gates of a run on a real
// pseudo-terminal: the right word goes on, a wrong word or the end of the
// input (Ctrl-D) stops the run before the step's change, and each answer
// is journaled with the operator.
func TestConfirmOnTerminal(t *testing.T) {
	for _, tc := range []struct {
		name, keys, want string
		ok               bool
	}{
		{"right word", "pg2\r", `confirmed \[3\] promote the node \[localhost\]: typed "pg2", by \S+@\S+`, true},
		{"wrong word", "pg1\r", `refused \[3\] promote the node \[localhost\]: typed "pg1" where "pg2" was asked for, by \S+@\S+`, false},
		{"end of input", "\x04", `refused \[3\] promote the node \[localhost\]: no answer where "pg2" was asked for, by \S+@\S+`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pbFile := filepath.Join(dir, "gated.yaml")
			if err := os.WriteFile(pbFile, []byte(gatedPlaybook), 0o600); err != nil {
				t.Fatal(err)
			}
			term := openTerminal(t)
			defer term.close()
			state := filepath.Join(dir, "state")
			var out bytes.Buffer
			term.start([]string{"run", pbFile, "-p", "dir=" + dir, "--state-dir", state}, &out)
			term.ask(t, "Type pg2 to continue: ", 1, "pg2\r")
			term.ask(t, "Type pg2 to continue: ", 2, tc.keys)
			code := term.exitCode(t)
			// The terminal's reader may not have read the run's last lines
			// yet when Main returns.
			if !tc.ok {
				term.waitFor(`where "pg2" was asked for`)
			}
			screen := term.text()
			for _, want := range []string{"Work in " + dir + "?", "Promote pg2? Evidence: timeline 7", "The step will: run: touch "} {
				if !strings.Contains(screen, want) {
					t.Errorf("the terminal does not show %q:\n%s", want, screen)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "first")); err != nil {
				t.Errorf("the step before the gate did not run: %v", err)
			}
			_, err := os.Stat(filepath.Join(dir, "promoted"))
			if tc.ok && (code != cli.ExitOK || err != nil) {
				t.Fatalf("exit %d, promoted: %v; terminal:\n%s\noutput:\n%s", code, err, screen, out.String())
			}
			if !tc.ok {
				if code != cli.ExitFailed || err == nil {
					t.Fatalf("exit %d, promoted: %v; want exit 1 and no change; terminal:\n%s", code, err, screen)
				}
				// The run has ended, but the terminal's reader may not have
				// read its last words yet.
				term.waitFor(`where "pg2" was asked for`)
				screen = term.text()
				if !strings.Contains(screen, `not confirmed:`) || !strings.Contains(screen, `where "pg2" was asked for`) {
					t.Errorf("the refusal does not say what was expected:\n%s", screen)
				}
			}
			checkShowRun(t, state, tc.want)
		})
	}
}

// checkShowRun checks that show-run of the only run in state has a line
// matching want, and the journaled answer to the playbook's gate.
func checkShowRun(t *testing.T, state, want string) {
	t.Helper()
	ids, _ := filepath.Glob(filepath.Join(state, "runs", "*.journal"))
	if len(ids) != 1 {
		t.Fatalf("runs: %v", ids)
	}
	id := strings.TrimSuffix(filepath.Base(ids[0]), ".journal")
	var out, errb bytes.Buffer
	if code := cli.Main([]string{"runbook", "show-run", id, "--state-dir", state}, nil, &out, &errb); code != 0 {
		t.Fatalf("show-run: %d %s", code, errb.String())
	}
	for _, re := range []string{`confirmed before the first step: typed "pg2", by \S+@\S+`, want} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("show-run has no line matching %s:\n%s", re, out.String())
		}
	}
}

// ask waits until prompt is on the screen for the n-th time, then types
// keys.
func (m *terminal) ask(t *testing.T, prompt string, n int, keys string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(m.text(), prompt) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%q never asked (%d); the terminal shows:\n%s", prompt, n, m.text())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := m.ptmx.Write([]byte(keys)); err != nil {
		t.Fatal(err)
	}
}

// TestConfirmResumeAfterRefusal: a rolling restart whose gate names each
// host, answered for a and refused for b, is resumed: the resume asks b's
// gate again (a's answer does not cover b, and a refusal is never taken
// as an approval), then c's, in a batch and in a plain hosts: step.
func TestConfirmResumeAfterRefusal(t *testing.T) {
	for name, body := range map[string]string{
		"batch": `  - name: Restart each
    hosts: [all]
    serial: 1
    steps:
      - id: restart
        confirm: {text: "restart ${{ host.name }}?", word: "${{ host.name }}"}
        ssh-exec: {command: "echo ${{ host.name }} >> ${{ params.dir }}/restarts"}
`,
		"hosts": `  - id: restart
    hosts: [all]
    parallel: 1
    confirm: {text: "restart ${{ host.name }}?", word: "${{ host.name }}"}
    ssh-exec: {command: "echo ${{ host.name }} >> ${{ params.dir }}/restarts"}
`} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			pbFile, inv := filepath.Join(dir, "roll.yaml"), filepath.Join(dir, "inv.yaml")
			pb := "version: 1\nname: roll\nparams:\n  dir: {type: string}\nsteps:\n" + body
			if err := os.WriteFile(pbFile, []byte(pb), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(inv, []byte("defaults: {transport: local}\nhosts:\n  a: {}\n  b: {}\n  c: {}\ngroups:\n  all: [a, b, c]\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			state := filepath.Join(dir, "state")
			drive := func(args []string, answers ...[2]string) (int, string) {
				term := openTerminal(t)
				defer term.close()
				var out bytes.Buffer
				term.start(append(args, "--state-dir", state), &out)
				seen := map[string]int{}
				for _, a := range answers {
					seen[a[0]]++
					term.ask(t, "Type "+a[0]+" to continue: ", seen[a[0]], a[1]+"\r")
				}
				code := term.exitCode(t)
				return code, term.text() + out.String()
			}
			code, screen := drive([]string{"run", pbFile, "-i", inv, "-p", "dir=" + dir}, [2]string{"a", "a"}, [2]string{"b", "no"})
			if code != cli.ExitFailed {
				t.Fatalf("run: exit %d, want 1 (b refused):\n%s", code, screen)
			}
			ids, _ := filepath.Glob(filepath.Join(state, "runs", "*.journal"))
			if len(ids) != 1 {
				t.Fatalf("runs: %v", ids)
			}
			id := strings.TrimSuffix(filepath.Base(ids[0]), ".journal")
			code, screen = drive([]string{"resume", id}, [2]string{"b", "b"}, [2]string{"c", "c"})
			if code != cli.ExitOK {
				t.Fatalf("resume: exit %d:\n%s", code, screen)
			}
			if strings.Contains(screen, "Type a to continue") {
				t.Errorf("a's gate, passed and acted on, was asked again:\n%s", screen)
			}
			if got, _ := os.ReadFile(filepath.Join(dir, "restarts")); string(got) != "a\nb\nc\n" {
				t.Errorf("restarts %q, want a, b, c once each", got)
			}
		})
	}
}
