package textcheck_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/textcheck"
	"github.com/runbook-dev/runbook/steps"
)

func shellcheck(t *testing.T) string {
	t.Helper()
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		if os.Getenv("RUNBOOK_REQUIRE_REAL") != "" {
			t.Fatal("shellcheck is not installed (RUNBOOK_REQUIRE_REAL is set)")
		}
		t.Skip("shellcheck is not installed")
	}
	return sc
}

func playbook(cmd string) []byte {
	return fmt.Appendf(nil, "version: 1\nname: t/p\nsteps:\n  - id: a\n    ssh-exec:\n      command: %s\n      read_only: true\n", cmd)
}

// TestCheckConcurrent: files checked at once by many goroutines, sharing
// texts or not, each get their own findings, once.
func TestCheckConcurrent(t *testing.T) {
	c := textcheck.New(context.Background(), shellcheck(t))
	l := &engine.Loader{Registry: steps.Builtin(), Inside: c}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			cmd := "echo $x"
			if i%2 == 1 {
				cmd = fmt.Sprintf("echo %d $y", i)
			}
			_, ds := l.Load(fmt.Sprintf("p%d.yaml", i), playbook(cmd))
			var got []string
			for _, d := range ds {
				got = append(got, d.Rule)
			}
			if strings.Join(got, " ") != "shellcheck:SC2086 shellcheck:SC2154" {
				errs <- fmt.Errorf("p%d.yaml: %v", i, ds)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestEnvIsSet: a variable given by env: is not "referenced but not
// assigned".
func TestEnvIsSet(t *testing.T) {
	c := textcheck.New(context.Background(), shellcheck(t))
	l := &engine.Loader{Registry: steps.Builtin(), Inside: c}
	src := "version: 1\nname: t/p\nsteps:\n  - id: a\n    ssh-exec:\n      command: echo \"$pw\" \"$other\"\n      env: {pw: x}\n      read_only: true\n"
	_, ds := l.Load("p.yaml", []byte(src))
	if len(ds) != 1 || !strings.Contains(ds[0].Message, "other is referenced") {
		t.Errorf("got %v, want other referenced but not assigned only", ds)
	}
}

// TestShellcheckFails: a shellcheck that cannot do its work is an error
// of the checker, not a clean file.
func TestShellcheckFails(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "shellcheck")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'no such option' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := textcheck.New(context.Background(), fake)
	l := &engine.Loader{Registry: steps.Builtin(), Inside: c}
	l.Load("p.yaml", playbook("echo $x"))
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "no such option") {
		t.Errorf("Err() = %v, want shellcheck's own complaint", err)
	}
}

// TestSQLParams: $n against args:, with unless sharing them.
func TestSQLParams(t *testing.T) {
	c := textcheck.New(context.Background(), "")
	if !c.SQLChecked() {
		t.Skip("built without cgo")
	}
	l := &engine.Loader{Registry: steps.Builtin(), Inside: c}
	for _, tt := range []struct{ sql, want string }{
		{"query: SELECT $1::text\n      args: [a]", ""},
		{"query: SELECT $1::text, $1::text\n      args: [a]", ""},
		{"query: SELECT $2::text\n      args: [a, b]", "args: gives 2 values, but query uses no $1"},
		{"query: SELECT $1::text\n      args: ${{ [1, 2] }}", ""},
		{"exec: DO $$ BEGIN PERFORM 1; END $$", ""},
		{"exec: CREATE FUNCTION f(int) RETURNS int LANGUAGE sql AS $$ SELECT $1 $$", ""},
		{"query: SELECT $1::text\n      args: [a]\n      unless: SELECT 1", "args: gives 1 value, but unless uses no $1"},
		{"query: SELECT 'é', (1", "query: syntax error at end of input"},
	} {
		src := "version: 1\nname: t/p\nsteps:\n  - id: a\n    become: postgres\n    sql:\n      " + tt.sql + "\n    assert: result.ok\n"
		_, ds := l.Load("p.yaml", []byte(src))
		var got []string
		for _, d := range ds {
			got = append(got, d.Message)
		}
		if all := strings.Join(got, "; "); tt.want == "" && all != "" || !strings.Contains(all, tt.want) {
			t.Errorf("%s:\n got %s\nwant %q", tt.sql, all, tt.want)
		}
	}
}

// fakeShellcheck writes a shellcheck that runs script (sh) instead.
func fakeShellcheck(t *testing.T, script string) string {
	t.Helper()
	fake := filepath.Join(t.TempDir(), "shellcheck")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return fake
}

func rulesOf(ds []*diag.Diagnostic) string {
	var got []string
	for _, d := range ds {
		got = append(got, fmt.Sprintf("%d:%d %s %s", d.Pos.Line, d.Pos.Col, d.Severity, d.Rule))
	}
	return strings.Join(got, ", ")
}

