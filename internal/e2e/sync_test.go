package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/runbook-dev/runbook/internal/lab"
)

// TestSyncStatusCheck proves, on one lab of two PostgreSQL nodes set up by
// the bundled procedures, the degraded-sync procedures, the status view
// and the monitoring check (issue 14, Must show 3, 4 and 5):
//
//   - with pg2 stopped a commit on pg1 hangs (a bounded client, killed
//     after 3 s, and pg_stat_activity shows its session waiting for the
//     synchronous standby);
//     after pg-ha/degrade-sync commits return; pg-ha/restore-sync with pg2
//     back makes pg_stat_replication show it sync, and a commit hangs again
//     while pg2 is stopped;
//     degrade-sync refuses while the synchronous standby streams, even
//     under a mistyped name, and while no commit waits; a DBA's own
//     synchronous_standby_names (ANY 1 (...)) is printed by degrade-sync
//     and brought back by restore-sync, which refuses a list not naming
//     the standby or waiting for more standbys than stream;
//   - pg-ha/status in a healthy, a degraded and a two-primary state says
//     what pg_stat_replication, pg_is_in_recovery() and pg_controldata say
//     when read directly, and exits 0 healthy, 5 NO PRIMARY, 6 TWO
//     PRIMARIES, 4 with a node not observed (not "NO PRIMARY" then);
//   - pg-ha/check exits 0, 1, 2 and 3 for healthy, lagging, disconnected
//     and unreachable with a Nagios status line (performance data in the
//     guidelines' grammar, no "|" without any), and its Prometheus file
//     parses with Prometheus's own text-format parser and is written on
//     every verdict (PostgreSQL stopped: 2, primary_up 0); CRITICAL when
//     the primary's PostgreSQL does not answer, UNKNOWN with the reason
//     when the monitoring cannot log in, WARNING "roles swapped" after a
//     switchover checked with the old roles.
func TestSyncStatusCheck(t *testing.T) {
	h := debianPair(t)
	h.psql("pg1", "CREATE TABLE sync_rows (id serial PRIMARY KEY, payload text)")
	prom := filepath.Join(t.TempDir(), "pgha.prom")
	check := []string{"run", "pg-ha/check", "-p", "primary=pg1", "-p", "standby=pg2", "-p", h.layoutArg, "-p", "prometheus_file=" + prom}
	status := []string{"run", "pg-ha/status", "-p", "nodes=pg1,pg2", "-p", h.layoutArg}

	// Healthy.
	st := h.status(0, status...)
	h.statusAgrees(st, "healthy")
	if st.Summary != "primary pg1, synchronous_standby_names = 'inmanta'" {
		t.Errorf("healthy summary: %q", st.Summary)
	}
	line := h.check(0, "PGHA OK - standby inmanta streams sync", check...)
	h.perfdata(line, "lag_bytes", "retained_wal", "replay_delay")
	h.promFile(prom, 0, map[string]float64{"pgha_standby_sync": 1, "pgha_synchronous_replication": 1, "pgha_second_primary": 0, "pgha_roles_swapped": 0})

	// A typo in the standby's name does not make the streaming synchronous
	// standby look dead: degrade-sync refuses and names what streams.
	h.refused("inmanta streaming/sync from "+h.address("pg2"), "run", "pg-ha/degrade-sync", "-p", "primary=pg1", "-p", "application_name=inmnata", "-p", h.layoutArg, "--yes")
	if got := h.psql("pg1", "SHOW synchronous_standby_names"); got != "inmanta" {
		t.Fatalf("synchronous_standby_names after a refused degrade-sync: %q", got)
	}

	// Lagging: pg2's startup process (replay) is stopped while its WAL
	// receiver still flushes, so commits return and replay falls behind.
	h.sh("pg2", "pkill -STOP -f '^postgres: .*startup'")
	h.psql("pg1", "INSERT INTO sync_rows (payload) SELECT repeat('x', 1000) FROM generate_series(1, 4000)")
	h.check(1, "PGHA WARNING - standby inmanta replays ", append(check, "-p", "warn_lag_bytes=1048576")...)
	h.promFile(prom, 1, nil)
	h.sh("pg2", "pkill -CONT -f '^postgres: .*startup'")

	// Must show 3: pg2 dead, a commit hangs.
	h.sh("pg2", "systemctl stop "+pgUnit)
	h.commitHangs(true)
	h.check(2, "PGHA CRITICAL - standby inmanta is disconnected: writes on the primary wait until it is back", check...)
	h.promFile(prom, 2, map[string]float64{"pgha_standby_streaming": 0})

	// The operator's decision: refused while no commit waits (nothing to
	// stop waiting for); with a commit waiting, without a terminal or
	// --yes it is refused before anything runs; with --yes the commits
	// return.
	degrade := []string{"run", "pg-ha/degrade-sync", "-p", "primary=pg1", "-p", h.layoutArg}
	h.waitFor("the cancelled commit no longer waits", "pg1", "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'", "0")
	h.refused("no commit waits for a synchronous standby", append(degrade, "--yes")...)
	h.sh("pg1", "cd / && (runuser -u postgres -- psql -X -q -c \"INSERT INTO sync_rows (payload) VALUES ('waits')\" >/dev/null 2>&1 &)")
	h.waitFor("a commit waits", "pg1", "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'", "1")
	if out, err := h.run(degrade...); err == nil || !strings.Contains(out, "--yes") {
		t.Fatalf("degrade-sync without --yes: %v\n%s", err, out)
	}
	out := h.ok(append(degrade, "--yes")...)
	if !strings.Contains(out, "WARNING: synchronous replication is OFF on pg1") {
		t.Errorf("degrade-sync does not warn:\n%s", out)
	}
	if got := h.psql("pg1", "SHOW synchronous_standby_names"); got != "" {
		t.Errorf("synchronous_standby_names after degrade-sync: %q", got)
	}
	h.commitHangs(false)
	h.unchanged(append(degrade, "--yes")...)
	h.journalSays("pg-ha/degrade-sync", "WARNING: synchronous replication is OFF on pg1")

	// Degraded, pg2 stopped: the status and the check say so.
	st = h.status(0, status...)
	h.statusAgrees(st, "degraded")
	if !strings.Contains(st.Summary, "DEGRADED") || st.node("pg2").Role != "stopped (shut down in recovery)" {
		t.Errorf("degraded status: %q, pg2 %q", st.Summary, st.node("pg2").Role)
	}
	h.check(2, "PGHA CRITICAL - standby inmanta is disconnected;", check...)
	h.refused("does not stream from pg1", "run", "pg-ha/restore-sync", "-p", "primary=pg1", "-p", "standby=pg2", "-p", h.layoutArg)

	// pg2 back: it streams (asynchronously), then restore-sync.
	h.sh("pg2", "systemctl start "+pgUnit)
	h.waitFor("pg2 streams", "pg1", "SELECT state FROM pg_stat_replication WHERE application_name = 'inmanta'", "streaming")
	h.check(1, "PGHA WARNING - synchronous_standby_names is empty on the primary", check...)
	restore := []string{"run", "pg-ha/restore-sync", "-p", "primary=pg1", "-p", "standby=pg2", "-p", h.layoutArg}
	h.ok(restore...)
	if got := h.psql("pg1", "SELECT application_name || ' ' || state || ' ' || sync_state FROM pg_stat_replication"); got != "inmanta streaming sync" {
		t.Fatalf("pg_stat_replication on pg1 after restore-sync: %q", got)
	}
	h.unchanged(restore...)
	h.check(0, "PGHA OK", check...)
	h.sh("pg2", "systemctl stop "+pgUnit)
	h.commitHangs(true)
	h.sh("pg2", "systemctl start "+pgUnit)
	h.waitFor("pg2 streams sync", "pg1", "SELECT state || ' ' || sync_state FROM pg_stat_replication WHERE application_name = 'inmanta'", "streaming sync")

	// A DBA's own list: restore-sync sets it only when it names the
	// standby and enough of the standbys it names stream; degrade-sync
	// prints it, and restore-sync given it brings it back.
	own := `ANY 1 (inmanta, "pg-3")`
	h.refused("does not name the standby inmanta", append(restore, "-p", "synchronous_standby_names=pg3")...)
	h.refused("waits for 2 standby(s) and only 1 of those it names stream", append(restore, "-p", `synchronous_standby_names=FIRST 2 (inmanta, "pg-3")`)...)
	h.ok(append(restore, "-p", "synchronous_standby_names="+own)...)
	if got := h.psql("pg1", "SHOW synchronous_standby_names"); got != own {
		t.Fatalf("synchronous_standby_names after restore-sync -p synchronous_standby_names=%s: %q", own, got)
	}
	h.waitFor("pg2 streams as quorum", "pg1", "SELECT state || ' ' || sync_state FROM pg_stat_replication WHERE application_name = 'inmanta'", "streaming quorum")
	h.sh("pg2", "systemctl stop "+pgUnit)
	h.sh("pg1", "cd / && (runuser -u postgres -- psql -X -q -c \"INSERT INTO sync_rows (payload) VALUES ('waits')\" >/dev/null 2>&1 &)")
	h.waitFor("a commit waits", "pg1", "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'", "1")
	out = h.ok(append(degrade, "--yes")...)
	if want := `-p synchronous_standby_names='` + own + `' (the value it had)`; !strings.Contains(out, want) {
		t.Errorf("degrade-sync of a DBA's own list does not print %q:\n%s", want, out)
	}
	h.sh("pg2", "systemctl start "+pgUnit)
	h.waitFor("pg2 streams", "pg1", "SELECT state FROM pg_stat_replication WHERE application_name = 'inmanta'", "streaming")
	h.ok(append(restore, "-p", "synchronous_standby_names="+own)...)
	if got := h.psql("pg1", "SHOW synchronous_standby_names"); got != own {
		t.Fatalf("synchronous_standby_names brought back: %q, want %q", got, own)
	}
	h.ok(restore...)
	h.waitFor("pg2 streams sync", "pg1", "SELECT current_setting('synchronous_standby_names') || ' ' || state || ' ' || sync_state FROM pg_stat_replication WHERE application_name = 'inmanta'", "inmanta streaming sync")

	// pg1's PostgreSQL stopped, its machine up: CRITICAL, and the
	// Prometheus file says so (no OK left from before); nothing measured,
	// no "|". pg2, a warm standby, and pg1 stopped: NO PRIMARY.
	h.sh("pg1", "systemctl stop "+pgUnit)
	line = h.check(2, "PGHA CRITICAL - PostgreSQL on the primary pg1 does not answer: ", check...)
	if strings.Contains(line, "|") {
		t.Errorf("a status line without performance data has a |: %q", line)
	}
	h.promFile(prom, 2, map[string]float64{"pgha_primary_up": 0, "pgha_second_primary": 0})
	h.promAbsent(prom, "pgha_standby_sync", "pgha_replay_delay_seconds")
	st = h.status(5, status...)
	if st.Summary != "NO PRIMARY among pg1, pg2" {
		t.Errorf("no-primary summary: %q", st.Summary)
	}
	h.sh("pg1", "systemctl start "+pgUnit)
	h.waitFor("pg2 streams sync", "pg1", "SELECT state || ' ' || sync_state FROM pg_stat_replication WHERE application_name = 'inmanta'", "streaming sync")

	// The monitoring cannot log in to pg1 (its machine answers): UNKNOWN,
	// with the reason, and the file holds no figure it did not observe.
	h.sh("pg1", "mv /root/.ssh/authorized_keys /root/.ssh/authorized_keys.off")
	h.check(3, "PGHA UNKNOWN - the monitoring cannot log in to the primary pg1 to observe it (the machine answers; ", check...)
	h.promFile(prom, 3, nil)
	h.promAbsent(prom, "pgha_primary_up", "pgha_standby_sync")
	h.sh("pg1", "mv /root/.ssh/authorized_keys.off /root/.ssh/authorized_keys")

	// After a switchover, the check with the old roles: roles swapped, a
	// WARNING, not "does not answer".
	h.ok("run", "pg-ha/switchover", "-p", "primary=pg1", "-p", "standby=pg2", "-p", h.layoutArg)
	h.check(1, "PGHA WARNING - roles swapped: pg2 is the primary, pg1 its standby (inmanta streaming/sync from "+h.address("pg1")+")", check...)
	h.promFile(prom, 1, map[string]float64{"pgha_roles_swapped": 1, "pgha_primary_up": 0, "pgha_second_primary": 0})
	swapped := []string{"run", "pg-ha/check", "-p", "primary=pg2", "-p", "standby=pg1", "-p", h.layoutArg, "-p", "prometheus_file=" + prom}
	h.check(0, "PGHA OK - standby inmanta streams sync", swapped...)

	// Two primaries: pg1 promoted behind the procedures' back.
	h.sh("pg1", "cd / && runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl promote -w -D "+h.layoutOf("pg1").Data)
	st = h.status(6, status...)
	h.statusAgrees(st, "two primaries")
	if !strings.HasPrefix(st.Summary, "TWO PRIMARIES: pg1 and pg2") {
		t.Errorf("two-primary summary: %q", st.Summary)
	}
	h.check(2, "PGHA CRITICAL - TWO PRIMARIES: pg1 accepts writes as well as pg2", swapped...)
	h.promFile(prom, 2, map[string]float64{"pgha_second_primary": 1, "pgha_roles_swapped": 0})

	// Unreachable: pg2 powered off.
	if err := h.l.Fault(context.Background(), "pg2", lab.FaultKill); err != nil {
		t.Fatal(err)
	}
	h.check(3, "PGHA UNKNOWN - cannot reach the primary pg2: nothing answers at its SSH port", swapped...)
	h.promFile(prom, 3, nil)
	h.promAbsent(prom, "pgha_primary_up")
	st = h.status(4, status...)
	if n := st.node("pg2"); n.Role != "unreachable" || n.Reachable {
		t.Errorf("status with pg2 powered off: pg2 %+v", n)
	}
	if n := st.node("pg1"); n.Role != "primary" {
		t.Errorf("status with pg2 powered off: pg1 %+v", n)
	}
	if !strings.HasPrefix(st.Summary, "primary pg1") || !strings.HasSuffix(st.Summary, "; pg2 not observed") {
		t.Errorf("summary with pg2 powered off: %q", st.Summary)
	}
	// No primary among those that answer, and one not observed: not "NO
	// PRIMARY" (pg2 may still serve), and the partial exit status.
	h.sh("pg1", "systemctl stop "+pgUnit)
	st = h.status(4, status...)
	if st.Summary != "no primary among the reachable nodes (pg1); pg2 not observed: it may still run as a primary; do not promote before it is observed or fenced" {
		t.Errorf("summary with pg2 powered off and pg1 stopped: %q", st.Summary)
	}
}

