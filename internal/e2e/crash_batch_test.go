package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// batchCrashPlaybook restarts four local hosts one at a time with a
// command that cannot tell whether it ran (it appends a line), each
// followed by a health check. a's restart changes nothing (when), so
// that the crash point of step 1's change is b's, in the second batch.
const batchCrashPlaybook = `version: 1
name: crash/rolling
params:
  dir: {type: string}
steps:
  - name: Restart each node in turn
    hosts: [all]
    serial: 1
    steps:
      - id: restart
        when: host.name != "a"
        ssh-exec: {command: "echo ${{ host.name }} >> ${{ params.dir }}/restarts"}
      - id: healthy
        ssh-exec: {command: "true", read_only: true}
`

const batchCrashInventory = `defaults: {transport: local}
hosts:
  a: {}
  b: {}
  c: {}
  d: {}
groups:
  all: [a, b, c, d]
`

// TestCrashBatchPowerCut plays a power cut while a rolling restart
// restarts b (killed once b's restart is made, the journal cut back to
// what was synced, resumed after a "reboot"): the mark that covers the
// batch's steps must not put c and d, which no step reached, in doubt.
// The resume asks about b's restart alone; answered that it was made
// (--skip-in-doubt), it restarts c and d, each once, as a run never
// interrupted does.
func TestCrashBatchPowerCut(t *testing.T) {
	dir := t.TempDir()
	pb := filepath.Join(dir, "rolling.yaml")
	inv := filepath.Join(dir, "inventory.yaml")
	if err := os.WriteFile(pb, []byte(batchCrashPlaybook), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inv, []byte(batchCrashInventory), 0o600); err != nil {
		t.Fatal(err)
	}
	synclog := filepath.Join(dir, "synclog")
	runbook := func(crash string, extra []string, args ...string) (killed bool, code int, stderr string) {
		cmd := exec.Command(runbookBin, args...)
		cmd.Dir = dir
		cmd.Env = append(append(os.Environ(), "XDG_STATE_HOME="+filepath.Join(dir, "state"), "RUNBOOK_CRASHPOINT="+crash, "NO_COLOR=1",
			"RUNBOOK_SYNCLOG="+synclog), extra...)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			ws, ok := ee.Sys().(syscall.WaitStatus)
			return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL, ee.ExitCode(), errb.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return false, 0, errb.String()
	}
	killed, code, stderr := runbook("applied:1", nil, "run", pb, "-i", inv, "-p", "dir="+dir)
	if !killed {
		t.Fatalf("not killed at b's restart: exit %d\n%s", code, stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "restarts")); string(got) != "b\n" {
		t.Fatalf("restarts before the cut: %q, want b's", got)
	}
	journal, id := onlyJournal(t, dir)
	synced, log := syncedLength(synclog, journal)
	if synced < 0 {
		t.Fatalf("nothing of the journal was synced: %q", log)
	}
	if err := os.Truncate(journal, synced); err != nil {
		t.Fatal(err)
	}
	reboot := []string{"RUNBOOK_BOOT_ID=after-the-power-cut"}
	_, code, stderr = runbook("", reboot, "resume", id)
	if code == 0 || !strings.Contains(stderr, "its last records may be lost") || !strings.Contains(stderr, "[1] restart [b]") {
		t.Fatalf("the resume should ask about b's restart: exit %d\n%s", code, stderr)
	}
	if strings.Contains(stderr, "[c]") || strings.Contains(stderr, "[d]") || strings.Contains(stderr, "hosts not recorded") {
		t.Fatalf("hosts no step reached are in doubt:\n%s", stderr)
	}
	// b's restart was made (its line is there): taken as done.
	if _, code, stderr = runbook("", reboot, "resume", "--skip-in-doubt", id); code != 0 {
		t.Fatalf("resume --skip-in-doubt: exit %d\n%s", code, stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "restarts")); string(got) != "b\nc\nd\n" {
		t.Fatalf("restarts: %q, want b, c and d once each", got)
	}
}
