package cli

import (
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// TestDefaultStateDir: XDG_STATE_HOME (absolute only, as the XDG
// specification says), then HOME, then the home directory of the user in
// the password database; never a shared directory such as /tmp, which
// another user could create first.
func TestDefaultStateDir(t *testing.T) {
	env := func(vars map[string]string) *Env {
		return &Env{Getenv: func(k string) string { return vars[k] }}
	}
	for _, c := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"XDG_STATE_HOME": "/x/state", "HOME": "/home/a"}, "/x/state/runbook"},
		{map[string]string{"XDG_STATE_HOME": "state", "HOME": "/home/a"}, "/home/a/.local/state/runbook"},
		{map[string]string{"HOME": "/home/a"}, "/home/a/.local/state/runbook"},
	} {
		if got := defaultStateDir(env(c.vars)); got != c.want {
			t.Errorf("%v: %s, want %s", c.vars, got, c.want)
		}
	}
	got := defaultStateDir(env(map[string]string{"HOME": "relative"}))
	u, err := user.Current()
	if err != nil {
		t.Skip(err)
	}
	if want := filepath.Join(u.HomeDir, ".local", "state", "runbook"); got != want {
		t.Errorf("without HOME: %s, want %s", got, want)
	}
	if strings.HasPrefix(got, os.TempDir()) {
		t.Errorf("without HOME the state is in %s, a shared directory", got)
	}
}
