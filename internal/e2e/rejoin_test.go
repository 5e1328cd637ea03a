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

// TestRejoin brings a failed old primary back with pg-ha/rejoin: pg1 loses
// power, pg2 is promoted and takes writes, pg1 boots (as a primary, and
// takes a write of its own: a divergence) and is killed; rejoin rewinds
// it (no base backup: its data directory is the same directory) and pg2
// streams to it synchronously. Then the case pg_rewind
// cannot serve: pg2, run without wal_log_hints and without data
// checksums, loses power after pg1's promotion; rejoin refuses with that
// reason and names the base backup, which then brings it back.
func TestRejoin(t *testing.T) {
	h := debianPair(t)
	h.psql("pg1", "CREATE TABLE rj_rows (id int PRIMARY KEY); INSERT INTO rj_rows SELECT generate_series(1, 1000)")
	// The data directory's inode: a base backup puts a new directory in
	// its place, pg_rewind works inside it.
	inode := h.sh("pg1", h.layoutEnv("pg1")+"stat -c %i $D")

	// pg1 loses power; pg2 is promoted and takes writes. Before: a
	// checkpoint, as a running primary makes every checkpoint_timeout,
	// saves the standby's slot position to disk, so that pg1 keeps the
	// WAL from its last checkpoint through its crash recovery: pg_rewind
	// reads it (without it, or an archive, rejoin says so and falls back).
	h.psql("pg1", "CHECKPOINT")
	h.failover("pg1", "pg2")
	h.psql("pg2", "INSERT INTO rj_rows SELECT generate_series(1001, 1100)")
	h.keepsSwitchWAL("pg2")
	h.boot("pg1", pgUnit)
	// pg1 came back as a primary: rejoin refuses while it runs; what it
	// writes now is on no other node, and is rewound.
	h.psql("pg1", "SET synchronous_commit = local; INSERT INTO rj_rows VALUES (-1)")
	rejoin := []string{"run", "pg-ha/rejoin", "-p", "primary=pg2", "-p", "standby=pg1", "-p", h.layoutArg}
	h.refused("the node runs PostgreSQL as a primary", rejoin...)
	// The roles swapped (pg1 named the new primary): refused, and the hint
	// names both timelines and pg2 as the newer primary instead of saying to
	// stop it. Stopped anyway, pg2 is still not rewound onto the stale pg1:
	// rejoin stops before any change, naming the newer one.
	swapped := []string{"run", "pg-ha/rejoin", "-p", "primary=pg1", "-p", "standby=pg2", "-p", h.layoutArg}
	h.refused("pg2 looks like the newer primary", swapped...)
	h.sh("pg2", "systemctl stop "+pgUnit)
	out, err := h.run(swapped...)
	if err == nil || !strings.Contains(out, "rejoin refused, nothing changed: the node's timeline 2 is newer than the given new primary's 1") ||
		!strings.Contains(out, "pg2 (timeline 2") || !strings.Contains(out, "runbook run pg-ha/rejoin -p primary=pg2 -p standby=pg1") || strings.Contains(out, "] changed ") {
		t.Fatalf("rejoin with the roles swapped did not refuse before any change, naming pg2 the newer primary: %v\n%s", err, out)
	}
	h.sh("pg2", "systemctl start "+pgUnit)
	h.psqlWait("pg2", "SELECT count(*) FROM rj_rows", "1100")
	// Killed rather than stopped: its cluster is left "in production", and
	// pg_rewind runs PostgreSQL's crash recovery on it first (with the
	// configuration of /etc/postgresql: --config-file).
	h.sh("pg1", "systemctl kill --signal=SIGKILL "+pgUnit+"; for i in $(seq 100); do systemctl is-active -q "+pgUnit+" || break; sleep 0.1; done; "+
		h.layoutEnv("pg1")+"LC_ALL=C /usr/lib/postgresql/15/bin/pg_controldata -D $D | grep -q 'state: *in production'")
	// The new primary still names a synchronous standby that is absent (the
	// node itself): rejoin's own commits there must not wait for it.
	h.psql("pg2", "ALTER SYSTEM SET synchronous_standby_names = 'inmanta'")
	h.psql("pg2", "SELECT pg_reload_conf()")
	h.psqlWait("pg2", "SHOW synchronous_standby_names", "inmanta")
	// A configuration kept by a rejoin that failed long ago: never put back.
	h.sh("pg1", h.layoutEnv("pg1")+"install -d -o postgres -g postgres -m 0700 $D.runbook-rewind && printf \"work_mem = '7777kB'\\n\" > $D.runbook-rewind/postgresql.auto.conf")
	// pg1's own commit after the switch point (-1) would be thrown away:
	// refused before any change, saying how much, until it is asked for.
	out, err = h.run(rejoin...)
	if err == nil || !strings.Contains(out, "the rewind would throw away what the node wrote after the switch point") ||
		!strings.Contains(out, "committed transaction(s) the new primary never had") || !strings.Contains(out, "-p discard_diverged=true") || strings.Contains(out, "] changed ") {
		t.Fatalf("rejoin of a node with a commit after the switch point did not refuse, before any change, saying what it would discard: %v\n%s", err, out)
	}
	rejoin = append(rejoin, "-p", "discard_diverged=true")
	start := time.Now()
	out = h.ok(rejoin...)
	if !strings.Contains(out, "discarded as asked (-p discard_diverged=true)") {
		t.Errorf("rejoin did not say what it discarded:\n%s", out)
	}
	// Done only once pg1 reached (a hot standby accepting connections) or
	// holds the WAL up to the minimum recovery point pg_rewind set (a
	// promotion before would stop it).
	if !regexp.MustCompile(`consistent: pg1 reached or will reach its minimum recovery point [0-9A-F]+/[0-9A-F]+ \(timeline 2\): (its WAL reads through|it runs as a hot standby)`).MatchString(out) {
		t.Errorf("rejoin did not wait until pg1 holds the WAL up to its minimum recovery point:\n%s", out)
	}
	// Killed, pg1 gets no estimate from pg_rewind's dry run (which refuses
	// a node not shut down cleanly), only the new primary's pg_wal.
	if !strings.Contains(out, "no estimate: the node was not shut down cleanly (cluster in production)") {
		t.Errorf("rejoin of a killed node did not say why it has no estimate:\n%s", out)
	}
	if !strings.Contains(out, "changed      The replication role may read the new primary's files") {
		t.Errorf("rejoin did not grant the replication role pg_rewind's functions:\n%s", out)
	}
	if got := h.sh("pg1", h.layoutEnv("pg1")+"grep -c 7777kB $D/postgresql.auto.conf; test ! -e $D.runbook-rewind && echo gone; test ! -e $D/rewinding && test ! -e $D/half-rewound && echo unmarked"); got != "0\ngone\nunmarked" {
		t.Errorf("pg1 after the rejoin: %q, want the stale kept configuration neither put back nor left (0, gone), and no in-progress mark of the rewind in its data directory (unmarked)", got)
	}
	t.Logf("rejoin with pg_rewind: %.1f s", time.Since(start).Seconds())
	if !strings.Contains(out, "rewound in") || !strings.Contains(out, "--config-file=/etc/postgresql/15/main/postgresql.conf") {
		t.Errorf("rejoin did not rewind with the configuration's file:\n%s", out)
	}
	h.isSyncStandby("pg2", "pg1", "")
	if got := h.sh("pg1", h.layoutEnv("pg1")+"stat -c %i $D"); got != inode {
		t.Errorf("pg1's data directory was replaced (inode %s, was %s): a base backup, not a rewind", got, inode)
	}
	h.unchanged(rejoin...)

	// A row committed on pg2 now is on pg1 too (synchronous); pg1's own
	// write from its time as a second primary is gone.
	h.psql("pg2", "INSERT INTO rj_rows VALUES (2001)")
	h.psql("pg2", "ALTER SYSTEM SET wal_log_hints = off")
	h.sh("pg2", "systemctl restart "+pgUnit)
	if got := h.psql("pg2", "SHOW wal_log_hints"); got != "off" {
		t.Fatalf("wal_log_hints on pg2: %s", got)
	}
	h.psqlWait("pg2", "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'inmanta'", "sync")
	h.psql("pg2", "INSERT INTO rj_rows VALUES (2002)")
	h.failover("pg2", "pg1")
	if got := h.psql("pg1", "SELECT count(*) || ' ' || count(*) FILTER (WHERE id < 0) FROM rj_rows"); got != "1102 0" {
		t.Errorf("pg1 holds %q rows (all, its own diverged write), want every row of pg2 and not its own: 1102 0", got)
	}
	h.boot("pg2", pgUnit)
	h.sh("pg2", "systemctl stop "+pgUnit)
	back := []string{"run", "pg-ha/rejoin", "-p", "primary=pg1", "-p", "standby=pg2", "-p", h.layoutArg}
	out, err = h.run(back...)
	if err == nil || !strings.Contains(out, "neither wal_log_hints = on nor data checksums") || !strings.Contains(out, "runbook run pg-ha/add-standby -p primary=pg1 -p standby=pg2 -p port=5432 -p layout=debian -p pg_version=15 -p application_name=inmanta -p replication_user=replication -p slot=replication -p discard_standby_data=true") {
		t.Fatalf("rejoin of a node without wal_log_hints did not fall back with its reason: %v\n%s", err, out)
	}
	if strings.Contains(out, "] changed ") {
		t.Errorf("a rejoin that cannot rewind changed something:\n%s", out)
	}
	h.ok("run", "pg-ha/add-standby", "-p", "primary=pg1", "-p", "standby=pg2", "-p", h.layoutArg, "-p", "discard_standby_data=true")
	h.isSyncStandby("pg1", "pg2", "")

	// pg_rewind fails half-way (a file in pg1's data directory that it
	// cannot remove, in a directory of root's): pg1 is left unable to start
	// as a primary (its unit masked, standby.signal), marked, and a rerun
	// refuses it instead of rewinding the half-rewound directory again.
	h.psql("pg1", "CHECKPOINT")
	h.failover("pg1", "pg2")
	h.psql("pg2", "INSERT INTO rj_rows VALUES (3001)")
	h.boot("pg1", pgUnit)
	h.sh("pg1", "systemctl stop "+pgUnit)
	h.sh("pg1", h.layoutEnv("pg1")+"mkdir $D/runbook-e2e-trap && touch $D/runbook-e2e-trap/x")
	again := []string{"run", "pg-ha/rejoin", "-p", "primary=pg2", "-p", "standby=pg1", "-p", h.layoutArg, "-p", "discard_diverged=true"}
	out, err = h.run(again...)
	if err == nil || !strings.Contains(out, "the data directory was partly rewound") || !strings.Contains(out, "runbook run pg-ha/add-standby -p primary=pg2 -p standby=pg1") {
		t.Fatalf("a rejoin whose pg_rewind failed half-way did not stop naming the base backup: %v\n%s", err, out)
	}
	// Stopped cleanly, pg1 got the dry run's estimate first (which wrote
	// nothing, so pg_rewind met the trap).
	if !strings.Contains(out, "estimate: pg_rewind would need to copy ") {
		t.Errorf("rejoin of a node stopped cleanly printed no estimate:\n%s", out)
	}
	if got := h.sh("pg1", h.layoutEnv("pg1")+"systemctl is-enabled $U; test -f $D/standby.signal && echo standby.signal"); got != "masked\nstandby.signal" {
		t.Errorf("pg1 after a pg_rewind that failed half-way: %q, want its unit masked and standby.signal", got)
	}
	out, err = h.run(again...)
	if err == nil || !strings.Contains(out, "a previous pg_rewind on this data directory did not finish") || strings.Contains(out, "] changed ") {
		t.Errorf("a rerun on the half-rewound pg1 did not refuse before any change: %v\n%s", err, out)
	}
}

