package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// asideRoots are where TestDiskBound's nodes keep their data, and so where
// base backups set old data aside: the data directory (on pg2 a mount
// point: what it sets aside is inside it), pg1's WAL directory (pg_wal
// links to it) and the tablespace's directory.
var asideRoots = []string{"/var/lib/postgresql/15", pgData, "/srv/wal", "/tblspc"}

// asideDirs lists, on a lab host, the directories set aside by base
// backups, read on the filesystems directly: stamp → paths.
func (h *ha) asideDirs(host string) map[string][]string {
	h.t.Helper()
	out := h.sh(host, "find "+strings.Join(asideRoots, " ")+` -maxdepth 1 -type d -name '*runbook-old-*' 2>/dev/null | sort -u`)
	sets := map[string][]string{}
	for _, p := range strings.Fields(out) {
		stamp := p[strings.LastIndex(p, "-")+1:]
		sets[stamp] = append(sets[stamp], p)
	}
	return sets
}

// stamps are the keys of sets, oldest first.
func stamps(sets map[string][]string) []string {
	var s []string
	for k := range sets {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// journals counts the files in the tests' journal directory.
func journals(t *testing.T) int {
	t.Helper()
	runs, err := os.ReadDir(filepath.Join(stateDir, "runbook", "runs"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return len(runs)
}

// TestDiskBound shows that the data base backups set aside stays bounded
// through failovers (issue 14, must show 6): five failovers, each followed
// by the old primary's rebuild with pg-ha/add-standby (its data, which
// may hold transactions the new primary never had, is set aside), the
// roles alternating so that both nodes set data aside. The rebuilds are
// what set data aside (a rejoin by pg_rewind sets nothing aside), so the
// failover is the cheapest one: the old primary stopped, the standby
// promoted. pg1 keeps its WAL on a directory of its own (pg_wal a link),
// pg2's data directory is a mount point (what is set aside stays inside
// it), and a tablespace lives outside both: a set is three directories on
// pg1, two on pg2. The first three rebuilds keep two sets, the last two
// the default one: after each, the node holds the newest sets and no
// more, listed on its filesystems, and the run's output names each path
// removed with its size; a rerun removes nothing. Then 100 runs of
// pg-ha/check and one of pg-ha/status (read-only) leave no journal.
func TestDiskBound(t *testing.T) {
	start := time.Now()
	l := startLab(t, "pg1", "pg2")
	h := &ha{t: t, l: l, env: []string{"RUNBOOK_REPLICATION_PASSWORD=" + replicationPassword}, layoutArg: "layout=debian"}
	for _, host := range []string{"pg1", "pg2"} {
		h.sh(host, "systemctl stop "+pgUnit+" && mkdir -p /tblspc/ts1 && chown -R postgres:postgres /tblspc")
	}
	h.sh("pg1", `set -e
mkdir -p /srv/wal && mv `+pgData+`/pg_wal /srv/wal/pg_wal && ln -s /srv/wal/pg_wal `+pgData+`/pg_wal
chown -h postgres:postgres `+pgData+`/pg_wal && chown postgres:postgres /srv/wal`)
	h.sh("pg2", "mv "+pgData+" "+pgData+".orig")
	h.disk("pg2", pgData, 1024)
	h.sh("pg2", "cp -a "+pgData+".orig/. "+pgData+"/ && rm -rf "+pgData+".orig && chown postgres:postgres "+pgData+" && chmod 700 "+pgData)
	for _, host := range []string{"pg1", "pg2"} {
		h.sh(host, "systemctl start "+pgUnit)
	}
	h.ok("run", "pg-ha/configure-primary", "-p", "primary=pg1", "-p", "standby=pg2", "-p", h.layoutArg)
	h.psql("pg1", "CREATE TABLESPACE ts1 LOCATION '/tblspc/ts1'")
	h.psql("pg1", "CREATE TABLE disk_rows TABLESPACE ts1 AS SELECT g AS id FROM generate_series(1, 1000) g")
	h.ok("run", "pg-ha/configure-standby", "-p", "primary=pg1", "-p", "standby=pg2", "-p", h.layoutArg)
	// pg2's fresh cluster, set aside by the standby's first base backup.
	if sets := h.asideDirs("pg2"); len(sets) != 1 {
		t.Fatalf("pg2 after configure-standby: want one set aside (its fresh cluster), have %v", sets)
	}
	t.Logf("setup in %.1fs", time.Since(start).Seconds())

	parts := map[string]int{"pg1": 3, "pg2": 2}
	// The removal's step number in add-standby, as its output says.
	pruneStep := ""
	primary, standby := "pg1", "pg2"
	var add []string
	for cycle := 1; cycle <= 5; cycle++ {
		keep := 2
		if cycle > 3 {
			keep = 1
		}
		h.sh(primary, "systemctl stop "+pgUnit)
		h.ok("run", "pg-ha/promote-standby", "-p", "standby="+standby, "-p", "old_primary="+primary, "-p", h.layoutArg, "--yes")
		h.psql(standby, "INSERT INTO disk_rows VALUES (-1)")
		before := h.asideDirs(primary)
		add = []string{"run", "pg-ha/add-standby", "-p", "primary=" + standby, "-p", "standby=" + primary, "-p", h.layoutArg, "-p", "discard_standby_data=true"}
		if keep != 1 {
			add = append(add, "-p", "keep_aside=2")
		}
		var out string
		if cycle == 4 {
			// Killed while its removal runs on the host, then resumed.
			out = h.killedAndResumed(pruneStep, add...)
		} else {
			out = h.ok(add...)
		}
		if m := pruneStepRe.FindStringSubmatch(out); m != nil {
			pruneStep = m[1]
		}
		h.isSyncStandby(standby, primary, "")
		after := h.asideDirs(primary)

		// The new set is the one stamp after the run that was not there
		// before; the newest keep of all are kept, the others removed.
		var made []string
		for _, s := range stamps(after) {
			if before[s] == nil {
				made = append(made, s)
			}
		}
		if len(made) != 1 {
			t.Fatalf("cycle %d: %s: want one new set aside, have %v (before %v)", cycle, primary, after, before)
		}
		all := append(stamps(before), made[0])
		sort.Strings(all)
		want := all[max(0, len(all)-keep):]
		if got := stamps(after); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("cycle %d: %s holds the sets %v, want the newest %d of %v", cycle, primary, got, keep, all)
		}
		for _, s := range stamps(after) {
			if len(after[s]) != parts[primary] {
				t.Errorf("cycle %d: %s: set %s is %v, want %d directories (data, WAL, tablespace on pg1; data, tablespace on pg2)", cycle, primary, s, after[s], parts[primary])
			}
		}
		removed := 0
		for _, s := range all[:len(all)-len(want)] {
			for _, p := range before[s] {
				removed++
				// Resumed, the removal says what the killed attempt removed.
				if !strings.Contains(out, "removed "+p+" (") && !(cycle == 4 && strings.Contains(out, "removed already: "+p)) {
					t.Errorf("cycle %d: the output does not name %s, removed, with its size:\n%s", cycle, p, out)
				}
			}
		}
		t.Logf("cycle %d: %s rebuilt as %s's standby, keep_aside=%d: sets %v, %d directories removed", cycle, primary, standby, keep, stamps(after), removed)
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "removed /") {
				t.Log(strings.TrimSpace(line))
			}
		}
		primary, standby = standby, primary
	}
	if got := h.psql(primary, "SELECT count(*) FROM disk_rows"); got != "1005" {
		t.Errorf("disk_rows on %s: %s rows, want 1005", primary, got)
	}
	for _, host := range []string{"pg1", "pg2"} {
		if sets := h.asideDirs(host); len(sets) > 1 {
			t.Errorf("%s after five failovers: %d sets aside, want at most 1 (keep_aside): %v", host, len(sets), sets)
		}
	}
	// The last rebuild again: nothing more is removed, nothing changes.
	kept := h.asideDirs(standby)
	h.unchanged(add...)
	if got := h.asideDirs(standby); strings.Join(stamps(got), " ") != strings.Join(stamps(kept), " ") {
		t.Errorf("a rerun of add-standby changed what %s keeps aside: %v, was %v", standby, got, kept)
	}

	// Read-only runs keep no journal, as cron would run the check.
	n := journals(t)
	if n == 0 {
		t.Fatal("no journal of the procedures above: the count below would prove nothing")
	}
	// Four at a time (a monitoring system checks other things meanwhile),
	// to keep the lab's time short.
	checkStart := time.Now()
	var wg sync.WaitGroup
	fails := make(chan string, 100)
	runs := make(chan int, 100)
	for i := range 100 {
		runs <- i + 1
	}
	close(runs)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range runs {
				out, errOut, err := runbook(t, h.env, "run", "-i", l.InventoryPath(), "pg-ha/check", "-p", "primary="+primary, "-p", "standby="+standby, "-p", h.layoutArg)
				if err != nil || !strings.HasPrefix(out, "PGHA OK - ") {
					fails <- fmt.Sprintf("check run %d: %v, want exit 0 and PGHA OK:\n%s%s", i, err, out, errOut)
				}
			}
		}()
	}
	wg.Wait()
	close(fails)
	for f := range fails {
		t.Error(f)
	}
	t.Logf("100 runs of pg-ha/check in %.1fs", time.Since(checkStart).Seconds())
	h.ok("run", "pg-ha/status", "-p", "nodes=pg1,pg2", "-p", h.layoutArg)
	if got := journals(t); got != n {
		t.Errorf("100 runs of pg-ha/check and one of pg-ha/status: %d journals, were %d", got, n)
	}
	t.Logf("TestDiskBound in %.1fs", time.Since(start).Seconds())
}