// TestShellcheckHangs: a shellcheck that never finishes is stopped at the
// time limit, and the command it was reading is named at its position;
// the other commands of its batch are still checked.
func TestShellcheckHangs(t *testing.T) {
	// Reads its scripts (the last arguments), and hangs on the one that
	// says "hang".
	fake := fakeShellcheck(t, `for f; do :; done
out='{"comments":['
sep=
for f; do
  case $f in /dev/fd/*) ;; *) continue;; esac
  if grep -q hang "$f"; then sleep 60; fi
  out="$out$sep{\"file\":\"$f\",\"line\":1,\"column\":6,\"level\":\"warning\",\"code\":2154,\"message\":\"x is referenced but not assigned.\"}"
  sep=,
done
echo "$out]}"
exit 1
`)
	c := textcheck.NewWithLimits(context.Background(), fake, textcheck.Limits{MaxText: 1 << 10, Timeout: 2 * time.Second, Memory: 1 << 30})
	l := &engine.Loader{Registry: steps.Builtin(), Inside: c}
	var wg sync.WaitGroup
	results := make([]string, 3)
	start := time.Now()
	for i, cmd := range []string{"echo $x", "echo hang $x", "echo 2 $x"} {
		wg.Go(func() {
			_, ds := l.Load("p.yaml", playbook(cmd))
			results[i] = rulesOf(ds)
		})
	}
	wg.Wait()
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("took %s: the hung shellcheck was not stopped", took)
	}
	want := []string{"6:21 warning shellcheck:SC2154", "6:16 error shellcheck-limit", "6:21 warning shellcheck:SC2154"}
	for i := range want {
		if results[i] != want[i] {
			t.Errorf("command %d: got %q, want %q", i, results[i], want[i])
		}
	}
	_, ds := l.Load("p.yaml", playbook("echo hang"))
	if len(ds) != 1 || !strings.Contains(ds[0].Message, "shellcheck did not finish within 2s reading this command") {
		t.Errorf("got %v, want the limit named", ds)
	}
}

// TestShellcheckOutOfMemory: a shellcheck that runs out of memory names
// the command too, and the limit.
func TestShellcheckOutOfMemory(t *testing.T) {
	fake := fakeShellcheck(t, "echo 'shellcheck: out of memory' >&2\nexit 251\n")
	c := textcheck.NewWithLimits(context.Background(), fake, textcheck.Limits{MaxText: 1 << 10, Timeout: 10 * time.Second, Memory: 256 << 20})
	l := &engine.Loader{Registry: steps.Builtin(), Inside: c}
	_, ds := l.Load("p.yaml", playbook("echo $x"))
	if len(ds) != 1 || ds[0].Rule != "shellcheck-limit" || !strings.Contains(ds[0].Message, "ran out of memory (limit 256 MiB)") {
		t.Errorf("got %v, want the memory limit named", ds)
	}
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestShellcheckMemoryLimit: the real shellcheck runs under the address
// space limit (ulimit -v), and stops at it instead of taking the machine's
// memory.
func TestShellcheckMemoryLimit(t *testing.T) {
	sc := shellcheck(t)
	var big strings.Builder
	big.WriteString("|\n")
	for i := range 3000 {
		fmt.Fprintf(&big, "        echo \"line %d\" \"$HOME\" >> /tmp/out\n", i)
	}
	// 110 KB: about 200 MB for shellcheck 0.9.0; its runtime needs 72 MiB
	// to start.
	c := textcheck.NewWithLimits(context.Background(), sc, textcheck.Limits{MaxText: 1 << 20, Timeout: time.Minute, Memory: 128 << 20})
	l := &engine.Loader{Registry: steps.Builtin(), Inside: c}
	_, ds := l.Load("p.yaml", playbook(big.String()))
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	if got := rulesOf(ds); got != "7:9 error shellcheck-limit" {
		t.Errorf("got %s (%v), want the memory limit", got, ds)
	}
}

// TestShellcheckOptsIgnored: SHELLCHECK_OPTS of validate's environment
// does not change what it reports.
func TestShellcheckOptsIgnored(t *testing.T) {
	t.Setenv("SHELLCHECK_OPTS", "--exclude=SC2086,SC2154")
	c := textcheck.New(context.Background(), shellcheck(t))
	l := &engine.Loader{Registry: steps.Builtin(), Inside: c}
	_, ds := l.Load("p.yaml", playbook("echo $x"))
	if got := rulesOf(ds); got != "6:21 warning shellcheck:SC2086, 6:21 warning shellcheck:SC2154" {
		t.Errorf("got %s, want SC2086 and SC2154", got)
	}
}

// TestNoTempFiles: the commands reach shellcheck without a file on the
// disk, so a killed validate leaves none behind.
func TestNoTempFiles(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	c := textcheck.New(context.Background(), shellcheck(t))
	l := &engine.Loader{Registry: steps.Builtin(), Inside: c}
	l.Load("p.yaml", playbook("echo $x"))
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(tmp)
	if len(entries) != 0 {
		t.Errorf("left in TMPDIR: %v", entries)
	}
}

// TestInterrupted: when validate is interrupted (its context ends), the
// shellcheck processes are stopped and the checker says why.
func TestInterrupted(t *testing.T) {
	fake := fakeShellcheck(t, "sleep 60\n")
	ctx, cancel := context.WithCancel(context.Background())
	c := textcheck.New(ctx, fake)
	l := &engine.Loader{Registry: steps.Builtin(), Inside: c}
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	l.Load("p.yaml", playbook("echo $x"))
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %s after the interruption", took)
	}
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "validate was interrupted") {
		t.Errorf("Err() = %v, want the interruption said", err)
	}
}
