package steps_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/testsshd"
)

func TestSSHExecOptions(t *testing.T) {
	dir := t.TempDir()
	src := taking("exec", "dir", `steps:
  - id: once
    ssh-exec:
      command: echo ran >> ${{ params.dir }}/log; touch ${{ params.dir }}/done
      creates: ${{ params.dir }}/done
  - id: unless
    ssh-exec:
      command: echo ran-unless >> ${{ params.dir }}/log
      unless: grep -q ran-unless ${{ params.dir }}/log
  - id: grep
    ssh-exec:
      command: grep -c nothing-here ${{ params.dir }}/log
      expect_exit: [0, 1]
      read_only: true
    assert: result.exit_code == 1 && trim(result.stdout) == "0"
  - id: stdin
    ssh-exec:
      command: tr a-z A-Z
      stdin: hello
      read_only: true
    assert: result.stdout == "HELLO"
`)
	p := map[string]string{"dir": dir}
	for i := 0; i < 2; i++ {
		if _, err := runPlaybook(t, src, runOpts{params: p}); err != nil {
			t.Fatal(err)
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, "log"))
	if string(log) != "ran\nran-unless\n" {
		t.Errorf("log after two runs: %q", log)
	}
	_, err := runPlaybook(t, strings.Replace(src, "expect_exit: [0, 1]", "expect_exit: [0]", 1), runOpts{params: p})
	if err == nil || !strings.Contains(err.Error(), `step "grep" on localhost: exit status 1`) {
		t.Errorf("unexpected exit: %v", err)
	}
}

// TestSSHExecOutputs: a command that prints more than max_output (1MiB
// unless raised) fails naming the limit, one within a raised limit gives
// all it printed, and a command that fails shows the tails of both its
// outputs.
func TestSSHExecOutputs(t *testing.T) {
	for _, c := range []struct {
		name, step string
		// want is in the run's error; "" when the run ends well.
		want string
	}{
		{"big", `{command: "head -c 4194304 /dev/zero", read_only: true}`, `step "big" on localhost: the command printed more than max_output 1MiB`},
		{"raised", `{command: "head -c 4194304 /dev/zero | tr '\\0' x", read_only: true, max_output: 4MiB}
    assert: len(result.stdout) == 4194304`, ""},
		{"pg", `{command: "echo 'FATAL:  invalid value for parameter \"shared_buffers\": \"12XB\"'; echo 'pg_ctl: could not start server' >&2; exit 1", read_only: true}`, `exit status 1: stderr: pg_ctl: could not start server; stdout: FATAL:  invalid value for parameter "shared_buffers": "12XB"`},
	} {
		_, err := runPlaybook(t, "version: 1\nname: outputs\nsteps:\n  - id: "+c.name+"\n    ssh-exec: "+c.step+"\n", runOpts{})
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}

// TestSSHExecOneConnection: every step on a host shares one SSH
// connection: the client port sshd reports is the same in every session.
func TestSSHExecOneConnection(t *testing.T) {
	s := testsshd.Start(t)
	var b strings.Builder
	b.WriteString("version: 1\nname: many\nsteps:\n")
	var same []string
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&b, "  - id: s%d\n    host: pg1\n    ssh-exec: {command: 'echo $SSH_CONNECTION | cut -d\" \" -f2', read_only: true}\n", i)
		if i > 0 {
			same = append(same, fmt.Sprintf("steps.s%d.result.stdout == steps.s0.result.stdout", i))
		}
	}
	fmt.Fprintf(&b, "  - id: check\n    host: pg1\n    ssh-exec: {command: 'true', read_only: true}\n    assert: len(steps.s0.result.stdout) > 1 && %s\n", strings.Join(same, " && "))
	ev, err := runPlaybook(t, b.String(), runOpts{inv: s.Inventory("pg1")})
	if err != nil {
		t.Fatal(err)
	}
	if ev.end("check").Status != engine.StatusOK {
		t.Errorf("check: %s %s", ev.end("check").Status, ev.end("check").Message)
	}
}
