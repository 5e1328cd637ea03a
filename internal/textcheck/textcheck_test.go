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

	"github.com/runbook-dev/runbook/engine"
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
	c, err := textcheck.New(context.Background(), shellcheck(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l := &engine.Loader{Registry: steps.Builtin(), Inside: c}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
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
		}()
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
	c, err := textcheck.New(context.Background(), shellcheck(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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
	c, err := textcheck.New(context.Background(), fake)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l := &engine.Loader{Registry: steps.Builtin(), Inside: c}
	l.Load("p.yaml", playbook("echo $x"))
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "no such option") {
		t.Errorf("Err() = %v, want shellcheck's own complaint", err)
	}
}

// TestSQLParams: $n against args:, with unless sharing them.
func TestSQLParams(t *testing.T) {
	c, err := textcheck.New(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
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