// statusView is pg-ha/status's value (its run-end event with --output json).
type statusView struct {
	Summary   string       `json:"summary"`
	Primaries []string     `json:"primaries"`
	Nodes     []statusNode `json:"nodes"`
	text      string
}

type statusNode struct {
	Name         string   `json:"name"`
	Reachable    bool     `json:"reachable"`
	Role         string   `json:"role"`
	ClusterState string   `json:"cluster_state"`
	Timeline     string   `json:"timeline"`
	CurrentLSN   string   `json:"current_lsn"`
	ReceivedLSN  string   `json:"received_lsn"`
	ReplayedLSN  string   `json:"replayed_lsn"`
	State        string   `json:"state"`
	SyncState    string   `json:"sync_state"`
	LagBytes     *float64 `json:"lag_bytes"`
	Slot         string   `json:"slot"`
	SlotActive   bool     `json:"slot_active"`
	UnitActive   string   `json:"unit_active"`
	UnitEnabled  string   `json:"unit_enabled"`
	UnitMasked   bool     `json:"unit_masked"`
}

func (v *statusView) node(name string) statusNode {
	for _, n := range v.Nodes {
		if n.Name == name {
			return n
		}
	}
	return statusNode{}
}

// status runs pg-ha/status twice, as a table and as JSON, wants exit
// status code from both and returns the JSON's view; the table must name
// every node with its role.
func (h *ha) status(code int, args ...string) *statusView {
	h.t.Helper()
	text, _, terr := runbook(h.t, h.env, append([]string{args[0], "-i", h.l.InventoryPath()}, args[1:]...)...)
	out, errOut, err := runbook(h.t, h.env, append([]string{args[0], "-i", h.l.InventoryPath(), "--output", "json"}, args[1:]...)...)
	if got, tgot := exitCode(h.t, err), exitCode(h.t, terr); got != code || tgot != code {
		h.t.Fatalf("pg-ha/status: exit %d (as a table %d), want %d\n%s%s%s", got, tgot, code, text, out, errOut)
	}
	var v statusView
	for _, l := range strings.Split(out, "\n") {
		var ev struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		}
		if json.Unmarshal([]byte(l), &ev) == nil && ev.Type == "run-end" {
			if err := json.Unmarshal(ev.Value, &v); err != nil {
				h.t.Fatalf("pg-ha/status value: %v\n%s", err, ev.Value)
			}
		}
	}
	v.text = text
	h.t.Logf("pg-ha/status:\n%s", text)
	for _, n := range v.Nodes {
		if !strings.Contains(text, n.Name+"  ") || !strings.Contains(text, n.Role) {
			h.t.Errorf("the status table lacks %s as %s:\n%s", n.Name, n.Role, text)
		}
	}
	return &v
}

