package testpg

import (
	"net"
	"strings"
	"testing"
)

// TestStartSurvivesATakenPort: when the port found free is bound by
// another before postgres binds it, postgres exits and Start tries another.
func TestStartSurvivesATakenPort(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	taken := held.Addr().(*net.TCPAddr).Port
	real, calls := freePort, 0
	freePort = func() (int, error) {
		calls++
		if calls == 1 {
			return taken, nil
		}
		return real()
	}
	defer func() { freePort = real }()
	s := Start(t)
	if s.Port == taken || calls < 2 {
		t.Fatalf("postgres runs on port %d after %d tries; the taken port was %d", s.Port, calls, taken)
	}
	if got := strings.TrimSpace(s.Psql(t, "SELECT 40 + 2")); got != "42" {
		t.Fatalf("the server started on a second port answers %q", got)
	}
}
