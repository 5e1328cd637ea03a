package textdiff

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnified(t *testing.T) {
	tests := []struct {
		name, a, b, want string
	}{
		{"equal", "x\n", "x\n", ""},
		{"change in middle", "a\nb\nc\nd\ne\nf\ng\nh\n", "a\nb\nc\nd\nE\nf\ng\nh\n",
			"--- a\n+++ b\n@@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n"},
		{"append", "a\n", "a\nb\n", "--- a\n+++ b\n@@ -1 +1,2 @@\n a\n+b\n"},
		{"from empty", "", "a\n", "--- a\n+++ b\n@@ -0,0 +1 @@\n+a\n"},
		{"no newline", "a", "b", "--- a\n+++ b\n@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+b\n\\ No newline at end of file\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Unified("a", "b", tt.a, tt.b); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// TestPatchApplies checks the diffs against GNU patch: a diff that patch
// cannot apply is wrong, whatever it looks like.
func TestPatchApplies(t *testing.T) {
	if _, err := exec.LookPath("patch"); err != nil {
		t.Skip("patch is not installed")
	}
	var a, b []string
	for i := 0; i < 60; i++ {
		a = append(a, "line "+strings.Repeat("x", i%7))
		switch {
		case i%13 == 0:
			b = append(b, "changed", "inserted")
		case i%17 == 0:
		default:
			b = append(b, a[i])
		}
	}
	as, bs := strings.Join(a, "\n")+"\n", strings.Join(b, "\n")+"\n"
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, []byte(as), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("patch", "-s", f)
	cmd.Stdin = strings.NewReader(Unified("f", "f", as, bs))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("patch: %v: %s", err, out)
	}
	got, _ := os.ReadFile(f)
	if string(got) != bs {
		t.Errorf("patched file differs:\n%s", got)
	}
}