// statusAgrees compares what pg-ha/status says of each node with what
// PostgreSQL says when asked directly: pg_is_in_recovery() where the
// server answers SQL, pg_controldata on every node, pg_stat_replication on
// the primaries, and the units.
func (h *ha) statusAgrees(v *statusView, what string) {
	h.t.Helper()
	var primaries []string
	for _, name := range []string{"pg1", "pg2"} {
		n := v.node(name)
		env := h.layoutEnv(name)
		state := h.sh(name, env+"LC_ALL=C /usr/lib/postgresql/15/bin/pg_controldata -D $D | sed -n 's/^Database cluster state: *//p'")
		if n.ClusterState != state {
			h.t.Errorf("%s: %s: cluster state %q, pg_controldata says %q", what, name, n.ClusterState, state)
		}
		active := h.sh(name, env+"systemctl is-active $U || true")
		if n.UnitActive != active {
			h.t.Errorf("%s: %s: unit %q, systemctl says %q", what, name, n.UnitActive, active)
		}
		answer, _ := h.l.Exec(context.Background(), name, "sh", "-c", "cd / && runuser -u postgres -- psql -X -A -t -c 'SELECT pg_is_in_recovery()'")
		switch strings.TrimSpace(string(answer)) {
		case "f":
			primaries = append(primaries, name)
			if n.Role != "primary" {
				h.t.Errorf("%s: %s answers pg_is_in_recovery() = f, status says %q", what, name, n.Role)
			}
			tl := h.psql(name, "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")
			if n.Timeline != tl {
				h.t.Errorf("%s: %s: timeline %q, the server says %q", what, name, n.Timeline, tl)
			}
			rows := h.psql(name, "SELECT application_name || ' ' || state || ' ' || sync_state || ' ' || host(client_addr) FROM pg_stat_replication")
			for _, r := range strings.Split(rows, "\n") {
				f := strings.Fields(r)
				if len(f) != 4 {
					continue
				}
				other := "pg1"
				if name == "pg1" {
					other = "pg2"
				}
				s := v.node(other)
				if s.State != f[1] || s.SyncState != f[2] {
					h.t.Errorf("%s: pg_stat_replication on %s says %s is %s/%s, status says %s/%s", what, name, other, f[1], f[2], s.State, s.SyncState)
				}
				if s.LagBytes == nil || s.ReplayedLSN == "" || s.Slot == "" || !s.SlotActive {
					h.t.Errorf("%s: %s streams, status lacks its lag, replayed LSN or slot: %+v", what, other, s)
				}
			}
			if rows == "" {
				for _, s := range v.Nodes {
					if s.Name != name && s.State != "" {
						h.t.Errorf("%s: %s has no standby in pg_stat_replication, status says %s is %s", what, name, s.Name, s.State)
					}
				}
			}
		default:
			if state == "in archive recovery" && n.Role != "standby" {
				h.t.Errorf("%s: %s is in archive recovery, status says %q", what, name, n.Role)
			}
			if state == "in archive recovery" {
				tl := h.sh(name, env+"LC_ALL=C /usr/lib/postgresql/15/bin/pg_controldata -D $D | sed -n \"s/^Latest checkpoint's TimeLineID: *//p\"")
				if n.Timeline != tl {
					h.t.Errorf("%s: %s: timeline %q, pg_controldata says %q", what, name, n.Timeline, tl)
				}
			}
		}
	}
	if strings.Join(primaries, ",") != strings.Join(v.Primaries, ",") {
		h.t.Errorf("%s: primaries %v, pg_is_in_recovery() says %v", what, v.Primaries, primaries)
	}
}

