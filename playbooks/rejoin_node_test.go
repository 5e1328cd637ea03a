package playbooks_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/internal/testpg"
)

// judge runs the node step's command on data as the new primary src would
// be described to it.
func judge(t *testing.T, data string, sysid, tl, lsn, history, discard string) string {
	t.Helper()
	cmd := exec.Command("sh", "-c", rejoinStep(t, "node"))
	cmd.Env = append(os.Environ(), "BIN="+testpg.Bin, "DATA="+data, "SYSID="+sysid, "NODE=pg1", "SOURCE=pg2",
		"SRC_TL="+tl, "SRC_LSN="+lsn, "SRC_HISTORY="+history, "DISCARD="+discard,
		"BASE_BACKUP=runbook run pg-ha/add-standby -p primary=pg2 -p standby=pg1 -p layout=debian", "LAYOUT_ARGS=-p layout=debian")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the node step: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// stop stops a test server fast and waits until its postmaster.pid is gone.
func stop(t *testing.T, s *testpg.Server) {
	t.Helper()
	if err := s.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(filepath.Join(s.Data, "postmaster.pid")); os.IsNotExist(err) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the server did not stop")
}

// TestRejoinJudgesDivergence runs rejoin's node step on real clusters:
//   - a node that ran as a primary on the new primary's own timeline (two
//     primaries on one timeline) is refused, where pg_rewind would say "no
//     rewind required" and the node would loop on "incorrect prev-link";
//     a standby on that timeline is still possible;
//   - an old primary that committed a transaction after the switch point
//     is refused with its WAL range and commit count unless
//     discard_diverged is given.
func TestRejoinJudgesDivergence(t *testing.T) {
	p := testpg.Start(t, "wal_level=replica", "max_wal_senders=5", "wal_log_hints=on")
	q := testpg.StartStandby(t, p)
	sysid := strings.TrimSpace(p.Psql(t, "SELECT system_identifier FROM pg_control_system()"))
	p.Psql(t, "CREATE TABLE t (v int)")
	caughtUp(t, p)

	// Same timeline: the primary p, stopped cleanly, against a source on
	// timeline 1 further on; the standby q, stopped, likewise.
	q.Psql(t, "SELECT pg_promote()")
	history := strings.TrimSpace(q.Psql(t, "SELECT pg_read_file('pg_wal/00000002.history')"))
	srcLSN := strings.TrimSpace(q.Psql(t, "SELECT pg_current_wal_lsn()"))
	// The old primary commits after the switch point (on one machine).
	p.Psql(t, "INSERT INTO t VALUES (424242)")
	stop(t, p)

	if got := judge(t, p.Data, sysid, "1", "FFFF/0", "", "false"); !strings.HasPrefix(got, "refused: two primaries on one timeline: the node ran as a primary (cluster shut down) on timeline 1") ||
		!strings.Contains(got, "-p layout=debian") {
		t.Errorf("a primary on the source's own timeline: want refused (two primaries on one timeline), got:\n%s", got)
	}
	got := judge(t, p.Data, sysid, "2", srcLSN, history, "false")
	if !strings.HasPrefix(got, "refused: the rewind would throw away what the node wrote after the switch point: it has ") ||
		!strings.Contains(got, "with 1 committed transaction(s) the new primary never had") || !strings.Contains(got, "pg_waldump -p "+p.Data+"/pg_wal -t 1 -s ") ||
		!strings.Contains(got, "-p discard_diverged=true") {
		t.Errorf("an old primary with a commit after the switch point: want refused with the WAL range and commit count, got:\n%s", got)
	}
	if got := judge(t, p.Data, sysid, "2", srcLSN, history, "true"); !strings.HasPrefix(got, "possible: ") || !strings.Contains(got, "discarded as asked (-p discard_diverged=true): it has ") {
		t.Errorf("the same with discard_diverged: want possible, saying what is discarded, got:\n%s", got)
	}
}

// TestRejoinStandbyOnSameTimeline: a standby (its control file "shut
// down in recovery") on the source's timeline is still possible.
func TestRejoinStandbyOnSameTimeline(t *testing.T) {
	p := testpg.Start(t, "wal_level=replica", "max_wal_senders=5", "wal_log_hints=on")
	q := testpg.StartStandby(t, p)
	sysid := strings.TrimSpace(p.Psql(t, "SELECT system_identifier FROM pg_control_system()"))
	stop(t, q)
	lsn := strings.TrimSpace(p.Psql(t, "SELECT pg_current_wal_lsn()"))
	if got := judge(t, q.Data, sysid, "1", lsn, "", "false"); !strings.HasPrefix(got, "possible: cluster shut down in recovery, timeline 1") {
		t.Errorf("a standby on the source's timeline: want possible, got:\n%s", got)
	}
}
