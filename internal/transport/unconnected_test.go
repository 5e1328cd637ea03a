package transport_test

import (
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/runbook-dev/runbook/internal/transport"
)

// TestUnconnected: what tolerate: [unreachable] covers, by the error's
// kind wherever it is wrapped. The real dials are in
// TestSSHDownMeansNothingAnswers; this covers a step's own connection (a
// database's address that does not resolve) and what is not covered.
func TestUnconnected(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"a database's name that does not resolve", fmt.Errorf("the server's address does not resolve: %w", &net.DNSError{Err: "no such host", Name: "db.invalid", IsNotFound: true}), true},
		{"refused", &transport.SessionError{Host: "pg1", Addr: "10.0.0.1:22", Stage: "connect", Err: errors.New("connection refused")}, true},
		{"nothing answers", &transport.UnreachableError{Host: "pg1", Addr: "10.0.0.1:22", Err: errors.New("i/o timeout")}, true},
		{"a hung sshd", &transport.SessionError{Host: "pg1", Addr: "10.0.0.1:22", Stage: "handshake", Err: errors.New("no handshake")}, false},
		{"a session lost under a command", &transport.SessionError{Host: "pg1", Addr: "10.0.0.1:22", Stage: "session", Err: errors.New("EOF")}, false},
		{"a command that failed", errors.New("exit status 1"), false},
	} {
		if got := transport.Unconnected(c.err); got != c.want {
			t.Errorf("%s: Unconnected = %v, want %v", c.name, got, c.want)
		}
	}
}