// check runs pg-ha/check and wants exit status code and a first line of
// standard output starting with want; it returns that line.
func (h *ha) check(code int, want string, args ...string) string {
	h.t.Helper()
	start := time.Now()
	out, errOut, err := runbook(h.t, h.env, append([]string{args[0], "-i", h.l.InventoryPath()}, args[1:]...)...)
	got := exitCode(h.t, err)
	line, _, _ := strings.Cut(out, "\n")
	h.perfValues(line)
	h.t.Logf("pg-ha/check (%.1fs): exit %d: %s", time.Since(start).Seconds(), got, line)
	if got != code || !strings.HasPrefix(line, want) {
		h.t.Errorf("pg-ha/check: exit %d, want %d; first line %q, want %q...\n%s%s", got, code, line, want, out, errOut)
	}
	return line
}

// exitCode is the exit status of a finished runbook process.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0
}

// perfValue is a value of Nagios performance data as the plugin
// guidelines write it: [-0-9.]+ and a unit of measure; no exponent.
var perfValue = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?[a-zA-Z%]*$`)

// perfValues checks that a status line's performance data, when it has
// any, is there after "|" and that each value and threshold follows the
// guidelines' grammar; a line with none has no "|".
func (h *ha) perfValues(line string) {
	h.t.Helper()
	_, perf, ok := strings.Cut(line, "|")
	if !ok {
		return
	}
	if strings.TrimSpace(perf) == "" {
		h.t.Errorf("a status line ends in an empty performance data after |: %q", line)
	}
	for _, item := range strings.Fields(perf) {
		_, rest, _ := strings.Cut(item, "=")
		for i, v := range strings.Split(rest, ";") {
			if (i == 0 || v != "") && !perfValue.MatchString(v) {
				h.t.Errorf("performance data %q: %q is not a number as the plugin guidelines write it", item, v)
			}
		}
	}
}

// promAbsent checks that the check's Prometheus file holds none of names.
func (h *ha) promAbsent(path string, names ...string) {
	h.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, n := range names {
		if strings.Contains(string(b), "\n"+n+"{") || strings.HasPrefix(string(b), n+"{") {
			h.t.Errorf("%s holds %s, which this run did not observe:\n%s", path, n, b)
		}
	}
}

// perfdata checks the Nagios performance data of a status line: after
// "|", label=value[UOM];warn;crit;min for each label wanted.
func (h *ha) perfdata(line string, labels ...string) {
	h.t.Helper()
	_, perf, ok := strings.Cut(line, " | ")
	if !ok {
		h.t.Fatalf("no performance data in %q", line)
	}
	seen := map[string]bool{}
	for _, item := range strings.Fields(perf) {
		label, rest, ok := strings.Cut(item, "=")
		if !ok || len(strings.Split(rest, ";")) != 4 {
			h.t.Errorf("performance data item %q is not label=value;warn;crit;min", item)
		}
		seen[label] = true
	}
	for _, l := range labels {
		if !seen[l] {
			h.t.Errorf("performance data %q lacks %s", perf, l)
		}
	}
}

// promFile parses the check's Prometheus file with Prometheus's own text
// parser and checks its status and the values wanted.
func (h *ha) promFile(path string, status float64, want map[string]float64) {
	h.t.Helper()
	f, err := os.Open(path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(f)
	if err != nil {
		h.t.Fatalf("%s does not parse as Prometheus's text format: %v", path, err)
	}
	if want == nil {
		want = map[string]float64{}
	}
	want["pgha_check_status"] = status
	for name, v := range want {
		fam, ok := fams[name]
		if !ok || len(fam.GetMetric()) != 1 {
			h.t.Errorf("%s: no single %s", path, name)
			continue
		}
		if got := fam.GetMetric()[0].GetGauge().GetValue(); got != v {
			h.t.Errorf("%s: %s = %v, want %v", path, name, got, v)
		}
	}
}

// commitHangs runs a commit on pg1 with a bounded client (timeout kills
// psql after 3 s; statement_timeout does not apply to the wait at commit)
// and says from pg_stat_activity whether its session still waits for the
// synchronous standby (wait_event SyncRep); such a session is cancelled
// afterwards (its row is committed locally). hangs says which is wanted.
func (h *ha) commitHangs(hangs bool) {
	h.t.Helper()
	start := time.Now()
	out, _ := h.l.Exec(context.Background(), "pg1", "sh", "-c",
		"cd / && runuser -u postgres -- timeout 3 psql -X -A -t -c \"INSERT INTO sync_rows (payload) VALUES ('commit') RETURNING id\" 2>&1; echo \"exit $?\"")
	took := time.Since(start)
	waiting := h.psql("pg1", "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")
	h.t.Logf("a commit on pg1: %.1fs, %s; sessions waiting for the synchronous standby: %s", took.Seconds(), strings.Join(strings.Fields(string(out)), " "), waiting)
	returned := strings.Contains(string(out), "exit 0")
	if hangs && (returned || waiting == "0") {
		h.t.Errorf("a commit on pg1 did not wait for the synchronous standby (%.1fs, %s waiting):\n%s", took.Seconds(), waiting, out)
	}
	if !hangs && (!returned || waiting != "0") {
		h.t.Errorf("a commit on pg1 did not return at once (%.1fs, %s waiting):\n%s", took.Seconds(), waiting, out)
	}
	h.psql("pg1", "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")
}

// waitFor polls a query on host until it gives want, for at most a minute.
func (h *ha) waitFor(what, host, sql, want string) {
	h.t.Helper()
	deadline := time.Now().Add(time.Minute)
	got := ""
	for time.Now().Before(deadline) {
		if got = h.psql(host, sql); got == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.t.Fatalf("%s: %q after a minute, want %q", what, got, want)
}

// journalSays checks that a journal of playbook holds text.
func (h *ha) journalSays(playbook, text string) {
	h.t.Helper()
	out, errOut, err := runbook(h.t, h.env, "runs")
	if err != nil {
		h.t.Fatalf("runbook runs: %v\n%s", err, errOut)
	}
	var ids []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == playbook {
			ids = append(ids, f[0])
		}
	}
	for _, id := range ids {
		if shown, _, err := runbook(h.t, h.env, "show-run", id); err == nil && strings.Contains(shown, text) {
			return
		}
	}
	h.t.Errorf("no journal of %s (%v) holds %q:\n%s", playbook, ids, text, out)
}
