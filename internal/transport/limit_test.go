package transport_test

import (
	"context"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/internal/testsshd"
	"github.com/runbook-dev/runbook/internal/transport"
)

// TestStopAtLimit: a command that prints without end is stopped at its
// output limit when asked, over a real sshd and locally, and comes back
// truncated.
func TestStopAtLimit(t *testing.T) {
	s := testsshd.Start(t)
	c, err := transport.DialSSH(context.Background(), transport.SSHConfig{Name: "t", Address: s.Host, Port: s.Port, User: "root", IdentityFiles: []string{s.IdentityFile}, KnownHosts: []string{s.KnownHosts}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for name, conn := range map[string]transport.Conn{"ssh": c, "local": transport.Local{}} {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		out, err := conn.Run(ctx, &transport.Command{Line: "yes", MaxOutput: 1 << 16, StopAtLimit: true})
		cancel()
		if err != nil || !out.Truncated || len(out.Stdout) > 1<<16 {
			t.Errorf("%s: %v, truncated %v, %d bytes", name, err, out != nil && out.Truncated, len(out.Stdout))
		}
	}
}
