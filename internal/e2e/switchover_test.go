package e2e

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/internal/lab"
)

// promoted finds the promotion step (of shared/promote, run as the step
// promote) reported changed in a switchover's output.
var promoted = regexp.MustCompile(`changed +promote: Promote the standby`)

var unavailableRe = regexp.MustCompile(`writes unavailable for ([0-9.]+) s`)

// orchestratorDownRe is the orchestrator's downtime pg-ha/switchover prints.
var orchestratorDownRe = regexp.MustCompile(`orchestrator down for ([0-9.]+) s`)

// TestSwitchover swaps pg1 and pg2 and back with pg-ha/switchover while a
// client commits in a loop: every commit that returned is on the new
// primary, the old primary streams to it as its synchronous standby
// without a base backup (a file put in its data directory before is still
// there), the orchestrator (the lab's stand-in) writes to the new
// primary, and the writes' unavailability the playbook prints is under
// the target.
func TestSwitchover(t *testing.T) {
	l := startLabWith(t, lab.Options{Hosts: []string{"pg1", "pg2", "orch"}, Orchestrator: "orch"})
	h := &ha{t: t, l: l, env: []string{"RUNBOOK_REPLICATION_PASSWORD=" + replicationPassword}, layoutArg: "layout=debian"}
	unit := lab.Layouts[lab.LayoutDebian].Unit
	h.ok("run", "pg-ha/configure-primary", "-p", "primary=pg1", "-p", "standby=pg2", "-p", h.layoutArg)
	if got := h.psql("pg1", "SHOW wal_log_hints"); got != "on" {
		t.Errorf("configure-primary left wal_log_hints %s on a cluster without data checksums", got)
	}
	h.ok("run", "pg-ha/configure-standby", "-p", "primary=pg1", "-p", "standby=pg2", "-p", h.layoutArg)
	password := h.sh("orch", "sed -n 's/^password=//p' /etc/inmanta/inmanta.d/database.cfg")
	h.psqlDB("pg1", "inmanta", "CREATE TABLE sw_rows (id int PRIMARY KEY, at timestamptz DEFAULT now()); ALTER TABLE sw_rows OWNER TO inmanta")

	// Refused while the standby is not streaming: nothing changes.
	h.sh("pg2", "systemctl stop "+unit)
	before := h.snapshot()
	h.refused("not streaming sync", "run", "pg-ha/switchover", "-p", "primary=pg1", "-p", "standby=pg2", "-p", "orchestrator=orch", "-p", h.layoutArg)
	if after := h.snapshot(); after != before {
		t.Fatalf("a refused switchover changed the hosts:\n%s\n---\n%s", before, after)
	}
	h.sh("pg2", "systemctl start "+unit)
	h.psqlWait("pg1", "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'inmanta'", "sync")
	// The stand-in may have given up while its commits waited for pg2:
	// it runs again, connected to pg1, before the switchover.
	h.sh("orch", "systemctl reset-failed inmanta-server; systemctl restart inmanta-server")
	h.psqlWait("pg1", "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = 'inmanta' AND host(client_addr) = '"+lab.Address(2)+"'", "t")

	// The standby does not get the shutdown checkpoint (its WAL receiver
	// frozen): the switchover starts the old primary and the orchestrator
	// again as they were, and stops before the promotion.
	h.psql("pg1", "ALTER SYSTEM SET wal_sender_timeout = '5s'")
	h.psql("pg1", "SELECT pg_reload_conf()")
	h.sh("pg2", "pkill -STOP -f '^postgres: .*walreceiver'")
	out, err := h.run("run", "pg-ha/switchover", "-p", "primary=pg1", "-p", "standby=pg2", "-p", "orchestrator=orch", "-p", h.layoutArg, "-p", "checkpoint_wait=2")
	h.sh("pg2", "pkill -CONT -f '^postgres: .*walreceiver'")
	if err == nil || !strings.Contains(out, "NOT received") || !strings.Contains(out, "the old primary was started again as it was, and the orchestrator") || promoted.MatchString(out) {
		t.Errorf("a switchover whose standby lacks the shutdown checkpoint did not stop and restore: %v\n%s", err, out)
	}
	if got := h.psql("pg1", "SELECT pg_is_in_recovery()"); got != "f" {
		t.Errorf("pg1 after the stopped switchover: in recovery %s", got)
	}
	h.sh("orch", "systemctl is-active inmanta-server")
	h.psql("pg1", "ALTER SYSTEM RESET wal_sender_timeout")
	h.psql("pg1", "SELECT pg_reload_conf()")
	h.psqlWait("pg1", "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'inmanta'", "sync")

	// The primary's stop is not clean (killed, as systemd's stop timeout
	// does): no shutdown checkpoint, so the switchover starts the old
	// primary and the orchestrator again as they were, and stops.
	dropin := "/run/systemd/system/" + unit + ".service.d"
	h.sh("pg1", "mkdir -p "+dropin+" && printf '[Service]\\nExecStop=\\nKillSignal=SIGKILL\\n' > "+dropin+"/runbook-e2e-unclean.conf && systemctl daemon-reload")
	out, err = h.run("run", "pg-ha/switchover", "-p", "primary=pg1", "-p", "standby=pg2", "-p", "orchestrator=orch", "-p", h.layoutArg)
	h.sh("pg1", "rm -rf "+dropin+" && systemctl daemon-reload")
	if err == nil || !strings.Contains(out, "NOT received: the primary did not shut down cleanly") || !strings.Contains(out, "the old primary was started again as it was, and the orchestrator") || promoted.MatchString(out) {
		t.Errorf("a switchover whose primary did not stop cleanly did not stop and restore: %v\n%s", err, out)
	}
	if got := h.psql("pg1", "SELECT pg_is_in_recovery()"); got != "f" {
		t.Errorf("pg1 after the switchover stopped by an unclean stop: in recovery %s", got)
	}
	if got := h.sh("pg1", "systemctl is-enabled "+unit+"; true"); got == "masked" {
		t.Errorf("pg1's unit is left masked after the restore")
	}
	h.sh("orch", "systemctl is-active inmanta-server")
	h.psqlWait("pg1", "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'inmanta'", "sync")

	c := &lab.Committer{
		DSN:   "port=5432 dbname=inmanta user=inmanta password=" + password + " sslmode=disable connect_timeout=2",
		Hosts: []string{lab.Address(0), lab.Address(1)},
		Table: "sw_rows",
	}
	switched := ""
	next := 1
	for _, sw := range []struct{ from, to string }{{"pg1", "pg2"}, {"pg2", "pg1"}} {
		marker := "runbook-e2e-" + sw.from
		h.sh(sw.from, h.layoutEnv(sw.from)+"touch $D/"+marker)
		c.Start(next)
		h.waitCommits(c, 20)
		run := []string{"run", "pg-ha/switchover", "-p", "primary=" + sw.from, "-p", "standby=" + sw.to, "-p", "orchestrator=orch", "-p", h.layoutArg}
		out := h.ok(run...)
		switched = out
		if !strings.Contains(out, "changed      Stop the orchestrator") {
			t.Errorf("the switchover did not stop the orchestrator:\n%s", out)
		}
		h.waitCommits(c, 20)
		c.Stop()
		// The longest time without a commit, from the client's start.
		ids, longest := c.IDs(), c.LongestGap(time.Time{}, time.Now())
		next = ids[len(ids)-1] + 1000
		m := unavailableRe.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("switchover %s -> %s printed no unavailability:\n%s", sw.from, sw.to, out)
		}
		secs, _ := strconv.ParseFloat(m[1], 64)
		od := orchestratorDownRe.FindStringSubmatch(out)
		if od == nil {
			t.Fatalf("switchover %s -> %s printed no downtime of the orchestrator:\n%s", sw.from, sw.to, out)
		}
		orchSecs, _ := strconv.ParseFloat(od[1], 64)
		if orchSecs < secs {
			t.Errorf("the orchestrator's downtime %.3f s is shorter than the database's unavailability %.3f s, which it includes", orchSecs, secs)
		}
		t.Logf("switchover %s -> %s: database writes unavailable %.3f s (playbook, %s's clock), the orchestrator down %.3f s; the client's longest time without a commit %.3f s; %d commits returned", sw.from, sw.to, secs, sw.to, orchSecs, longest.Seconds(), len(ids))
		if secs >= 5 {
			t.Errorf("writes were unavailable for %.3f s, the target is under 5 s", secs)
		}
		if f := os.Getenv("RUNBOOK_E2E_FIGURES"); f != "" {
			appendFigure(t, f, fmt.Sprintf("switchover %s->%s unavailable_s=%.3f orchestrator_down_s=%.3f client_gap_s=%.3f commits=%d", sw.from, sw.to, secs, orchSecs, longest.Seconds(), len(ids)))
		}

		// Every commit that returned is on the new primary.
		missing, err := c.Missing(h.address(sw.to))
		if err != nil {
			t.Fatal(err)
		}
		if missing != 0 {
			t.Errorf("%d commits that returned are not on the new primary %s", missing, sw.to)
		}
		// The old primary streams as the synchronous standby, from its own
		// data directory (no base backup), and answers no query.
		if got := h.psql(sw.to, "SELECT application_name || ' ' || state || ' ' || sync_state || ' ' || host(client_addr) FROM pg_stat_replication"); got != "inmanta streaming sync "+h.address(sw.from) {
			t.Errorf("pg_stat_replication on %s: %q", sw.to, got)
		}
		if got := h.psql(sw.to, "SELECT pg_is_in_recovery()"); got != "f" {
			t.Errorf("%s is in recovery after the switchover", sw.to)
		}
		if got := h.sh(sw.from, h.layoutEnv(sw.from)+"LC_ALL=C /usr/lib/postgresql/15/bin/pg_controldata -D $D | sed -n 's/^Database cluster state: *//p'; test -f $D/"+marker+" && echo kept"); got != "in archive recovery\nkept" {
			t.Errorf("%s after the switchover: %q (want a standby in recovery whose data directory is the one it had)", sw.from, got)
		}
		if strings.Contains(out, "pg_basebackup") || strings.Contains(out, "Base backup") {
			t.Errorf("the switchover took a base backup:\n%s", out)
		}
		// The orchestrator writes to the new primary.
		if got := h.sh("orch", "grep ^host= /etc/inmanta/inmanta.d/database.cfg"); got != "host="+h.address(sw.to) {
			t.Errorf("the stand-in's configuration says %s, want %s's address", got, sw.to)
		}
		h.psqlWait(sw.to, "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = 'inmanta' AND host(client_addr) = '"+lab.Address(2)+"'", "t")
		// A commit now waits for the old primary: synchronous again.
		h.psqlDB(sw.to, "inmanta", "INSERT INTO sw_rows (id) VALUES ("+strconv.Itoa(next)+")")
		next++
	}
	// Run again with the last roles: the switchover is done, nothing changes.
	h.unchanged("run", "pg-ha/switchover", "-p", "primary=pg2", "-p", "standby=pg1", "-p", "orchestrator=orch", "-p", h.layoutArg)

	// runbook dies right after the promotion (pg2 promoted, pg1 stopped,
	// not yet its standby) and pg1's machine reboots, as in a patching
	// window: pg1's PostgreSQL does not start (its unit was masked before
	// its stop), so there is one primary; the resumed run finishes.
	m := regexp.MustCompile(`\[([0-9]+)\][^\n]*Promote the standby \(pg_ctl promote\)`).FindStringSubmatch(switched)
	if m == nil {
		t.Fatalf("no promotion step in the switchover's output:\n%s", switched)
	}
	known := labJournals()
	env := append(append([]string{}, h.env...), "RUNBOOK_CRASHPOINT=outcome:"+m[1])
	if _, _, err := runbook(t, env, "run", "-i", l.InventoryPath(), "pg-ha/switchover", "-p", "primary=pg1", "-p", "standby=pg2", "-p", "orchestrator=orch", "-p", h.layoutArg); err == nil {
		t.Fatal("the switchover armed to die after its promotion finished")
	}
	runID := killedRun(t, known)
	if got := h.psql("pg2", "SELECT pg_is_in_recovery()"); got != "f" {
		t.Fatalf("pg2 was not promoted before the crash point: in recovery %s", got)
	}
	for _, f := range []string{lab.FaultKill, lab.FaultStart} {
		if err := l.Fault(context.Background(), "pg1", f); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.sh("pg1", "systemctl is-system-running --wait >/dev/null; systemctl is-active "+unit+"; systemctl is-enabled "+unit+"; "+h.layoutEnv("pg1")+"test -e $D/postmaster.pid && echo postmaster.pid; true"); got != "inactive\nmasked" {
		t.Errorf("pg1 rebooted in the middle of the switchover: %q, want its PostgreSQL not started (inactive, masked)", got)
	}
	resumed, errOut, err := runbook(t, h.env, "resume", runID, "--yes")
	if err != nil {
		t.Fatalf("the resumed switchover: %v\n%s%s", err, resumed, errOut)
	}
	if got := h.psql("pg2", "SELECT application_name || ' ' || state || ' ' || sync_state || ' ' || host(client_addr) FROM pg_stat_replication"); got != "inmanta streaming sync "+h.address("pg1") {
		t.Errorf("pg_stat_replication on pg2 after the resumed switchover: %q", got)
	}
	if got := h.sh("orch", "grep ^host= /etc/inmanta/inmanta.d/database.cfg"); got != "host="+h.address("pg2") {
		t.Errorf("the stand-in's configuration says %s after the resumed switchover, want pg2's address", got)
	}
}

