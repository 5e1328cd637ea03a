package notify

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runbook-dev/runbook/internal/redact"
)

func TestHookWants(t *testing.T) {
	h := Hook{Name: "h", Command: []string{"true"}, Events: []Outcome{Failure, Refused}, Playbooks: []string{"pg-ha/*"}}
	for _, c := range []struct {
		event    Outcome
		playbook string
		want     bool
	}{
		{Failure, "pg-ha/promote-standby", true},
		{Refused, "pg-ha/check", true},
		{Success, "pg-ha/promote-standby", false},
		{Failure, "orchestrator/failover-database", false},
	} {
		if got := h.wants(&Summary{Event: c.event, Playbook: c.playbook}); got != c.want {
			t.Errorf("%s of %s: wants %v, want %v", c.event, c.playbook, got, c.want)
		}
	}
}

func TestHookCheck(t *testing.T) {
	for _, c := range []struct {
		h    Hook
		want string
	}{
		{Hook{Name: "a"}, "give a command, a url or both"},
		{Hook{Name: "b", URL: "ftp://x"}, "want an http:// or https:// URL"},
		{Hook{Name: "c", URL: "https://x", Playbooks: []string{"[pg"}}, "playbooks"},
		{Hook{Name: "d", URL: "https://x"}, ""},
	} {
		err := c.h.Check()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("hook %s: %v, want %q", c.h.Name, err, c.want)
		}
	}
}

// TestCommandLimitKillsItsChildren: a hook command that leaves a child
// holding its output is killed with the child at its limit, and Notify
// returns then.
func TestCommandLimitKillsItsChildren(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child")
	var log bytes.Buffer
	n := &Notifier{Log: &log, Redactor: redact.New([]string{"s3cret-value-xyz"}), Hooks: []Hook{{Name: "stuck", Timeout: time.Second,
		Command: []string{"/bin/sh", "-c", "sleep 60 & echo $! > " + pidFile + "; wait"}}}}
	start := time.Now()
	n.Notify(context.Background(), Summary{Event: Success, RunID: "r", Playbook: "p", Message: "s3cret-value-xyz"})
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Notify took %s with a hook whose limit is 1s", took)
	}
	if !strings.Contains(log.String(), "hook stuck (success): command /bin/sh: passed its time limit of 1s") {
		t.Errorf("the log says: %q", log.String())
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	// The child was killed with its group: its pidfd reports its exit
	// (within 2 s; it would sleep for 60).
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return // gone already
	}
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 2000); err != nil || n != 1 {
		t.Errorf("the hook's child (pid %d) still runs after its group was killed (poll: %d, %v)", pid, n, err)
	}
}

// TestWebhookErrorHidesPath: a webhook that cannot be reached is named by
// its scheme and host: its path holds the token of chat services.
func TestWebhookErrorHidesPath(t *testing.T) {
	var log bytes.Buffer
	n := &Notifier{Log: &log, Hooks: []Hook{{Name: "chat", URL: "http://127.0.0.1:1/services/T0/B0/tok3n", Timeout: 5 * time.Second}}}
	n.Notify(context.Background(), Summary{Event: Failure, RunID: "r", Playbook: "p"})
	if !strings.Contains(log.String(), "hook chat (failure): post http://127.0.0.1:1: ") || strings.Contains(log.String(), "tok3n") {
		t.Errorf("the log says: %q", log.String())
	}
}
