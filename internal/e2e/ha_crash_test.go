package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// apply runs a procedure that must succeed: at once, or in crash mode as
// a chain of killed and resumed attempts. Then it fingerprints the hosts
// and, in crash mode, compares them with the uninterrupted run's.
func (h *ha) apply(args ...string) string {
	h.t.Helper()
	var out string
	if h.crash {
		out = h.chain(args...)
	} else {
		out = h.ok(args...)
	}
	fp := h.fingerprint()
	h.prints = append(h.prints, fp)
	if n := len(h.prints); h.ref != nil && n <= len(h.ref) && h.ref[n-1] != fp {
		h.t.Fatalf("after %s with crashes, the hosts differ from the uninterrupted run's:\n%s\n--- uninterrupted:\n%s", strings.Join(args, " "), fp, h.ref[n-1])
	}
	return out
}

// crashPoints lists the crash points of steps 1..n in the order a run
// passes them: its intent recorded, its command running on the host (a
// base backup or a promotion goes on without the engine), its change made,
// its outcome recorded.
func crashPoints(n int) []string {
	var ps []string
	for i := 1; i <= n; i++ {
		ps = append(ps, fmt.Sprintf("intent:%d", i), fmt.Sprintf("started:%d", i), fmt.Sprintf("applied:%d", i), fmt.Sprintf("outcome:%d", i))
	}
	return ps
}

// chain runs a procedure with every crash point armed: the attempt dies at
// the first it reaches, the next attempt (a resume) at the next one, and
// so on until an attempt finishes. Every attempt must either be killed or
// succeed; a resume never needs the operator (every bundled step rechecks).
func (h *ha) chain(args ...string) string {
	h.t.Helper()
	start := time.Now()
	points := crashPoints(40)
	log := filepath.Join(h.t.TempDir(), "crashpoints")
	before := labJournals()
	cmdline := append([]string{args[0], "-i", h.l.InventoryPath()}, args[1:]...)
	runID := ""
	var all strings.Builder
	for attempt := 1; ; attempt++ {
		env := append(append([]string{}, h.env...), "RUNBOOK_CRASHPOINT="+strings.Join(points, ","), "RUNBOOK_CRASHPOINT_LOG="+log)
		out, errOut, err := runbook(h.t, env, cmdline...)
		all.WriteString(out + errOut)
		if strings.Contains(out+errOut, "Repl pw") || strings.Contains(out+errOut, "it's 9x") {
			h.t.Errorf("the replication password is in the output of %v", args)
		}
		var ee *exec.ExitError
		killed := errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
		if !killed {
			if err != nil {
				h.t.Fatalf("%s, attempt %d: %v\n%s%s", strings.Join(args, " "), attempt, err, out, errOut)
			}
			h.t.Logf("runbook %s: %d attempts, killed at every crash point in turn (%.1fs)", strings.Join(args, " "), attempt, time.Since(start).Seconds())
			return all.String()
		}
		if runID == "" {
			for f := range labJournals() {
				if !before[f] {
					runID = strings.TrimSuffix(filepath.Base(f), ".journal")
				}
			}
			if runID == "" {
				h.t.Fatalf("%s was killed before it journaled anything", strings.Join(args, " "))
			}
		}
		b, _ := os.ReadFile(log)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		fired := lines[len(lines)-1]
		i := 0
		for i < len(points) && points[i] != fired {
			i++
		}
		if i == len(points) {
			h.t.Fatalf("killed at %q, not an armed point", fired)
		}
		points = points[i+1:]
		cmdline = []string{"resume", runID, "--yes"}
	}
}

// fingerprint is the state of the hosts that a procedure is for, without
// what differs between two labs (passwords, times): configuration files,
// unit states, promotions (timeline history files), data directories
// moved aside, the role of each PostgreSQL and the rows written.
func (h *ha) fingerprint() string {
	h.t.Helper()
	var b strings.Builder
	for _, host := range []string{"pg1", "pg2", "orch"} {
		if out, err := h.l.Exec(h.ctx(), host, "true"); err != nil {
			fmt.Fprintf(&b, "%s is down (%s)\n", host, strings.TrimSpace(string(out)))
			continue
		}
		b.WriteString(host + ":\n" + h.sh(host, h.layoutEnv(host)+`cd $C && md5sum postgresql.conf pg_hba.conf
d=$D
test -f $d/postgresql.auto.conf && echo "auto.conf: $(grep -v '^#' $d/postgresql.auto.conf | sort | md5sum)"
test -f /etc/inmanta/inmanta.d/database.cfg && echo "database.cfg: $(grep -v '^password=' /etc/inmanta/inmanta.d/database.cfg | md5sum)"
echo "active: $(systemctl is-active $U inmanta-server | tr '\n' ' ')"
echo "enabled: $(systemctl is-enabled $U inmanta-server 2>/dev/null | tr '\n' ' ')"
echo "timeline histories: $(ls $d/pg_wal/ 2>/dev/null | grep -c history)"
echo "moved aside: $(ls -d $d.runbook-old-* 2>/dev/null | wc -l)"
test -f $d/standby.signal && echo standby.signal
if systemctl is-active -q $U; then
  cd / && runuser -u postgres -- psql -X -A -t -c "SELECT 'recovery ' || pg_is_in_recovery()" \
    -c "SELECT 'replication ' || coalesce(string_agg(application_name || ' ' || state || ' ' || sync_state, ','), 'none') FROM pg_stat_replication" \
    -c "SELECT 'slots ' || coalesce(string_agg(slot_name, ','), 'none') FROM pg_replication_slots" \
    -c "SELECT 'rows ' || CASE WHEN to_regclass('ha_rows') IS NULL THEN 'none' ELSE (xpath('/row/c/text()', query_to_xml('SELECT count(*) AS c FROM ha_rows', false, true, '')))[1]::text END" 2>&1 || true
fi
true`) + "\n")
	}
	return b.String()
}

func (h *ha) ctx() context.Context { return context.Background() }
