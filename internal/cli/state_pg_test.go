package cli_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/runbook-dev/runbook/internal/cli"
	"github.com/runbook-dev/runbook/internal/testpg"
)

// sharedStore starts a PostgreSQL to keep the runs of a test (--state
// URL) and returns its URL.
func sharedStore(t *testing.T) string {
	t.Helper()
	return testpg.Start(t).URL()
}

// runbook runs the command line with args and no input; it returns the
// exit code and what was printed on stdout and on stderr.
func runbook(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = cli.Main(append([]string{"runbook"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// TestSharedStateInPostgres: two operators on two machines (two runs that
// share nothing but the PostgreSQL of --state) start procedures with the
// same lock: exactly one proceeds. A run that failed is then resumed
// through the shared store, as another operator would from their machine.
func TestSharedStateInPostgres(t *testing.T) {
	url, dir := sharedStore(t), t.TempDir()
	pb := filepath.Join(dir, "slow.yaml")
	if err := os.WriteFile(pb, []byte(`version: 1
name: shared/slow
params:
  out: {type: string}
lock: cluster-prod
steps:
  - id: work
    name: work
    ssh-exec:
      command: sleep 1 && echo done >> ${{ params.out }}
  - id: gate
    name: gate
    ssh-exec:
      command: test -f ${{ params.out }}.open
`), 0o600); err != nil {
		t.Fatal(err)
	}
	type res struct {
		code     int
		out, err string
	}
	results := make([]res, 2)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			out := filepath.Join(dir, fmt.Sprintf("out%d", i))
			_ = os.WriteFile(out+".open", nil, 0o600)
			c, o, e := runbook("run", pb, "-p", "out="+out, "--state", url)
			results[i] = res{c, o, e}
		})
	}
	wg.Wait()
	ok, refused := 0, 0
	for _, r := range results {
		switch {
		case r.code == 0:
			ok++
		case strings.Contains(r.err, `lock "cluster-prod" is held by run `) && strings.Contains(r.err, "nothing was run"):
			refused++
		default:
			t.Errorf("exit %d:\n%s%s", r.code, r.out, r.err)
		}
	}
	if ok != 1 || refused != 1 {
		t.Fatalf("%d proceeded, %d refused; want 1 and 1", ok, refused)
	}

	// A run that fails at its gate, resumed through the store.
	out := filepath.Join(dir, "out-resume")
	code, _, stderr := runbook("run", pb, "-p", "out="+out, "--state", url)
	if code == 0 {
		t.Fatal("the gate did not fail")
	}
	m := regexp.MustCompile(`continue with: (runbook resume (\S+) --state (\S+))`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no resume command:\n%s", stderr)
	}
	if strings.Contains(m[1], testpg.Password) {
		t.Errorf("the resume command shows the password: %s", m[1])
	}
	if err := os.WriteFile(out+".open", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runbook("resume", m[2], "--state", url)
	if code != 0 || !strings.Contains(stdout, "done by an earlier attempt") {
		t.Fatalf("resume: exit %d\n%s%s", code, stdout, stderr)
	}
	if b, _ := os.ReadFile(out); string(b) != "done\n" {
		t.Errorf("the finished step ran again: %q", b)
	}
	code, stdout, _ = runbook("runs", "--state", url)
	if code != 0 || !strings.Contains(stdout, m[2]) || !strings.Contains(stdout, "ok (2 attempts)") {
		t.Errorf("runs:\n%s", stdout)
	}
	code, stdout, _ = runbook("show-run", m[2], "--state", url)
	if code != 0 || !strings.Contains(stdout, "resumed by") || !strings.Contains(stdout, "end: ok") {
		t.Errorf("show-run:\n%s", stdout)
	}
}

// TestPruneSharedState: runs prune works on the shared PostgreSQL store as
// on a state directory: the old finished run goes, the failed one stays
// until --force.
func TestPruneSharedState(t *testing.T) {
	url, dir := sharedStore(t), t.TempDir()
	for name, cmd := range map[string]string{"fine": "true", "failing": "false"} {
		src := fmt.Sprintf("version: 1\nname: prune/%s\nsteps:\n  - id: a\n    ssh-exec: {command: \"%s\"}\n", name, cmd)
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// What a command printed, on stdout and stderr, read as one.
	run := func(args ...string) (int, string) {
		code, stdout, stderr := runbook(args...)
		return code, stdout + stderr
	}
	for _, pb := range []string{"fine", "failing", "fine"} {
		run("run", filepath.Join(dir, pb+".yaml"), "--state", url)
	}
	code, out := run("runs", "prune", "--keep", "1", "--state", url)
	if code != cli.ExitOK || !strings.Contains(out, "removed the journals of 1 run(s) from the shared store") || !strings.Contains(out, "(prune/failing, failed): it can still be resumed") {
		t.Fatalf("runs prune --keep 1: exit %d\n%s", code, out)
	}
	if _, out := run("runs", "--state", url); strings.Count(out, "prune/fine") != 1 || strings.Count(out, "prune/failing") != 1 {
		t.Errorf("after the prune, runs lists:\n%s", out)
	}
	if code, out := run("runs", "prune", "--keep", "1", "--force", "--state", url); code != cli.ExitOK || !strings.Contains(out, "prune/failing") {
		t.Errorf("runs prune --force: exit %d\n%s", code, out)
	}
	if _, out := run("runs", "--state", url); strings.Count(out, "prune/") != 1 {
		t.Errorf("after the forced prune, runs lists:\n%s", out)
	}
}
