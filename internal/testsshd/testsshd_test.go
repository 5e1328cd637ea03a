package testsshd

import (
	"net"
	"testing"
)

// TestStartSurvivesATakenPort: when the port found free is bound by
// another before sshd binds it, sshd exits and Start tries another port.
func TestStartSurvivesATakenPort(t *testing.T) {
	ok, why := Available()
	Require(t, ok, why)
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
		t.Fatalf("sshd runs on port %d after %d tries; the taken port was %d", s.Port, calls, taken)
	}
	if err := s.handshake(); err != nil {
		t.Fatalf("the server started on a second port does not answer: %v", err)
	}
}
