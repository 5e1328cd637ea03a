package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// The PostgreSQL packagings the lab lays out. The machine has Debian's
// PostgreSQL 15; a host laid out as rhel or pgdg gets that PostgreSQL where
// the other packaging puts it (see Layout).
const (
	LayoutDebian = "debian"
	LayoutRHEL   = "rhel"
	LayoutPGDG   = "pgdg"
)

// PGVersion is the PostgreSQL the lab's hosts run: the only one that
// installs on this machine.
const PGVersion = "15"

// Layout is where a packaging puts PostgreSQL 15.
type Layout struct {
	Name string
	// Bin holds the server's programs; Data is the data directory, Conf
	// the directory of postgresql.conf and pg_hba.conf; Unit the systemd
	// unit; Home the postgres user's home.
	Bin, Data, Conf, Unit, Home string
}

// Layouts are the packagings the lab knows, by name.
var Layouts = map[string]Layout{
	LayoutDebian: {LayoutDebian, "/usr/lib/postgresql/15/bin", "/var/lib/postgresql/15/main", "/etc/postgresql/15/main", "postgresql@15-main", "/var/lib/postgresql"},
	LayoutRHEL:   {LayoutRHEL, "/usr/bin", "/var/lib/pgsql/data", "/var/lib/pgsql/data", "postgresql", "/var/lib/pgsql"},
	LayoutPGDG:   {LayoutPGDG, "/usr/pgsql-15/bin", "/var/lib/pgsql/15/data", "/var/lib/pgsql/15/data", "postgresql-15", "/var/lib/pgsql"},
}

// LayoutOf returns the layout of a host (debian when it has none).
func LayoutOf(h *Host) Layout {
	if l, ok := Layouts[h.Layout]; ok {
		return l
	}
	return Layouts[LayoutDebian]
}

// ParseLayouts reads --layout: one layout for every host (rhel), or
// HOST=LAYOUT pairs (pg1=rhel,pg2=pgdg; hosts not named are debian).
func ParseLayouts(s string, hosts []string) (map[string]string, error) {
	out := map[string]string{}
	if s == "" {
		return out, nil
	}
	names := make([]string, 0, len(Layouts))
	for n := range Layouts {
		names = append(names, n)
	}
	sort.Strings(names)
	check := func(l string) error {
		if _, ok := Layouts[l]; !ok {
			return fmt.Errorf("--layout: unknown layout %q: use one of %s, or HOST=LAYOUT pairs such as pg1=rhel,pg2=pgdg", l, strings.Join(names, ", "))
		}
		return nil
	}
	if !strings.Contains(s, "=") {
		if err := check(s); err != nil {
			return nil, err
		}
		for _, h := range hosts {
			out[h] = s
		}
		return out, nil
	}
	for _, pair := range strings.Split(s, ",") {
		h, l, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			return nil, fmt.Errorf("--layout: %q: write HOST=LAYOUT", pair)
		}
		if err := check(l); err != nil {
			return nil, err
		}
		known := false
		for _, n := range hosts {
			known = known || n == h
		}
		if !known {
			return nil, fmt.Errorf("--layout: %s is not one of the hosts (%s)", h, strings.Join(hosts, ", "))
		}
		out[h] = l
	}
	return out, nil
}

// The units of RHEL's and the PostgreSQL project's packages for RHEL, as
// they ship them (the OOM settings and comments left out): systemd starts
// the postmaster itself with the data directory from the unit, not through
// pg_ctlcluster as Debian does.
const rhelUnit = `[Unit]
Description=PostgreSQL database server
After=network.target

[Service]
Type=notify
User=postgres
Group=postgres
Environment=PGDATA=/var/lib/pgsql/data
ExecStartPre=/usr/libexec/postgresql-check-db-dir %N
ExecStart=/usr/bin/postmaster -D ${PGDATA}
ExecReload=/bin/kill -HUP $MAINPID
KillMode=mixed
KillSignal=SIGINT
TimeoutSec=0

[Install]
WantedBy=multi-user.target
`

const pgdgUnit = `[Unit]
Description=PostgreSQL 15 database server
Documentation=https://www.postgresql.org/docs/15/static/
After=syslog.target
After=network-online.target

[Service]
Type=notify
User=postgres
Group=postgres
Environment=PGDATA=/var/lib/pgsql/15/data/
ExecStartPre=/usr/pgsql-15/bin/postgresql-15-check-db-dir ${PGDATA}
ExecStart=/usr/pgsql-15/bin/postmaster -D ${PGDATA}
ExecReload=/bin/kill -HUP $MAINPID
KillMode=mixed
KillSignal=SIGINT
TimeoutSec=0
TimeoutStartSec=0
TimeoutStopSec=1h

[Install]
WantedBy=multi-user.target
`

// checkDBDir refuses to start a data directory that is missing or of
// another version, as the packages' check-db-dir scripts do. $1 is the
// data directory or, for RHEL's, the unit's name.
const checkDBDir = `#!/bin/sh
case $1 in /*) PGDATA=$1;; esac
if [ ! -f "$PGDATA/PG_VERSION" ]; then
	echo "Directory \"$PGDATA\" is missing or empty. Use \"postgresql-setup --initdb\" to initialize the database cluster." >&2
	exit 1
fi
if [ "$(cat "$PGDATA/PG_VERSION")" != 15 ]; then
	echo "An old version of the database format was found." >&2
	exit 1
fi
`

