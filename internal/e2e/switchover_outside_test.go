package e2e

import (
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestSwitchoverAfterOutsidePromotion: a switchover dies right after it
// stopped the primary and masked its unit, before the standby got the
// shutdown checkpoint (its WAL receiver frozen, then killed with what it
// had not written), and the standby is promoted outside the run. The
// resumed switchover finds the standby's new timeline branching off before
// the shutdown checkpoint: it must not start the old primary again as it
// was (that would make two primaries), nor unmask it; it stops, saying
// that the standby is a primary now and how to bring the old one back.
func TestSwitchoverAfterOutsidePromotion(t *testing.T) {
	h := debianPair(t)
	h.psql("pg1", "ALTER SYSTEM SET wal_sender_timeout = '5s'")
	h.psql("pg1", "SELECT pg_reload_conf()")

	// Step 7 is the fence (before, the orchestrator's stop and time, the
	// checkpoint, the time, the stop): the run dies once it is recorded.
	h.psqlWait("pg1", "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'inmanta'", "sync")
	h.sh("pg2", "pkill -STOP -f '^postgres: .*walreceiver'")
	known := labJournals()
	env := append(append([]string{}, h.env...), "RUNBOOK_CRASHPOINT=outcome:7")
	out, errOut, err := runbook(t, env, "run", "-i", h.l.InventoryPath(), "pg-ha/switchover", "-p", "primary=pg1", "-p", "standby=pg2", "-p", h.layoutArg)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() {
		t.Fatalf("the switchover armed to die after its fence was not killed: %v\n%s%s", err, out, errOut)
	}
	runID := killedRun(t, known)
	if got := h.sh("pg1", "systemctl is-active "+pgUnit+"; systemctl is-enabled "+pgUnit+"; true"); got != "inactive\nmasked" {
		t.Fatalf("pg1 after the switchover died after its fence: %q, want stopped and masked", got)
	}
	// pg2 loses power: what its frozen WAL receiver had not written goes
	// with it. It starts again as a standby (of nothing: pg1 is down) and
	// is promoted by hand, short of pg1's shutdown checkpoint.
	h.sh("pg2", "systemctl kill -s KILL "+pgUnit+"; for i in $(seq 100); do systemctl is-active -q "+pgUnit+" || break; sleep 0.1; done; systemctl reset-failed "+pgUnit+" 2>/dev/null; systemctl start "+pgUnit)
	h.sh("pg2", h.layoutEnv("pg2")+"runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl promote -w -t 60 -D $D")
	if got := h.psql("pg2", "SELECT pg_is_in_recovery()"); got != "f" {
		t.Fatalf("pg2 was not promoted: in recovery %s", got)
	}

	out, errOut, err = runbook(t, h.env, "resume", runID, "--yes")
	out += errOut
	if err == nil || !strings.Contains(out, "NOT received: the standby was promoted at") ||
		!strings.Contains(out, "was promoted outside this run and is a primary now: the old primary pg1 is left stopped and its unit masked") || promoted.MatchString(out) {
		t.Errorf("the resumed switchover after an outside promotion did not stop leaving pg1 down: %v\n%s", err, out)
	}
	if got := h.sh("pg1", "systemctl is-active "+pgUnit+"; systemctl is-enabled "+pgUnit+"; "+h.layoutEnv("pg1")+"test -e $D/postmaster.pid && echo postmaster.pid; true"); got != "inactive\nmasked" {
		t.Errorf("pg1 after the resumed switchover: %q, want still stopped and masked (one primary: pg2)", got)
	}
}
