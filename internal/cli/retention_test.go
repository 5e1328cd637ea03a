package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/runbook-dev/runbook/internal/cli"
)

// TestReadOnlyRunsKeepNoJournal runs the bundled pg-ha/check 100 times, as
// cron would every minute, on this machine (the local transport) against
// a port where no PostgreSQL answers: each run reports the primary's
// PostgreSQL down (CRITICAL, exit 2), and none leaves a journal. The same
// run with --journal keeps one.
func TestReadOnlyRunsKeepNoJournal(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	check := []string{"runbook", "run", "pg-ha/check", "-p", "primary=localhost", "-p", "port=1", "--state-dir", state}
	for i := range 100 {
		var out, errb bytes.Buffer
		code := cli.Main(check, nil, &out, &errb)
		if code != 2 || !bytes.HasPrefix(out.Bytes(), []byte("PGHA CRITICAL - PostgreSQL on the primary localhost does not answer: ")) {
			t.Fatalf("run %d of pg-ha/check: exit %d, want 2 (CRITICAL) from its step on the primary:\n%s%s", i+1, code, out.String(), errb.String())
		}
	}
	runs, err := os.ReadDir(filepath.Join(state, "runs"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if len(runs) != 0 {
		t.Fatalf("100 runs of the read-only pg-ha/check left %d journal(s)", len(runs))
	}
	var out, errb bytes.Buffer
	cli.Main(append(check, "--journal"), nil, &out, &errb)
	if runs, err := os.ReadDir(filepath.Join(state, "runs")); err != nil || len(runs) != 1 {
		t.Fatalf("a run of pg-ha/check with --journal: want 1 journal, have %d (%v)", len(runs), err)
	}
}
