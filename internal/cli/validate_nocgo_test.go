//go:build !cgo

package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRequireSQLParserWithoutCgo: a build without PostgreSQL's parser
// refuses --require-sql-parser, and says otherwise that SQL was skipped.
// (Run with CGO_ENABLED=0 go test.)
func TestRequireSQLParserWithoutCgo(t *testing.T) {
	f := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(f, []byte("version: 1\nname: t/p\nsteps:\n  - id: q\n    sql: {query: SELEC 1, read_only: true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	e := &Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	if code := e.Main([]string{"runbook", "validate", "--require-sql-parser", f}); code != ExitUsage {
		t.Errorf("exit %d, want %d", code, ExitUsage)
	}
	if !strings.Contains(errb.String(), "--require-sql-parser: this runbook was built without cgo") {
		t.Errorf("stderr %q", errb.String())
	}
	errb.Reset()
	if code := e.Main([]string{"runbook", "validate", f}); code != ExitOK {
		t.Errorf("exit %d without the flag, want %d", code, ExitOK)
	}
	if !strings.Contains(errb.String(), "SQL texts were not parsed (--require-sql-parser makes this an error)") {
		t.Errorf("stderr %q", errb.String())
	}
}
