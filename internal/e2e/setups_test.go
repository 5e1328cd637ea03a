package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/internal/lab"
)

// dbaPort is the port of the DBA's clusters in TestDBASetups.
const dbaPort = 5433

// psqlAt runs SQL as postgres on a host's socket at port.
func (h *ha) psqlAt(host string, port int, sql string) string {
	h.t.Helper()
	return h.sh(host, fmt.Sprintf("cd / && runuser -u postgres -- psql -X -A -t -v ON_ERROR_STOP=1 -p %d -c %s", port, strconv.Quote(sql)))
}

// disk mounts a disk of its own at path on a lab host.
func (h *ha) disk(host, path string, mib int) {
	h.t.Helper()
	if err := h.l.Disk(context.Background(), host, path, mib); err != nil {
		h.t.Fatal(err)
	}
}

// dbaConf is what the DBA put in conf.d on both nodes: their own port,
// hot standbys (so the playbooks' hot_standby = off in postgresql.conf
// would change nothing), replication off on the primary (wal_level =
// minimal, no WAL senders), and a listen_addresses restricted to the
// replication interface.
func dbaConf(address string, minimal bool) string {
	c := fmt.Sprintf("# the DBA's\nport = %d\nhot_standby = on\nlisten_addresses = 'localhost,%s'\n", dbaPort, address)
	if minimal {
		c += "wal_level = minimal\nmax_wal_senders = 0\n"
	}
	return c
}

