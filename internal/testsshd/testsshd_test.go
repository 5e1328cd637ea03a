package testsshd

import "testing"

// TestStartSurvivesATakenPort: when the port found free is bound by
// another before sshd binds it, sshd exits and Start tries another port.
func TestStartSurvivesATakenPort(t *testing.T) {
	ok, why := Available()
	Require(t, ok, why)
	taken, calls := HandOutTakenPort(t, &freePort)
	s := Start(t)
	if s.Port == taken || *calls < 2 {
		t.Fatalf("sshd runs on port %d after %d tries; the taken port was %d", s.Port, *calls, taken)
	}
	if err := s.handshake(); err != nil {
		t.Fatalf("the server started on a second port does not answer: %v", err)
	}
}
