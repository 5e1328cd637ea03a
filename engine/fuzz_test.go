package engine_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/playbooks"
)

// FuzzLoad feeds arbitrary bytes to the loader: it must never panic, and it
// must return either a playbook or at least one error, never neither.
// Seeds: testdata/fuzz/FuzzLoad (committed), every validation case and every
// bundled playbook.
func FuzzLoad(f *testing.F) {
	for _, pattern := range []string{"../testdata/validate/*/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil {
				f.Add(b)
			}
		}
	}
	for _, n := range playbooks.Names() {
		b, _ := playbooks.Lookup(n)
		f.Add(b)
	}
	l := loader()
	f.Fuzz(func(t *testing.T, src []byte) {
		pb, ds := l.Load("fuzz.yaml", src)
		if pb == nil && !diag.HasErrors(ds) {
			t.Fatalf("no playbook and no error for %q", src)
		}
		if pb != nil && diag.HasErrors(ds) {
			t.Fatalf("a playbook despite errors: %v", ds)
		}
		for _, d := range ds {
			if d.Message == "" || d.Rule == "" {
				t.Fatalf("diagnostic without message or rule: %+v", d)
			}
		}
	})
}