// keepsSwitchWAL writes on the new primary, switching WAL segments and
// checkpointing until its last checkpoint's redo point lies in a later
// segment than its switch point (without a slot, that checkpoint recycled
// the switch point's segment: wal_keep_size is 0 in the lab), and checks
// that the segment is still there, kept by the slot the promotion made
// for the old primary.
func (h *ha) keepsSwitchWAL(primary string) {
	h.t.Helper()
	const switchSeg = "(SELECT pg_walfile_name(split_part(l, E'\\t', 2)::pg_lsn) FROM regexp_split_to_table(pg_read_file('pg_wal/' || lpad(upper(to_hex(" +
		"('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int)), 8, '0') || '.history'), E'\\n') AS l WHERE l ~ E'^[0-9]+\\t' ORDER BY split_part(l, E'\\t', 1)::int DESC LIMIT 1)"
	for i := 0; i < 3; i++ {
		h.psql(primary, "CREATE TABLE IF NOT EXISTS rj_churn (v text); INSERT INTO rj_churn SELECT repeat('x', 1000) FROM generate_series(1, 2000); SELECT pg_switch_wal(); CHECKPOINT")
	}
	got := h.psql(primary, "SELECT "+switchSeg+" < pg_walfile_name((pg_control_checkpoint()).redo_lsn) AS recycled_without_slot, "+
		"(pg_stat_file('pg_wal/' || "+switchSeg+", true)).size IS NOT NULL AS kept, "+
		"(SELECT restart_lsn <= pg_current_wal_lsn() AND NOT active FROM pg_replication_slots WHERE slot_name = 'replication') AS slot_reserves")
	if got != "t|t|t" {
		h.t.Fatalf("on %s after writes, WAL switches and checkpoints: %q, want the switch point's segment older than the checkpoint's redo, still in pg_wal, kept by the inactive slot (t|t|t)", primary, got)
	}
}

