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

// TestSharedStateInPostgres: two operators on two machines (two runs that
// share nothing but the PostgreSQL of --state) start procedures with the
// same lock: exactly one proceeds. A run that failed is then resumed
// through the shared store, as another operator would from their machine.
func TestSharedStateInPostgres(t *testing.T) {
	pg := testpg.Start(t)
	url := pg.URL()
	dir := t.TempDir()
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
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := cli.Main(append([]string{"runbook"}, args...), strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
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
			c, o, e := run("run", pb, "-p", "out="+out, "--state", url)
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
	code, _, stderr := run("run", pb, "-p", "out="+out, "--state", url)
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
	code, stdout, stderr := run("resume", m[2], "--state", url)
	if code != 0 || !strings.Contains(stdout, "done by an earlier attempt") {
		t.Fatalf("resume: exit %d\n%s%s", code, stdout, stderr)
	}
	if b, _ := os.ReadFile(out); string(b) != "done\n" {
		t.Errorf("the finished step ran again: %q", b)
	}
	code, stdout, _ = run("runs", "--state", url)
	if code != 0 || !strings.Contains(stdout, m[2]) || !strings.Contains(stdout, "ok (2 attempts)") {
		t.Errorf("runs:\n%s", stdout)
	}
	code, stdout, _ = run("show-run", m[2], "--state", url)
	if code != 0 || !strings.Contains(stdout, "resumed by") || !strings.Contains(stdout, "end: ok") {
		t.Errorf("show-run:\n%s", stdout)
	}
}
