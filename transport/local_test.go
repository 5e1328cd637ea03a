package transport_test

import (
	"context"
	"os"
	"testing"

	"github.com/runbook-dev/runbook/transport"
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