// failover cuts the power of the primary and promotes the standby.
func (h *ha) failover(primary, standby string) {
	h.t.Helper()
	if err := h.l.Fault(context.Background(), primary, lab.FaultKill); err != nil {
		h.t.Fatal(err)
	}
	h.ok("run", "pg-ha/promote-standby", "-p", "standby="+standby, "-p", "old_primary="+primary, "-p", h.layoutArg, "--yes")
}

// boot powers a host on and waits until its PostgreSQL unit is active (an
// old primary that was not fenced starts as a primary).
func (h *ha) boot(host, unit string) {
	h.t.Helper()
	if err := h.l.Fault(context.Background(), host, lab.FaultStart); err != nil {
		h.t.Fatal(err)
	}
	h.sh(host, "for i in $(seq 150); do systemctl is-active -q "+unit+" && exit 0; sleep 0.2; done; exit 1")
	h.psqlWait(host, "SELECT 1", "1")
}

// isSyncStandby checks from the primary's views that standby streams as
// its synchronous standby through an active slot, that the standby is in
// recovery, and that a file put in its data directory before (marker,
// when given) is still there: no base backup replaced it.
func (h *ha) isSyncStandby(primary, standby, marker string) {
	h.t.Helper()
	if got := h.psql(primary, "SELECT r.application_name || ' ' || r.state || ' ' || r.sync_state || ' ' || host(r.client_addr) || ' ' || s.active FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid"); got != "inmanta streaming sync "+h.address(standby)+" true" {
		h.t.Errorf("pg_stat_replication on %s: %q", primary, got)
	}
	cmd := h.layoutEnv(standby) + "LC_ALL=C /usr/lib/postgresql/15/bin/pg_controldata -D $D | sed -n 's/^Database cluster state: *//p'"
	want := "in archive recovery"
	if marker != "" {
		cmd += "; test -f $D/" + marker + " && echo kept"
		want += "\nkept"
	}
	if got := h.sh(standby, cmd); got != want {
		h.t.Errorf("%s: %q, want %q", standby, got, want)
	}
}