// relayout makes a host's root hold PostgreSQL as the packaging of lay
// does: the server's programs where it puts them (copies, so that a
// program's path is what it says), its unit, the postgres user's home;
// Debian's cluster, programs' directory and units are removed. The data
// directory is made after boot (initCluster).
func relayout(root string, lay Layout) error {
	debian := Layouts[LayoutDebian]
	src := debian.Bin
	if err := os.MkdirAll(filepath.Join(root, lay.Bin), 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		dst := filepath.Join(root, lay.Bin, e.Name())
		_ = os.Remove(dst)
		if err := copyFile(filepath.Join(src, e.Name()), dst, 0o755); err != nil {
			return err
		}
	}
	// The server finds its modules ($libdir) beside its programs' directory
	// (BIN/../lib), as the packagings have them.
	libs := filepath.Join(filepath.Dir(lay.Bin), "lib")
	mods, err := os.ReadDir(filepath.Join(filepath.Dir(src), "lib"))
	if err != nil {
		return err
	}
	for _, m := range mods {
		p := filepath.Join(root, libs, m.Name())
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(filepath.Join(filepath.Dir(src), "lib", m.Name()), p); err != nil {
			return err
		}
	}
	// Debian's pg_wrapper links in /usr/bin would look for Debian's
	// programs: the client programs in /usr/bin are the packaging's own
	// (RHEL: the copies above; PGDG: links to its directory, as its
	// alternatives make).
	if lay.Bin != "/usr/bin" {
		wrapped, _ := filepath.Glob(filepath.Join(root, "usr/bin/*"))
		for _, p := range wrapped {
			if t, err := os.Readlink(p); err == nil && strings.HasSuffix(t, "pg_wrapper") {
				_ = os.Remove(p)
				if _, err := os.Stat(filepath.Join(root, lay.Bin, filepath.Base(p))); err == nil {
					if err := os.Symlink(filepath.Join(lay.Bin, filepath.Base(p)), p); err != nil {
						return err
					}
				}
			}
		}
	}
	for _, p := range []string{
		debian.Bin, "etc/postgresql/15", "var/lib/postgresql/15",
		"usr/lib/systemd/system/postgresql.service", "usr/lib/systemd/system/postgresql@.service",
		"usr/lib/systemd/system-generators/postgresql-generator",
		"etc/systemd/system/multi-user.target.wants/postgresql.service",
	} {
		if err := os.RemoveAll(filepath.Join(root, strings.TrimPrefix(p, "/"))); err != nil {
			return err
		}
	}
	write := func(rel, content string, mode os.FileMode) error { return writeUnder(root, rel, content, mode) }
	switch lay.Name {
	case LayoutRHEL:
		if err := write("usr/lib/systemd/system/postgresql.service", rhelUnit, 0o644); err != nil {
			return err
		}
		if err := write("usr/libexec/postgresql-check-db-dir", checkDBDir, 0o755); err != nil {
			return err
		}
	case LayoutPGDG:
		if err := write("usr/lib/systemd/system/postgresql-15.service", pgdgUnit, 0o644); err != nil {
			return err
		}
		if err := write("usr/pgsql-15/bin/postgresql-15-check-db-dir", checkDBDir, 0o755); err != nil {
			return err
		}
	}
	// The postgres user lives in /var/lib/pgsql, where its profile names
	// the data directory (as the packages' .bash_profile does).
	passwd := filepath.Join(root, "etc/passwd")
	b, err := os.ReadFile(passwd)
	if err != nil {
		return err
	}
	s := strings.Replace(string(b), ":"+debian.Home+":", ":"+lay.Home+":", 1)
	if err := os.WriteFile(passwd, []byte(s), 0o644); err != nil {
		return err
	}
	if err := write(strings.TrimPrefix(lay.Home, "/")+"/.bash_profile", "[ -f /etc/profile ] && source /etc/profile\nPGDATA="+lay.Data+"\nexport PGDATA\n", 0o644); err != nil {
		return err
	}
	return nil
}

// initCluster makes the data directory of a host laid out as rhel or
// pgdg, as their setup scripts do (postgresql-setup --initdb), gives the
// orchestrator's database access from the lab network and starts the unit.
func (l *Lab) initCluster(ctx context.Context, h *Host) error {
	lay := LayoutOf(h)
	if lay.Name == LayoutDebian {
		return nil
	}
	hba := fmt.Sprintf("host    inmanta         inmanta         %s.0/24           scram-sha-256", Subnet)
	script := fmt.Sprintf(`set -e
home=%[1]s
chown postgres:postgres "$home" "$home/.bash_profile"
chmod 700 "$home"
if [ ! -f %[2]s/PG_VERSION ]; then
	runuser -u postgres -- mkdir -p %[2]s
	chmod 700 %[2]s
	cd / && runuser -u postgres -- %[3]s/initdb -D %[2]s --auth-local=peer --auth-host=scram-sha-256 >/dev/null
	echo '%[4]s' >>%[2]s/pg_hba.conf
fi
systemctl reset-failed %[5]s 2>/dev/null || true
systemctl enable --now %[5]s
`, lay.Home, lay.Data, lay.Bin, hba, lay.Unit)
	if b, err := l.Exec(ctx, h.Name, "sh", "-c", script); err != nil {
		return fmt.Errorf("initdb and start of %s: %v %s", lay.Unit, err, b)
	}
	return nil
}

// waitUnit waits until the host's PostgreSQL unit is active.
func (l *Lab) waitUnit(ctx context.Context, h *Host) error {
	unit := LayoutOf(h).Unit + ".service"
	for {
		out, err := l.Exec(ctx, h.Name, "systemctl", "is-active", unit)
		if err == nil && strings.TrimSpace(string(out)) == "active" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s is %s", unit, strings.TrimSpace(string(out)))
		case <-time.After(200 * time.Millisecond):
		}
	}
}
