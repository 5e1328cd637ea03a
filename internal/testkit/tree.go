package testkit

import (
	"os"
	"path/filepath"
	"testing"
)

// WriteTree writes files (a path under dir: its content) under dir,
// making the directories they need; files are 0644, directories 0755.
func WriteTree(tb testing.TB, dir string, files map[string]string) {
	tb.Helper()
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}
