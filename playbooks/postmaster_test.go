package playbooks_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/internal/testpg"
	"github.com/runbook-dev/runbook/playbooks"
)

// TestLivePostmasterTests runs every bundled playbook's "is a postmaster
// alive in this data directory" test (each `if ... kill -0 "$pid" ...;
// then`), as written, against a real PostgreSQL: its own postmaster.pid
// names a live postmaster; a copy of its data directory whose
// postmaster.pid names another live process (a PID reused after a power
// cut, here a sleep of this test, run as root like the playbooks' steps)
// names none. A bare kill -0 takes the second for a live primary.
func TestLivePostmasterTests(t *testing.T) {
	pg := testpg.Start(t)
	pid := strings.TrimSpace(strings.SplitN(mustRead(t, filepath.Join(pg.Data, "postmaster.pid")), "\n", 2)[0])
	if _, err := strconv.Atoi(pid); err != nil {
		t.Fatalf("postmaster.pid: %q", pid)
	}
	other := exec.Command("sleep", "300")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
	stale := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, "postmaster.pid"), []byte(strconv.Itoa(other.Process.Pid)+"\n"+stale+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cond := regexp.MustCompile(`(?m)^\s*if (.*kill -0 "\$pid".*?); then`)
	found := 0
	for _, name := range playbooks.Names() {
		src, _ := playbooks.Lookup(name)
		for _, m := range cond.FindAllStringSubmatch(string(src), -1) {
			found++
			test := func(pid, dir string, as ...string) bool {
				script := "if " + m[1] + "; then echo live; else echo dead; fi"
				cmd := exec.Command("sh", "-c", script)
				if len(as) > 0 {
					// As the steps that run with become: postgres do.
					cmd = exec.Command("runuser", "-u", as[0], "--", "sh", "-c", script)
				}
				cmd.Env = append(os.Environ(), "pid="+pid, "DATA="+dir, "data="+dir)
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%s: %v: %s\n%s", name, err, out, script)
				}
				return strings.TrimSpace(string(out)) == "live"
			}
			if !test(pid, pg.Data) {
				t.Errorf("%s: the live postmaster %s of %s is not seen as live by: %s", name, pid, pg.Data, m[1])
			}
			if !test(pid, pg.Data, "postgres") {
				t.Errorf("%s: run as postgres, the live postmaster %s of %s is not seen as live by: %s", name, pid, pg.Data, m[1])
			}
			if test(strconv.Itoa(other.Process.Pid), stale) {
				t.Errorf("%s: a stale postmaster.pid naming another live process (a reused PID) reads as a live postmaster with: %s", name, m[1])
			}
			if test(pid, stale) {
				t.Errorf("%s: a live postmaster of another data directory reads as this one's with: %s", name, m[1])
			}
		}
	}
	if found < 8 {
		t.Fatalf("found %d postmaster tests in the bundled playbooks, want the 8 known", found)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
