package cli_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/runbook-dev/runbook/internal/cli"
)

// TestValidateInterrupted: Ctrl-C (SIGINT) or SIGTERM while shellcheck
// runs ends validate with the exit status of an interruption, not of an
// internal error, and says so in plain words.
func TestValidateInterrupted(t *testing.T) {
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			fifo := filepath.Join(dir, "started")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			// A shellcheck that says it has started, then hangs.
			sc := fmt.Sprintf("#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'version: 0.9.0'; exit 0; fi\necho started > %s\nexec sleep 60\n", fifo)
			if err := os.WriteFile(filepath.Join(dir, "shellcheck"), []byte(sc), 0o700); err != nil {
				t.Fatal(err)
			}
			pb := filepath.Join(dir, "pb.yaml")
			if err := os.WriteFile(pb, []byte("version: 1\nname: t/slow\nsteps:\n  - id: a\n    ssh-exec: {command: \"echo $x\"}\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(linkRunbook(t, dir), "validate", "--no-cache", pb)
			cmd.Env = []string{"PATH=" + dir + ":/usr/bin:/bin", "HOME=" + dir}
			if out := interruptAt(t, cmd, fifo, sig); !strings.Contains(out, "validate was interrupted") || strings.Contains(out, "context canceled") {
				t.Errorf("output:\n%s\nwant the interruption said plainly", out)
			}
		})
	}
}

// linkRunbook links this test binary as runbook in dir and returns the
// link: the test binary runs cli.Main when it is called runbook
// (TestMain).
func linkRunbook(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "runbook")
	if err := os.Symlink(self, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// interruptAt starts cmd, sends it sig once it has reached what the test
// interrupts (it opened fifo to write), and checks that it then exits
// with ExitInterrupted; it returns what cmd printed.
func interruptAt(t *testing.T, cmd *exec.Cmd, fifo string, sig os.Signal) string {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(fifo); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != cli.ExitInterrupted {
		t.Fatalf("exit: %v, want %d\n%s", err, cli.ExitInterrupted, out.String())
	}
	return out.String()
}
