package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/internal/lab"
)

// TestLayoutAuto: on lab hosts laid out as RHEL's PostgreSQL (pg1), the
// PostgreSQL project's packages (pg2) and Debian's (pg3), -p layout=auto
// finds each; a layout or version given that is not the host's is refused
// before anything runs, naming what is there; a cluster whose nodes are
// packaged differently (rhel primary, pgdg standby) is set up with
// layout=auto, and with the hosts' pg_layout inventory vars winning over
// -p layout.
func TestLayoutAuto(t *testing.T) {
	l := startLabWith(t, lab.Options{Hosts: []string{"pg1", "pg2", "pg3"}, Layouts: map[string]string{"pg1": lab.LayoutRHEL, "pg2": lab.LayoutPGDG, "pg3": lab.LayoutDebian}})
	h := &ha{t: t, l: l, env: []string{"RUNBOOK_REPLICATION_PASSWORD=" + replicationPassword}}
	found := map[string]string{
		"pg1": "detected rhel 15: binaries /usr/bin, data /var/lib/pgsql/data, configuration /var/lib/pgsql/data, unit postgresql, postgres's home /var/lib/pgsql",
		"pg2": "detected pgdg 15: binaries /usr/pgsql-15/bin, data /var/lib/pgsql/15/data, configuration /var/lib/pgsql/15/data, unit postgresql-15, postgres's home /var/lib/pgsql",
		"pg3": "detected debian 15: binaries /usr/lib/postgresql/15/bin, data /var/lib/postgresql/15/main, configuration /etc/postgresql/15/main, unit postgresql@15-main, postgres's home /var/lib/postgresql",
	}
	for _, host := range []string{"pg1", "pg2", "pg3"} {
		// The check names the standby a second primary (each runs alone):
		// what matters here is what was found.
		out, _ := h.run("plan", "pg-ha/check", "-p", "primary=pg3", "-p", "standby="+host, "-p", "layout=auto")
		if !strings.Contains(out, found[host]) {
			t.Errorf("layout=auto on %s does not find %q:\n%s", host, found[host], out)
		}
		if strings.Count(out, "found: ") != 1 || strings.Contains(out, "found: none") {
			t.Errorf("%s: want exactly one installation found:\n%s", host, out)
		}
	}

	// Wrong layouts and versions, given or by default: refused before any
	// guard and any change, naming what the host has.
	h.refused("pg1 has rhel 15 (data /var/lib/pgsql/data, unit postgresql: loaded), not debian 15",
		"run", "pg-ha/configure-primary", "-p", "primary=pg1", "-p", "standby=pg2", "-p", "layout=debian")
	h.refused("pg2 has pgdg 15 (data /var/lib/pgsql/15/data, unit postgresql-15: loaded), not pgdg 16 (/usr/pgsql-16/bin, data /var/lib/pgsql/16/data, unit postgresql-16)",
		"run", "pg-ha/configure-standby", "-p", "primary=pg1", "-p", "standby=pg2", "-p", "layout=pgdg", "-p", "pg_version=16")
	h.refused("pg3 has debian 15 (data /var/lib/postgresql/15/main, unit postgresql@15-main: loaded), not rhel 15",
		"run", "pg-ha/promote-standby", "-p", "standby=pg3", "-p", "old_primary=pg1", "--yes")

	// A cluster in the middle of a migration: a rhel primary, a pgdg
	// standby, each found.
	h.ok("run", "pg-ha/configure-primary", "-p", "primary=pg1", "-p", "standby=pg2", "-p", "layout=auto")
	h.ok("run", "pg-ha/configure-standby", "-p", "primary=pg1", "-p", "standby=pg2", "-p", "layout=auto")
	if got := h.psql("pg1", "SELECT application_name || ' ' || state || ' ' || sync_state FROM pg_stat_replication"); got != "inmanta streaming sync" {
		t.Fatalf("pg_stat_replication on pg1 (rhel) with pg2 (pgdg) its standby: %q", got)
	}
	if got := h.sh("pg2", "test -f /var/lib/pgsql/15/data/standby.signal && grep -c application_name=inmanta /var/lib/pgsql/15/data/postgresql.auto.conf"); got != "1" {
		t.Errorf("pg2's standby settings in the pgdg data directory: %q", got)
	}
	// The hosts' inventory vars win over -p layout.
	inv := filepath.Join(t.TempDir(), "inventory.yaml")
	src := strings.Replace(readFile(t, l.InventoryPath()), "  pg2: {address: "+lab.Address(1)+"}", "  pg2: {address: "+lab.Address(1)+", vars: {pg_layout: pgdg, pg_version: 15}}", 1)
	if err := os.WriteFile(inv, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	h.inventory = inv
	out := h.ok("run", "pg-ha/check", "-p", "primary=pg1", "-p", "standby=pg2", "-p", "layout=debian")
	if !strings.Contains(out, "given pgdg 15: binaries /usr/pgsql-15/bin") {
		t.Errorf("pg2's pg_layout inventory var did not win over -p layout:\n%s", out)
	}

	// Debian: the data directory is data_directory in the cluster's
	// postgresql.conf. After a DBA moved it, every procedure acts on the
	// one the server reads (a procedure acting on the default path would
	// build a standby there while the unit starts the old primary's); a
	// data directory given that the server does not read is refused.
	h.inventory = ""
	h.sh("pg3", `systemctl stop postgresql@15-main && mv /var/lib/postgresql/15/main /srv/pg15main && sed -i "s|^data_directory *=.*|data_directory = '/srv/pg15main'|" /etc/postgresql/15/main/postgresql.conf && systemctl start postgresql@15-main && echo moved`)
	out, _ = h.run("plan", "pg-ha/check", "-p", "primary=pg1", "-p", "standby=pg3", "-p", "layout=auto")
	if !strings.Contains(out, "detected debian 15: binaries /usr/lib/postgresql/15/bin, data /srv/pg15main, configuration /etc/postgresql/15/main") {
		t.Errorf("the moved data directory is not the one found:\n%s", out)
	}
	h.refused("pg3's postgresql@15-main reads its data directory from /srv/pg15main (data_directory in /etc/postgresql/15/main/postgresql.conf), not /var/lib/postgresql/15/main",
		"run", "pg-ha/promote-standby", "-p", "standby=pg3", "-p", "old_primary=pg1", "-p", "layout=debian", "-p", "data_dir=/var/lib/postgresql/15/main", "--yes")
}
