package cli

import (
	"path/filepath"
	"runtime"
	"testing"
)

// TestCacheDir: --cache-dir, then RUNBOOK_CACHE_DIR, then XDG_CACHE_HOME
// (absolute only, as the XDG specification says), then HOME; shellcheck's
// findings in its shellcheck directory; none without a home.
func TestCacheDir(t *testing.T) {
	home := filepath.Join("/home/a", ".cache")
	if runtime.GOOS == "darwin" {
		home = filepath.Join("/home/a", "Library", "Caches")
	}
	for _, tt := range []struct {
		flag string
		vars map[string]string
		want string
	}{
		{"/f", map[string]string{"RUNBOOK_CACHE_DIR": "/e", "XDG_CACHE_HOME": "/x", "HOME": "/home/a"}, "/f/shellcheck"},
		{"", map[string]string{"RUNBOOK_CACHE_DIR": "/e", "XDG_CACHE_HOME": "/x", "HOME": "/home/a"}, "/e/shellcheck"},
		{"", map[string]string{"XDG_CACHE_HOME": "/x", "HOME": "/home/a"}, "/x/runbook/shellcheck"},
		{"", map[string]string{"XDG_CACHE_HOME": "x", "HOME": "/home/a"}, home + "/runbook/shellcheck"},
		{"", map[string]string{"HOME": "/home/a"}, home + "/runbook/shellcheck"},
		{"", map[string]string{"HOME": "relative"}, ""},
		{"", nil, ""},
	} {
		e := &Env{Getenv: func(k string) string { return tt.vars[k] }}
		if got := e.cacheDir(tt.flag); got != tt.want {
			t.Errorf("--cache-dir %q, %v: %q, want %q", tt.flag, tt.vars, got, tt.want)
		}
	}
}
