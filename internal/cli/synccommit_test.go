package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/internal/cli"
	"github.com/runbook-dev/runbook/internal/testpg"
)

// TestCheckSynchronousCommitLowered: pg-ha/check on a real primary with a
// synchronous standby says OK while commits wait for it, and WARNING when
// synchronous_commit makes them return on one machine: for a role (ALTER
// ROLE ... SET, as for the orchestrator's role), then server-wide.
func TestCheckSynchronousCommitLowered(t *testing.T) {
	primary := testpg.Start(t, "wal_level=replica", "max_wal_senders=5")
	// The check finds the primary by its port in the default socket
	// directory, as on a packaged server: its socket and lock file are
	// linked there.
	sock := ".s.PGSQL." + strconv.Itoa(primary.Port)
	for _, name := range []string{sock, sock + ".lock"} {
		link := filepath.Join("/var/run/postgresql", name)
		if err := os.Symlink(filepath.Join(primary.Socket, name), link); err != nil {
			t.Skipf("cannot link the primary's socket into /var/run/postgresql: %v", err)
		}
		t.Cleanup(func() { _ = os.Remove(link) })
	}
	primary.Psql(t, "SELECT pg_create_physical_replication_slot('replication')")
	testpg.StartStandby(t, primary, "cluster_name=inmanta", "primary_slot_name=replication")
	primary.Psql(t, "ALTER SYSTEM SET synchronous_standby_names = 'inmanta'")
	primary.Psql(t, "SELECT pg_reload_conf()")
	for i := 0; ; i++ {
		if strings.TrimSpace(primary.Psql(t, "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'inmanta' AND sync_state = 'sync' AND state = 'streaming'")) == "1" {
			break
		}
		if i == 100 {
			t.Fatal("the standby does not stream sync")
		}
		time.Sleep(100 * time.Millisecond)
	}
	check := func() (int, string) {
		var out, errb bytes.Buffer
		code := cli.Main([]string{"runbook", "run", "pg-ha/check", "-p", "primary=localhost", "-p", "port=" + itoa(primary.Port),
			"-p", "warn_replay_delay=100000", "-p", "crit_replay_delay=100000", "--state-dir", filepath.Join(t.TempDir(), "st")}, nil, &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := check(); code != 0 || !strings.HasPrefix(out, "PGHA OK - standby inmanta streams sync") {
		t.Fatalf("healthy: exit %d, want 0 OK:\n%s", code, out)
	}
	// A quorum of one (ANY 1 (inmanta)): commits wait for it as for sync.
	primary.Psql(t, "ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (inmanta)'")
	primary.Psql(t, "SELECT pg_reload_conf()")
	for i := 0; strings.TrimSpace(primary.Psql(t, "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'inmanta'")) != "quorum"; i++ {
		if i == 100 {
			t.Fatal("the standby is not quorum")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, out := check(); code != 0 || !strings.HasPrefix(out, "PGHA OK - standby inmanta streams quorum (the only one: commits wait for it)") {
		t.Fatalf("ANY 1 (inmanta): exit %d, want 0 OK:\n%s", code, out)
	}
	primary.Psql(t, "ALTER SYSTEM SET synchronous_standby_names = 'inmanta'")
	primary.Psql(t, "SELECT pg_reload_conf()")
	time.Sleep(300 * time.Millisecond)
	primary.Psql(t, "CREATE ROLE inmanta LOGIN")
	primary.Psql(t, "ALTER ROLE inmanta SET synchronous_commit = local")
	if code, out := check(); code != 1 || !strings.HasPrefix(out, "PGHA WARNING - synchronous_commit is lowered by ALTER ROLE/DATABASE (role inmanta: synchronous_commit=local)") {
		t.Fatalf("ALTER ROLE inmanta SET synchronous_commit = local: exit %d, want 1 WARNING naming it:\n%s", code, out)
	}
	primary.Psql(t, "ALTER ROLE inmanta RESET synchronous_commit")
	primary.Psql(t, "ALTER SYSTEM SET synchronous_commit = off")
	primary.Psql(t, "SELECT pg_reload_conf()")
	time.Sleep(200 * time.Millisecond)
	if code, out := check(); code != 1 || !strings.HasPrefix(out, "PGHA WARNING - synchronous_commit is off on the primary: commits return without waiting for the standby") {
		t.Fatalf("ALTER SYSTEM SET synchronous_commit = off: exit %d, want 1 WARNING:\n%s", code, out)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
