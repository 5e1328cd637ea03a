package testpg

import (
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/internal/testsshd"
)

// TestStartSurvivesATakenPort: when the port found free is bound by
// another before postgres binds it, postgres exits and Start tries another.
func TestStartSurvivesATakenPort(t *testing.T) {
	taken, calls := testsshd.HandOutTakenPort(t, &freePort)
	s := Start(t)
	if s.Port == taken || *calls < 2 {
		t.Fatalf("postgres runs on port %d after %d tries; the taken port was %d", s.Port, *calls, taken)
	}
	if got := strings.TrimSpace(s.Psql(t, "SELECT 40 + 2")); got != "42" {
		t.Fatalf("the server started on a second port answers %q", got)
	}
}