// TestDBASetups runs the bundled procedures on servers as experienced DBAs
// set them up, all on one lab, through a full failover-and-rejoin cycle
// and back:
//
//   - pg1: its data directory a link to a data disk (/data), pg_wal a link
//     to a WAL disk (/wal), a tablespace (/tblspc/ts1), settings in conf.d
//     (port 5433, hot_standby = on, wal_level = minimal, no WAL senders,
//     listen_addresses restricted to its replication address);
//   - pg2: its data directory a mount point (a disk of its own, with
//     lost+found), pg_wal on a WAL disk, the same conf.d (without minimal);
//   - the inventory gives both pg_port 5433.
//
// Every procedure must succeed with that layout kept, or refuse before any
// change with the reason: a full data disk (refused with the space needed;
// then forced, the failed base backup leaves pg2 as it was; a rerun after
// freeing space works), a slot another client holds or made, and no
// downgrade of wal_level = logical with a logical slot.
func TestDBASetups(t *testing.T) {
	start := time.Now()
	l := startLab(t, "pg1", "pg2")
	h := &ha{t: t, l: l, env: []string{"RUNBOOK_REPLICATION_PASSWORD=" + replicationPassword}}
	inv := strings.Replace(readFile(t, l.InventoryPath()), "vars: {}", fmt.Sprintf("vars: {pg_port: %d}", dbaPort), 1)
	if !strings.Contains(inv, "pg_port") {
		t.Fatalf("inventory without the vars to extend:\n%s", inv)
	}
	h.inventory = writeFile(t, "inventory.yaml", inv)

	// The DBA's layout, made before any playbook runs.
	for _, host := range []string{"pg1", "pg2"} {
		h.sh(host, "systemctl stop "+pgUnit)
		h.disk(host, "/wal", 256)
	}
	h.disk("pg1", "/data", 512)
	h.sh("pg1", `set -e
mkdir -p /data/pg && mv `+pgData+` /data/pg/main && ln -s /data/pg/main `+pgData+`
mv /data/pg/main/pg_wal /wal/pg_wal && ln -s /wal/pg_wal /data/pg/main/pg_wal
chown -R postgres:postgres /data/pg /wal/pg_wal && chown -h postgres:postgres `+pgData+` /data/pg/main/pg_wal
mkdir -p /tblspc/ts1 && chown postgres:postgres /tblspc/ts1
mkdir -p /etc/postgresql/15/main/conf.d`)
	h.sh("pg2", "mv "+pgData+" "+pgData+".orig")
	h.disk("pg2", pgData, 192)
	h.sh("pg2", `set -e
cp -a `+pgData+`.orig/. `+pgData+`/ && rm -rf `+pgData+`.orig && chown postgres:postgres `+pgData+` && chmod 700 `+pgData+`
mv `+pgData+`/pg_wal /wal/pg_wal && ln -s /wal/pg_wal `+pgData+`/pg_wal && chown -h postgres:postgres `+pgData+`/pg_wal
mkdir -p /etc/postgresql/15/main/conf.d`)
	for i, host := range []string{"pg1", "pg2"} {
		conf := dbaConf(lab.Address(i), host == "pg1")
		h.sh(host, "printf '%s' "+shellQuote(conf)+" > /etc/postgresql/15/main/conf.d/dba.conf && systemctl start "+pgUnit)
	}
	h.psqlAt("pg1", dbaPort, "CREATE TABLESPACE ts1 LOCATION '/tblspc/ts1'")
	h.psqlAt("pg1", dbaPort, "CREATE TABLE dba_rows TABLESPACE ts1 AS SELECT g AS id FROM generate_series(1, 1000) g")
	t.Logf("the DBA's layout made in %.1fs", time.Since(start).Seconds())

	primary := []string{"run", "pg-ha/configure-primary", "-p", "primary=pg1", "-p", "standby=pg2", "-p", "layout=debian"}
	standby := []string{"run", "pg-ha/configure-standby", "-p", "primary=pg1", "-p", "standby=pg2", "-p", "layout=debian"}

	if !t.Run("configure-primary writes where the settings take effect", func(t *testing.T) {
		h := h.on(t)
		out := h.ok(primary...)
		for _, want := range []string{"-wal_level = minimal", "+wal_level = 'replica'", "-hot_standby = on", "+hot_standby = off", "conf.d/dba.conf"} {
			if !strings.Contains(out, want) {
				t.Errorf("configure-primary's diff lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "+listen_addresses") || strings.Contains(out, "-listen_addresses") {
			t.Errorf("listen_addresses changed though it covers the replication address:\n%s", out)
		}
		settings := h.psqlAt("pg1", dbaPort, "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('wal_level', 'hot_standby', 'max_wal_senders', 'listen_addresses', 'port')")
		if settings != "hot_standby=off listen_addresses=localhost,10.231.0.11 max_wal_senders=3 port=5433 wal_level=replica" {
			t.Errorf("pg1's settings: %s", settings)
		}
		file := h.psqlAt("pg1", dbaPort, "SELECT string_agg(name || '=' || setting || '@' || sourcefile || ':' || sourceline, ' ' ORDER BY name) FROM pg_file_settings WHERE applied AND name IN ('wal_level', 'hot_standby', 'max_wal_senders')")
		if want := "hot_standby=off@/etc/postgresql/15/main/conf.d/dba.conf:3 max_wal_senders=3@/etc/postgresql/15/main/conf.d/dba.conf:6 wal_level=replica@/etc/postgresql/15/main/conf.d/dba.conf:5"; file != want {
			t.Errorf("pg_file_settings: %s\nwant %s", file, want)
		}
		// No restart on the second run: nothing left to take effect.
		started := h.psqlAt("pg1", dbaPort, "SELECT pg_postmaster_start_time()")
		h.unchanged(primary...)
		if again := h.psqlAt("pg1", dbaPort, "SELECT pg_postmaster_start_time()"); again != started {
			t.Errorf("the second run restarted the primary (%s, then %s)", started, again)
		}
	}) {
		return
	}

	if !t.Run("a full data disk: refused, then a failed base backup leaves the standby as it was", func(t *testing.T) {
		h := h.on(t)
		// What fills the standby's data disk is none of PostgreSQL's.
		h.sh("pg2", "free=$(df -k --output=avail "+pgData+" | tail -n 1); fallocate -l $(( (free - 24 * 1024) * 1024 )) "+pgData+"/lost+found/filler")
		before := h.sh("pg2", "cd "+pgData+" && ls -A && findmnt -n -o TARGET,FSTYPE "+pgData+" && systemctl is-active "+pgUnit)
		out, err := h.run(standby...)
		if err == nil || !strings.Contains(out, "refused, nothing was changed: not enough space; "+pgData+" needs") || strings.Contains(out, "] changed ") {
			t.Fatalf("configure-standby on a full disk: %v\n%s", err, out)
		}
		out, err = h.run(append(standby, "-p", "check_space=false")...)
		if err == nil || !strings.Contains(out, "the base backup failed; nothing on this node was changed") {
			t.Fatalf("configure-standby forced on a full disk: %v\n%s", err, out)
		}
		if after := h.sh("pg2", "cd "+pgData+" && ls -A && findmnt -n -o TARGET,FSTYPE "+pgData+" && systemctl is-active "+pgUnit); after != before {
			t.Errorf("the failed run changed pg2:\n%s\n---\n%s", before, after)
		}
		if got := h.psqlAt("pg2", dbaPort, "SELECT pg_is_in_recovery()"); got != "f" {
			t.Errorf("pg2's PostgreSQL after the failed run: %s", got)
		}
		h.sh("pg2", "rm "+pgData+"/lost+found/filler")
	}) {
		return
	}

	if !t.Run("configure-standby on a mount point with pg_wal on its own disk", func(t *testing.T) {
		h := h.on(t)
		out := h.ok(standby...)
		if !strings.Contains(out, "-hot_standby = on") || !strings.Contains(out, "conf.d/dba.conf") {
			t.Errorf("the standby's hot_standby was not set where it takes effect:\n%s", out)
		}
		if got := h.psqlAt("pg1", dbaPort, "SELECT application_name || ' ' || state || ' ' || sync_state FROM pg_stat_replication"); got != "inmanta streaming sync" {
			t.Errorf("pg_stat_replication on pg1: %q", got)
		}
		layout := h.sh("pg2", "findmnt -n -o TARGET "+pgData+"; test -f "+pgData+"/PG_VERSION && test -f "+pgData+"/standby.signal && echo data on the disk; readlink "+pgData+"/pg_wal; "+
			"ls /wal/pg_wal | grep -c '^0000'; readlink "+pgData+"/pg_tblspc/*; ls -A /var/lib/postgresql/15/; stat -c %U "+pgData+"/lost+found; grep -o 'port=[0-9]*' "+pgData+"/postgresql.auto.conf")
		want := pgData + "\ndata on the disk\n/wal/pg_wal\n"
		if !strings.HasPrefix(layout, want) || !strings.Contains(layout, "/tblspc/ts1\nmain\npostgres\nport=5433") {
			t.Errorf("pg2's layout after configure-standby:\n%s\nwant the mount point, the WAL disk, the tablespace, nothing beside main, lost+found readable, port 5433", layout)
		}
		if got := h.sh("pg2", "cd / && runuser -u postgres -- psql -X -p 5433 -c 'SELECT 1' 2>&1; true"); !strings.Contains(got, "not accepting connections") {
			t.Errorf("pg2 answers queries; a warm standby must not:\n%s", got)
		}
		h.unchanged(standby...)
	}) {
		return
	}

	if !t.Run("failover and rejoin: the old primary's link, WAL disk and tablespace", func(t *testing.T) {
		h := h.on(t)
		h.psqlAt("pg1", dbaPort, "INSERT INTO dba_rows SELECT g FROM generate_series(1001, 2000) g")
		h.sh("pg1", "systemctl stop "+pgUnit)
		h.ok("run", "pg-ha/promote-standby", "-p", "standby=pg2", "-p", "old_primary=pg1", "-p", "layout=debian", "--yes")
		if got := h.psqlAt("pg2", dbaPort, "SELECT count(*) FROM dba_rows"); got != "2000" {
			t.Errorf("pg2 has %s rows of the tablespace's table, want 2000", got)
		}
		add := []string{"run", "pg-ha/add-standby", "-p", "primary=pg2", "-p", "standby=pg1", "-p", "layout=debian", "-p", "discard_standby_data=true"}
		out := h.ok(add...)
		if !strings.Contains(out, "the old data is kept aside") {
			t.Errorf("add-standby does not say where pg1's old data went:\n%s", out)
		}
		layout := h.sh("pg1", "readlink "+pgData+"; test -f /data/pg/main/standby.signal && echo data on the data disk; ls -d /data/pg/main.runbook-old-* | wc -l; readlink /data/pg/main/pg_wal; "+
			"ls /wal/pg_wal | grep -c '^0000'; ls -d /wal/pg_wal.runbook-old-* /tblspc/ts1.runbook-old-* | wc -l; readlink /data/pg/main/pg_tblspc/*; ls -A /var/lib/postgresql/15/")
		if !strings.HasPrefix(layout, "/data/pg/main\ndata on the data disk\n1\n/wal/pg_wal\n") || !strings.HasSuffix(layout, "\n2\n/tblspc/ts1\nmain") {
			t.Errorf("pg1's layout after add-standby:\n%s\nwant the link to the data disk, the old data beside it, the WAL disk, the tablespace, nothing on the OS disk", layout)
		}
		// pg2's base backup left out what pg2 keeps set aside inside its
		// data directory (a mount point): pgsql_tmp names are temporary.
		if got := h.sh("pg1", "ls -A /data/pg/main | grep -c pgsql_tmp; true"); got != "0" {
			t.Errorf("pg1's copy of pg2 holds what pg2 set aside (%s entries)", got)
		}
		h.ok("run", "pg-ha/check", "-p", "primary=pg2", "-p", "standby=pg1", "-p", "layout=debian")
		h.unchanged(add...)
	}) {
		return
	}

	if !t.Run("and back: the mount point's old copy inside it, left out of base backups", func(t *testing.T) {
		h := h.on(t)
		h.sh("pg2", "systemctl stop "+pgUnit)
		h.ok("run", "pg-ha/promote-standby", "-p", "standby=pg1", "-p", "old_primary=pg2", "-p", "layout=debian", "--yes")
		add := []string{"run", "pg-ha/add-standby", "-p", "primary=pg1", "-p", "standby=pg2", "-p", "layout=debian", "-p", "discard_standby_data=true"}
		h.ok(add...)
		// Inside the mount point: the fresh cluster the DBA made, and the
		// data of pg2 as a primary, each set aside once.
		layout := h.sh("pg2", "findmnt -n -o TARGET "+pgData+"; test -f "+pgData+"/standby.signal && echo standby; ls -d "+pgData+"/pgsql_tmp.runbook-old-* | wc -l; ls -A /var/lib/postgresql/15/")
		if layout != pgData+"\nstandby\n2\nmain" {
			t.Errorf("pg2's layout after rejoining:\n%s", layout)
		}
		t.Logf("pg2's data disk: %s", h.sh("pg2", "df -h --output=size,used,avail "+pgData+" | tail -n 1"))
		h.ok("run", "pg-ha/check", "-p", "primary=pg1", "-p", "standby=pg2", "-p", "layout=debian")
		if got := h.psqlAt("pg1", dbaPort, "SELECT count(*) FROM dba_rows"); got != "2000" {
			t.Errorf("pg1 has %s rows after failing back, want 2000", got)
		}
	}) {
		return
	}

	if !t.Run("a slot another client holds or made is never taken", func(t *testing.T) {
		h := h.on(t)
		// A WAL archiver on pg2, streaming from pg1 through slot "archive".
		h.psqlAt("pg1", dbaPort, "SELECT pg_create_physical_replication_slot('archive', true)")
		h.sh("pg2", "mkdir -p /var/lib/archive && chown postgres /var/lib/archive && cd / && "+
			"PGPASSWORD="+shellQuote(replicationPassword)+" setsid runuser -u postgres -- pg_receivewal -h "+lab.Address(0)+" -p 5433 -U replication -S archive -D /var/lib/archive >/dev/null 2>&1 < /dev/null &")
		h.sh("pg1", "for i in $(seq 50); do test \"$(cd / && runuser -u postgres -- psql -XAt -p 5433 -c \"SELECT active FROM pg_replication_slots WHERE slot_name = 'archive'\")\" = t && exit 0; sleep 0.2; done; exit 1")
		holder := h.psqlAt("pg1", dbaPort, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'archive'")
		h.refused("slot archive is held by another client: PID "+holder+" (application_name pg_receivewal, user replication, from "+lab.Address(1)+")",
			"run", "pg-ha/configure-primary", "-p", "primary=pg1", "-p", "standby=pg2", "-p", "layout=debian", "-p", "slot=archive")
		h.refused("slot archive was not created by pg-ha/configure-primary and is held by PID "+holder,
			"run", "pg-ha/configure-standby", "-p", "primary=pg1", "-p", "standby=pg2", "-p", "layout=debian", "-p", "slot=archive")
		h.refused("slot archive is held by another client: PID "+holder,
			"run", "pg-ha/add-standby", "-p", "primary=pg1", "-p", "standby=pg2", "-p", "layout=debian", "-p", "slot=archive")
		// Momentarily gone: still not this procedure's slot.
		h.sh("pg2", "pkill -x pg_receivewal; for i in $(seq 50); do pgrep -x pg_receivewal >/dev/null || exit 0; sleep 0.1; done; exit 1")
		h.refused("slot archive exists and was not created by this procedure",
			"run", "pg-ha/configure-primary", "-p", "primary=pg1", "-p", "standby=pg2", "-p", "layout=debian", "-p", "slot=archive")
		if got := h.psqlAt("pg1", dbaPort, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'archive' AND restart_lsn IS NOT NULL"); got != "1" {
			t.Errorf("the archiver's slot is gone or holds back nothing (%s)", got)
		}
		if got := h.psqlAt("pg1", dbaPort, "SELECT application_name || ' ' || state || ' ' || sync_state FROM pg_stat_replication"); got != "inmanta streaming sync" {
			t.Errorf("pg_stat_replication on pg1: %q", got)
		}
	}) {
		return
	}

	if !t.Run("wal_level = logical with a logical slot: kept, no restart", func(t *testing.T) {
		h := h.on(t)
		h.sh("pg1", "sed -i 's/^wal_level = .*/wal_level = logical/' /etc/postgresql/15/main/conf.d/dba.conf && systemctl restart "+pgUnit)
		h.psqlAt("pg1", dbaPort, "SELECT pg_create_logical_replication_slot('cdc', 'test_decoding')")
		started := h.psqlAt("pg1", dbaPort, "SELECT pg_postmaster_start_time()")
		h.unchanged(primary...)
		if got := h.psqlAt("pg1", dbaPort, "SELECT current_setting('wal_level') || ' ' || (SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'cdc') || ' ' || (pg_postmaster_start_time() = '"+started+"')"); got != "logical 1 true" {
			t.Errorf("pg1 after configure-primary: %s, want wal_level logical, the slot cdc, no restart", got)
		}
	}) {
		return
	}
	t.Logf("the DBA setups took %.1fs", time.Since(start).Seconds())
}

// on returns a copy of h for a subtest.
func (h *ha) on(t *testing.T) *ha {
	c := *h
	c.t = t
	return &c
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
