package cli_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/internal/cli"
)

// TestLayoutPlanEveryVersion: the versions that cannot be installed here
// (13-17 but 15) are rehearsed by what plan makes of them. A plan of
// pg-ha/check on this machine shows, for each layout and version given,
// the binaries, data directory, configuration and unit the procedure would
// use; where this machine has another PostgreSQL, the plan is refused
// before any step and names what it found.
func TestLayoutPlanEveryVersion(t *testing.T) {
	inv := tempFile(t, "inventory.yaml", "hosts: {}\n", 0o600)
	want := func(layout string, v int) []string {
		switch layout {
		case "pgdg":
			return []string{fmt.Sprintf("given pgdg %d: binaries /usr/pgsql-%d/bin, data /var/lib/pgsql/%d/data, configuration /var/lib/pgsql/%d/data, unit postgresql-%d,", v, v, v, v, v)}
		case "debian":
			return []string{fmt.Sprintf("given debian %d: binaries /usr/lib/postgresql/%d/bin, data /var/lib/postgresql/%d/main, configuration /etc/postgresql/%d/main, unit postgresql@%d-main,", v, v, v, v, v)}
		}
		return []string{fmt.Sprintf("given rhel %d: binaries /usr/bin, data /var/lib/pgsql/data, configuration /var/lib/pgsql/data, unit postgresql,", v)}
	}
	for _, layout := range []string{"rhel", "pgdg", "debian"} {
		for v := 13; v <= 17; v++ {
			if layout == "debian" && v == 15 {
				// This machine's own: the plan would go on and probe it.
				continue
			}
			t.Run(fmt.Sprintf("%s-%d", layout, v), func(t *testing.T) {
				var out, errb bytes.Buffer
				args := []string{"runbook", "plan", "pg-ha/check", "-i", inv, "-p", "primary=localhost", "-p", "standby=localhost", "-p", "layout=" + layout, "-p", fmt.Sprintf("pg_version=%d", v)}
				code := cli.Main(args, nil, &out, &errb)
				text := out.String() + errb.String()
				for _, w := range want(layout, v) {
					if !strings.Contains(text, w) {
						t.Errorf("plan does not show %q:\n%s", w, text)
					}
				}
				if code == cli.ExitOK || !strings.Contains(text, "refused:") || strings.Contains(text, "[1]") {
					t.Errorf("plan was not refused before the steps (exit %d):\n%s", code, text)
				}
			})
		}
	}
	// The brief's example, spelled out.
	var out, errb bytes.Buffer
	cli.Main([]string{"runbook", "plan", "pg-ha/promote-standby", "-i", inv, "-p", "standby=localhost", "-p", "old_primary=localhost", "-p", "pg_version=16", "-p", "layout=pgdg"}, nil, &out, &errb)
	for _, w := range []string{"/usr/pgsql-16/bin", "/var/lib/pgsql/16/data", "postgresql-16"} {
		if !strings.Contains(out.String()+errb.String(), w) {
			t.Errorf("plan of promote-standby with pgdg 16 does not show %s:\n%s%s", w, out.String(), errb.String())
		}
	}
}