// pruneStepRe finds the step of add-standby that removes the sets beyond
// keep_aside, and its number, in the run's output.
var pruneStepRe = regexp.MustCompile(`\[([0-9]+)\] +[a-z-]+ +standby: Remove the sets set aside beyond keep_aside`)

// killedAndResumed runs a procedure killed (SIGKILL) as soon as the
// command of step number step runs on its host, then resumes it; it
// returns the output of both.
func (h *ha) killedAndResumed(step string, args ...string) string {
	h.t.Helper()
	if step == "" {
		h.t.Fatal("the removal's step number was not seen in an earlier run's output")
	}
	before := labJournals()
	env := append(append([]string{}, h.env...), "RUNBOOK_CRASHPOINT=started:"+step)
	out, errOut, err := runbook(h.t, env, append([]string{args[0], "-i", h.l.InventoryPath()}, args[1:]...)...)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() {
		h.t.Fatalf("runbook %s was not killed at step %s: %v\n%s%s", strings.Join(args, " "), step, err, out, errOut)
	}
	id := killedRun(h.t, before)
	rout, rerr, err := runbook(h.t, h.env, "resume", id, "--yes")
	if err != nil {
		h.t.Fatalf("runbook resume %s: %v\n%s%s", id, err, rout, rerr)
	}
	resumed := rout + rerr
	for _, l := range strings.Split(out+errOut+resumed, "\n") {
		if strings.Contains(l, "removed already: ") {
			h.t.Logf("killed at step %s's command, run %s resumed: %s", step, id, strings.TrimSpace(l))
		}
	}
	return out + errOut + resumed
}
