package engine_test

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/testsshd"
	"github.com/runbook-dev/runbook/internal/textcheck"
	"github.com/runbook-dev/runbook/playbooks"
	"github.com/runbook-dev/runbook/steps"
)

var update = flag.Bool("update", false, "rewrite the .out files of testdata/validate/err")

// printed is each of ds as it is printed: file:line:col: message [rule].
func printed(ds []*diag.Diagnostic) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.String())
	}
	return out
}

func loader() *engine.Loader { return &engine.Loader{Registry: steps.Builtin()} }

// validator is a loader as validate makes it: it also reads inside the
// commands (shellcheck) and SQL texts (PostgreSQL's parser). Without
// shellcheck installed, the cases that need it are skipped, unless
// RUNBOOK_REQUIRE_REAL is set (CI), where they fail.
func validator(t *testing.T) *engine.Loader {
	t.Helper()
	sc, err := exec.LookPath("shellcheck")
	testsshd.Require(t, err == nil, "shellcheck is not installed: apt-get install shellcheck")
	c := textcheck.New(context.Background(), sc)
	t.Cleanup(func() {
		if err := c.Err(); err != nil {
			t.Error(err)
		}
	})
	return &engine.Loader{Registry: steps.Builtin(), Inside: c}
}

// TestValidateOK: every playbook in testdata/validate/ok has no diagnostic
// at all, not even a warning.
func TestValidateOK(t *testing.T) {
	files, _ := filepath.Glob("../testdata/validate/ok/*.yaml")
	if len(files) == 0 {
		t.Fatal("no files in testdata/validate/ok")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			pb, ds := validator(t).Load(filepath.Base(f), src)
			for _, d := range ds {
				t.Error(d)
			}
			if pb == nil {
				t.Fatal("no playbook")
			}
		})
	}
}

// TestValidateErr compares the diagnostics of each testdata/validate/err
// file with its .out file: one diagnostic per line, a line between slashes
// is a regular expression.
func TestValidateErr(t *testing.T) {
	errFiles, _ := filepath.Glob("../testdata/validate/err/*.yaml")
	warnFiles, _ := filepath.Glob("../testdata/validate/warn/*.yaml")
	if len(errFiles) == 0 || len(warnFiles) == 0 {
		t.Fatal("no files in testdata/validate/err or warn")
	}
	for _, f := range append(errFiles, warnFiles...) {
		warn := strings.Contains(f, "/warn/")
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			pb, ds := validator(t).Load(filepath.Base(f), src)
			switch {
			case warn && (pb == nil || diag.HasErrors(ds) || len(ds) == 0):
				t.Fatalf("want warnings only, got %v", ds)
			case !warn && pb != nil:
				t.Error("an invalid playbook was returned as loadable")
			case !warn && !diag.HasErrors(ds):
				t.Fatal("no error reported")
			}
			got := printed(ds)
			outFile := strings.TrimSuffix(f, ".yaml") + ".out"
			if *update {
				if err := os.WriteFile(outFile, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			b, err := os.ReadFile(outFile)
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
			if len(got) != len(want) {
				t.Fatalf("got %d diagnostics, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
			}
			for i := range want {
				w := want[i]
				if len(w) > 2 && strings.HasPrefix(w, "/") && strings.HasSuffix(w, "/") {
					if !regexp.MustCompile(w[1 : len(w)-1]).MatchString(got[i]) {
						t.Errorf("diagnostic %d:\n got %s\nwant match %s", i+1, got[i], w)
					}
					continue
				}
				if got[i] != w {
					t.Errorf("diagnostic %d:\n got %s\nwant %s", i+1, got[i], w)
				}
			}
		})
	}
}

// TestBundledPlaybooksValidate: a bundled playbook with any diagnostic is a
// bug shipped to every user.
func TestBundledPlaybooksValidate(t *testing.T) {
	names := playbooks.Names()
	if len(names) == 0 {
		t.Fatal("no bundled playbooks")
	}
	for _, n := range names {
		src, _ := playbooks.Lookup(n)
		pb, ds := loader().Load(playbooks.Path(n), src)
		for _, d := range ds {
			t.Errorf("%s: %v", n, d)
		}
		if pb != nil && pb.Name != n {
			t.Errorf("%s: name is %q, want the bundled name", n, pb.Name)
		}
		if pb != nil && pb.Description == "" {
			t.Errorf("%s: no description for runbook list", n)
		}
	}
	t.Run("inside", testBundledInside)
}

// pendingFindings are findings of shellcheck in bundled playbooks that
// were being edited elsewhere when the shell checks came, and so were left
// for that work: the file, the rule and the text of the line. The test
// fails on any finding not listed here, and on a listed one no longer
// found, so that the list only shrinks: fix the line (quoting, or a
// `# shellcheck disable=SCnnnn # why` line above it) and delete its entry.
var pendingFindings = []struct{ file, rule, line string }{}

// testBundledInside: the bundled playbooks' commands and SQL texts are
// clean for shellcheck and PostgreSQL's parser too.
func testBundledInside(t *testing.T) {
	l := validator(t)
	pending := slices.Clone(pendingFindings)
	for _, n := range playbooks.Names() {
		src, _ := playbooks.Lookup(n)
		lines := strings.Split(string(src), "\n")
		_, ds := l.Load(playbooks.Path(n), src)
		for _, d := range ds {
			line := ""
			if d.Pos.Line >= 1 && d.Pos.Line <= len(lines) {
				line = strings.TrimSpace(lines[d.Pos.Line-1])
			}
			i := slices.IndexFunc(pending, func(p struct{ file, rule, line string }) bool {
				return strings.HasSuffix(d.File, p.file) && p.rule == d.Rule && p.line == line
			})
			if i < 0 {
				t.Errorf("%s: %v", n, d)
				continue
			}
			t.Logf("pending (to fix where the file is being edited): %v", d)
			pending = slices.Delete(pending, i, i+1)
		}
	}
	for _, p := range pending {
		t.Errorf("%s: %s on %q is no longer found: delete it from pendingFindings", p.file, p.rule, p.line)
	}
}

// TestEveryRuleHasAGoldenCase: each rule id is expected by at least one
// golden file or CLI script, so no rule goes untested.
func TestEveryRuleHasAGoldenCase(t *testing.T) {
	var all strings.Builder
	for _, pattern := range []string{"../testdata/validate/*/*.out", "../testdata/script/*.txtar"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			b, _ := os.ReadFile(f)
			all.Write(b)
		}
	}
	for _, r := range diag.Rules {
		if family, ok := strings.CutSuffix(r.ID, "SCnnnn"); ok {
			if !strings.Contains(all.String(), "["+family+"SC") {
				t.Errorf("rule family %s has no golden case", r.ID)
			}
			continue
		}
		if !strings.Contains(all.String(), "["+r.ID+"]") && !strings.Contains(all.String(), "title="+r.ID) {
			t.Errorf("rule %s has no golden case", r.ID)
		}
	}
}
