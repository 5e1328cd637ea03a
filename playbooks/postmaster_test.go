package playbooks_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/internal/testpg"
	"github.com/runbook-dev/runbook/playbooks"
)

// TestLivePostmasterTests runs the bundled playbooks' one "is a postmaster
// alive in this data directory" test (live_postmaster, written once in
// shared/postmaster.vars.yaml), as written, against a real PostgreSQL: its
// own postmaster.pid names a live postmaster; a copy of its data
// directory whose postmaster.pid names another live process (a PID reused
// after a power cut, here a sleep of this test, run as root like the
// playbooks' steps) names none; nor does a live postmaster of another data
// directory, given by PID (as pg-ha/check finds it from the socket's lock
// file). A bare kill -0 takes the second for a live primary. No bundled
// playbook holds a copy of the test: each that asks runs the function.
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
	livePostmaster := sharedFunction(t, "postmaster", "live_postmaster")
	test := func(call string, as ...string) bool {
		script := livePostmaster + "if " + call + "; then echo live; else echo dead; fi"
		cmd := exec.Command("sh", "-c", script)
		if len(as) > 0 {
			// As the steps that run with become: postgres do.
			cmd = exec.Command("runuser", "-u", as[0], "--", "sh", "-c", script)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s\n%s", err, out, script)
		}
		return strings.TrimSpace(string(out)) == "live"
	}
	for _, c := range []struct {
		call string
		live bool
	}{
		{"live_postmaster " + pg.Data, true},
		{"live_postmaster " + pg.Data + " " + pid, true},
		{"live_postmaster " + stale, false},
		{"live_postmaster " + stale + " " + pid, false},
		{"live_postmaster " + stale + " ''", false},
	} {
		if got := test(c.call); got != c.live {
			t.Errorf("%s: live %v, want %v", c.call, got, c.live)
		}
		if got := test(c.call, "postgres"); got != c.live {
			t.Errorf("run as postgres, %s: live %v, want %v", c.call, got, c.live)
		}
	}
	users := 0
	for _, name := range playbooks.Names() {
		src, _ := playbooks.Lookup(name)
		if strings.Contains(string(src), `kill -0 "$pid"`) {
			t.Errorf("%s holds its own live postmaster test: run live_postmaster (shared/postmaster.vars.yaml)", name)
		}
		if n := strings.Count(string(src), "live_postmaster \""); n > 0 {
			users++
			if !strings.Contains(string(src), `eval "$LIVE_POSTMASTER"`) || !strings.Contains(string(src), "../shared/postmaster.vars.yaml") {
				t.Errorf("%s calls live_postmaster without listing shared/postmaster.vars.yaml and eval \"$LIVE_POSTMASTER\"", name)
			}
		}
	}
	if users < 6 {
		t.Fatalf("%d bundled playbooks ask whether a postmaster is alive, want the 6 known", users)
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