// address is the lab address of pg1 or pg2 (the first and second host).
func (h *ha) address(host string) string {
	if host == "pg1" {
		return lab.Address(0)
	}
	return lab.Address(1)
}

// waitCommits waits until the client has committed n more rows.
func (h *ha) waitCommits(c *lab.Committer, n int) {
	h.t.Helper()
	want := c.Count() + n
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if c.Count() >= want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.t.Fatalf("the client committed fewer than %d rows in 60 s", n)
}

// psqlWait polls a query on a host until it gives want (by the database's
// own views; 60 s at most).
func (h *ha) psqlWait(host, sql, want string) {
	h.t.Helper()
	got := h.sh(host, "for i in $(seq 300); do r=$(cd / && runuser -u postgres -- psql -X -A -t -d postgres -c "+strconv.Quote(sql)+"); [ \"$r\" = "+strconv.Quote(want)+" ] && break; sleep 0.2; done; echo \"$r\"")
	if got != want {
		h.t.Fatalf("%s: %s gave %q, want %q", host, sql, got, want)
	}
}

// appendFigure adds a measured figure to a file (RUNBOOK_E2E_FIGURES), for
// the README.
func appendFigure(t *testing.T, path, line string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s %s\n", time.Now().UTC().Format(time.RFC3339), line); err != nil {
		t.Error(err)
	}
}