var (
	rewoundRe  = regexp.MustCompile(`rewound in ([0-9.]+) s`)
	estimateRe = regexp.MustCompile(`(need to copy [0-9]+ MB \(total source directory size is [0-9]+ MB\))`)
	copiedRe   = regexp.MustCompile(`\(([0-9]+/[0-9]+ kB) copied\)`)
)

// TestRejoinTiming measures, on a database of about 500 MB (or
// RUNBOOK_E2E_REJOIN_DB_MB), the rejoin of a
// failed old primary with pg_rewind beside the base-backup path
// (add-standby). It runs only with RUNBOOK_E2E_REJOIN_BENCH=1 (about
// three minutes); the figures go to the log and to RUNBOOK_E2E_FIGURES.
func TestRejoinTiming(t *testing.T) {
	if os.Getenv("RUNBOOK_E2E_REJOIN_BENCH") == "" {
		t.Skip("a measurement: set RUNBOOK_E2E_REJOIN_BENCH=1 to run it")
	}
	h := debianPair(t)
	// pg_rewind (15) copies the new primary's whole pg_wal, up to
	// max_wal_size (1 GB by default) right after a load: with
	// RUNBOOK_E2E_REJOIN_MAX_WAL_SIZE (say 256MB) both nodes run with a
	// smaller one, the crossover measured.
	if m := os.Getenv("RUNBOOK_E2E_REJOIN_MAX_WAL_SIZE"); m != "" {
		for _, host := range []string{"pg1", "pg2"} {
			h.sh(host, h.layoutEnv(host)+"printf \"max_wal_size = '%s'\\n\" "+strconv.Quote(m)+" >> $D/postgresql.auto.conf && systemctl reload "+pgUnit)
		}
		h.psqlWait("pg1", "SHOW max_wal_size", m)
		t.Logf("max_wal_size %s on both nodes", m)
	}
	// About 500 MB of table by default (RUNBOOK_E2E_REJOIN_DB_MB for
	// another size: 2,000,000 rows make 528 MB), its WAL streamed to pg2
	// (synchronously).
	dbMB := envInt(t, "RUNBOOK_E2E_REJOIN_DB_MB", 528, 100, "a size in MB of at least 100")
	rows := int64(dbMB-8) * 2000000 / 520
	h.psql("pg1", "CREATE TABLE big (id bigint, pad text); INSERT INTO big SELECT g, repeat(md5(g::text), 7) FROM generate_series(1, "+strconv.FormatInt(rows, 10)+") g")
	// A table in use has its hint bits set (autovacuum does it to a table
	// after a bulk load): without it, the new primary's first scan sets them
	// and, with wal_log_hints, logs every page again, and the rewound node
	// copies and replays a database's worth of WAL.
	h.psql("pg1", "VACUUM big")
	size := h.psql("pg1", "SELECT pg_size_pretty(pg_database_size('postgres'))")
	h.psql("pg1", "CHECKPOINT")
	t.Logf("database size: %s (%d rows)", size, rows)
	// A steady state rather than a failure right after the load
	// (RUNBOOK_E2E_REJOIN_STEADY=N): N rounds of ordinary writes (50,000
	// rows updated, about 13 MB of table), each followed by a checkpoint
	// on pg1 and a restartpoint on pg2, so that the load's WAL is recycled
	// as it would be by the time a failure comes. The standby answers no
	// SQL (hot_standby = off): its restartpoints come from its
	// checkpoint_timeout, 30 s during these rounds (time compressed: 5 min
	// by default), then back to its default.
	steady := envInt(t, "RUNBOOK_E2E_REJOIN_STEADY", 0, 0, "a number of rounds")
	if steady > 0 {
		walMB := func(host string) string { return h.sh(host, h.layoutEnv(host)+"du -sm $D/pg_wal | cut -f1") }
		t.Logf("after the load: pg_wal of pg1 %s MB, of pg2 %s MB", walMB("pg1"), walMB("pg2"))
		h.sh("pg2", h.layoutEnv("pg2")+"printf \"checkpoint_timeout = '30s'\\n\" >> $D/postgresql.auto.conf && systemctl reload "+pgUnit)
		for r := 0; r < steady; r++ {
			from := int64(r)*(rows/int64(steady)) + 1
			h.psql("pg1", fmt.Sprintf("UPDATE big SET pad = repeat(md5((id + %d)::text), 7) WHERE id BETWEEN %d AND %d", r+1, from, from+49999))
			h.psql("pg1", "CHECKPOINT")
			ckpt := h.psql("pg1", "SELECT checkpoint_lsn FROM pg_control_checkpoint()")
			h.sh("pg2", h.layoutEnv("pg2")+"for i in $(seq 900); do LC_ALL=C /usr/lib/postgresql/15/bin/pg_controldata -D $D | grep -q '^Latest checkpoint location: *"+ckpt+"$' && exit 0; sleep 0.1; done; exit 1")
			t.Logf("steady round %d: pg_wal of pg1 %s MB, of pg2 %s MB (its restartpoint at %s)", r+1, walMB("pg1"), walMB("pg2"), ckpt)
		}
		h.sh("pg2", h.layoutEnv("pg2")+"sed -i '/^checkpoint_timeout = /d' $D/postgresql.auto.conf && systemctl reload "+pgUnit)
	}

	h.failover("pg1", "pg2")
	lsn := h.psql("pg2", "SELECT pg_current_wal_lsn()")
	h.psql("pg2", "UPDATE big SET pad = 'x' WHERE id % 100000 = 0")
	t.Logf("WAL of the 20 updates on pg2: %s", h.psql("pg2", "SELECT pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), '"+lsn+"'))"))
	h.boot("pg1", pgUnit)
	h.sh("pg1", "systemctl stop "+pgUnit)
	walBefore := h.sh("pg2", h.layoutEnv("pg2")+"du -sm $D/pg_wal | cut -f1")
	t.Logf("before the rejoin: pg_wal of pg2 %s MB, of pg1 %s MB", walBefore, h.sh("pg1", h.layoutEnv("pg1")+"du -sm $D/pg_wal | cut -f1"))
	start := time.Now()
	// pg1 ran as a primary after the failover (its own autovacuum may
	// have committed there): what it wrote is discarded, as asked.
	out := h.ok("run", "pg-ha/rejoin", "-p", "primary=pg2", "-p", "standby=pg1", "-p", h.layoutArg, "-p", "discard_diverged=true")
	rewind := time.Since(start)
	t.Logf("rejoin:\n%s", out)
	m := rewoundRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("rejoin did not rewind:\n%s", out)
	}
	h.isSyncStandby("pg2", "pg1", "")
	// What the dry run estimated and what pg_rewind then copied.
	estimate, copied := "", ""
	if e := estimateRe.FindStringSubmatch(out); e != nil {
		estimate = e[1]
	}
	if c := copiedRe.FindStringSubmatch(out); c != nil {
		copied = c[1]
	}
	t.Logf("pg_rewind's dry run: %q; the rewind: %q", estimate, copied)

	// The same situation the other way, brought back by a base backup:
	// pg2 loses power and the rewound pg1 is promoted. After a steady
	// state that promotion once stopped pg1 (its WAL ended before the
	// minimum recovery point pg_rewind set); rejoin now waits until pg1
	// holds that WAL, and promote-standby refuses a node without it.
	primary, standby := "pg1", "pg2"
	h.failover("pg2", "pg1")
	h.psql("pg1", "UPDATE big SET pad = 'y' WHERE id % 100000 = 0")
	h.boot("pg2", pgUnit)
	h.sh("pg2", "systemctl stop "+pgUnit)
	start = time.Now()
	out = h.ok("run", "pg-ha/add-standby", "-p", "primary="+primary, "-p", "standby="+standby, "-p", h.layoutArg, "-p", "discard_standby_data=true")
	backup := time.Since(start)
	t.Logf("add-standby:\n%s", out)
	h.isSyncStandby(primary, standby, "")
	t.Logf("database %s: rejoin with pg_rewind %.1f s (pg_rewind itself %s s), add-standby with a base backup %.1f s", size, rewind.Seconds(), m[1], backup.Seconds())
	if f := os.Getenv("RUNBOOK_E2E_FIGURES"); f != "" {
		appendFigure(t, f, "rejoin max_wal_size="+os.Getenv("RUNBOOK_E2E_REJOIN_MAX_WAL_SIZE")+" database="+strings.ReplaceAll(size, " ", "")+" steady="+strconv.Itoa(steady)+
			" pg_wal_mb="+walBefore+" estimate="+strconv.Quote(estimate)+" copied="+strconv.Quote(copied)+
			" rewind_run_s="+strconvF(rewind)+" pg_rewind_s="+m[1]+" basebackup_run_s="+strconvF(backup))
	}
	if rewind >= backup {
		t.Errorf("the rewind (%.1f s) was not faster than the base backup (%.1f s)", rewind.Seconds(), backup.Seconds())
	}
}

func strconvF(d time.Duration) string { return fmt.Sprintf("%.1f", d.Seconds()) }

// envInt is the whole number in the environment variable name, def when it
// is unset or empty. A value that is no whole number, or is below min,
// fails the test with want, which says what the variable takes.
func envInt(t *testing.T, name string, def, min int, want string) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min {
		t.Fatalf("%s=%q: %s", name, v, want)
	}
	return n
}
