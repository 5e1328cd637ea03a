package transport_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/internal/transport"
)

// TestLocalEnvWithBecome: the environment reaches a command run as another
// user, whose sudo or runuser may reset it.
func TestLocalEnvWithBecome(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("become needs root here (runuser)")
	}
	out, err := transport.Local{}.Run(context.Background(), &transport.Command{
		Line:   `printf '%s %s' "$(id -un)" "$TOKEN"`,
		Become: "nobody",
		Env:    map[string]string{"TOKEN": "it's a \"value\"\nwith lines"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out.Stdout); got != "nobody it's a \"value\"\nwith lines" {
		t.Fatalf("got %q (stderr %q)", got, out.Stderr)
	}
	out, err = transport.Local{}.Run(context.Background(), &transport.Command{Line: `printf '%s' "$TOKEN"`, Env: map[string]string{"TOKEN": "plain"}})
	if err != nil || string(out.Stdout) != "plain" {
		t.Fatalf("without become: %q %v", out.Stdout, err)
	}
}

// TestGroupCheck: a running process group is found with its age, a group
// that ended (its processes reaped or zombies) is gone.
func TestGroupCheck(t *testing.T) {
	l := transport.Local{}
	ctx := context.Background()
	started := make(chan int, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = l.Run(ctx, &transport.Command{Line: "sleep 2", Started: func(p int) { started <- p }})
	}()
	var pgid int
	select {
	case pgid = <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("not started")
	}
	check := func() string {
		out, err := l.Run(ctx, &transport.Command{Line: transport.GroupCheck(pgid)})
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out.Stdout))
	}
	if got := check(); !strings.HasPrefix(got, "running ") {
		t.Errorf("a running group: %q", got)
	}
	<-done
	if got := check(); got != "gone" {
		t.Errorf("an ended group: %q", got)
	}
}
