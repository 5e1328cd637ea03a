package cli

import (
	"path/filepath"
	"runtime"
	"testing"
)

// TestCacheDir: --cache-dir, then RUNBOOK_CACHE_DIR, then XDG_CACHE_HOME
// (absolute only, as the XDG specification says), then HOME; shellcheck's
// findings in its shellcheck directory; none without a home. The directory
// given (or the home) is where the check that the cache is private stops.
func TestCacheDir(t *testing.T) {
	home := filepath.Join("/home/a", ".cache")
	if runtime.GOOS == "darwin" {
		home = filepath.Join("/home/a", "Library", "Caches")
	}
	for _, tt := range []struct {
		flag string
		vars map[string]string
		want string
		top  string
	}{
		{"/f", map[string]string{"RUNBOOK_CACHE_DIR": "/e", "XDG_CACHE_HOME": "/x", "HOME": "/home/a"}, "/f/shellcheck", "/f"},
		{"", map[string]string{"RUNBOOK_CACHE_DIR": "/e", "XDG_CACHE_HOME": "/x", "HOME": "/home/a"}, "/e/shellcheck", "/e"},
		{"", map[string]string{"XDG_CACHE_HOME": "/x", "HOME": "/home/a"}, "/x/runbook/shellcheck", "/x"},
		{"", map[string]string{"XDG_CACHE_HOME": "x", "HOME": "/home/a"}, home + "/runbook/shellcheck", "/home/a"},
		{"", map[string]string{"HOME": "/home/a"}, home + "/runbook/shellcheck", "/home/a"},
		{"", map[string]string{"HOME": "relative"}, "", ""},
		{"", nil, "", ""},
	} {
		e := &Env{Getenv: func(k string) string { return tt.vars[k] }}
		if got, top := e.cacheDir(tt.flag); got != tt.want || top != tt.top {
			t.Errorf("--cache-dir %q, %v: %q in %q, want %q in %q", tt.flag, tt.vars, got, top, tt.want, tt.top)
		}
	}
}
