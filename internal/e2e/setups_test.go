package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
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
	}
	h.disk("pg1", "/wal", 256)
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
mv `+pgData+`/pg_wal /var/tmp/pg_wal && mkdir -m 700 `+pgData+`/pg_wal
mkdir -p /etc/postgresql/15/main/conf.d`)
	// pg_wal itself the mount point of a WAL disk (no link), inside the
	// data directory's own mount point; the tablespace's place prepared
	// on a disk of its own.
	h.disk("pg2", pgData+"/pg_wal", 192)
	h.disk("pg2", "/tblspc", 64)
	h.sh("pg2", `set -e
cp -a /var/tmp/pg_wal/. `+pgData+`/pg_wal/ && rm -rf /var/tmp/pg_wal && chown postgres:postgres `+pgData+`/pg_wal && chmod 700 `+pgData+`/pg_wal
mkdir /tblspc/ts1 && chown postgres:postgres /tblspc/ts1`)
	for i, host := range []string{"pg1", "pg2"} {
		conf := dbaConf(lab.Address(i), host == "pg1")
		if host == "pg1" {
			// The DBA's own pg_hba file.
			conf += "hba_file = '/etc/postgresql/15/main/hba-dba.conf'\n"
			h.sh(host, "cp -p /etc/postgresql/15/main/pg_hba.conf /etc/postgresql/15/main/hba-dba.conf")
		}
		h.sh(host, "printf '%s' "+shellQuote(conf)+" > /etc/postgresql/15/main/conf.d/dba.conf && systemctl start "+pgUnit)
		// A setting of each node's own, by ALTER SYSTEM.
		h.psqlAt(host, dbaPort, "ALTER SYSTEM SET cluster_name = '"+host+"-dba'")
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
		if got := h.sh("pg1", "cd /etc/postgresql/15/main && grep -c '^host replication replication' hba-dba.conf; grep -c '^host replication replication' pg_hba.conf; true"); got != "2\n0" {
			t.Errorf("the replication rules are not (only) in the hba_file the DBA set (hba-dba.conf, pg_hba.conf): %q", got)
		}
		if out, err := h.run(append(primary, "-p", "slot=My-Slot")...); err == nil || !strings.Contains(out, "does not match the pattern") || strings.Contains(out, "] changed ") {
			t.Errorf("a slot name PostgreSQL refuses was not refused before any change: %v\n%s", err, out)
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
		// Why, in pg_basebackup's own words, in the step's failure.
		if !strings.Contains(out, "pg_basebackup: error:") || !strings.Contains(out, "No space left on device") {
			t.Errorf("the failed base backup does not say why:\n%s", out)
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

	if !t.Run("the base backup does not outlive runbook", func(t *testing.T) {
		h := h.on(t)
		// Slow enough to be killed in the middle.
		h.sh("pg1", "tc qdisc add dev host0 root tbf rate 24mbit burst 32kbit latency 400ms")
		defer h.sh("pg1", "tc qdisc del dev host0 root")
		cmd := exec.Command(runbookBin, append([]string{standby[0], "-i", h.inventory}, standby[1:]...)...)
		cmd.Env = append(append(os.Environ(), "XDG_STATE_HOME="+stateDir), h.env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		h.sh("pg2", "for i in $(seq 300); do test -d "+pgData+"/pgsql_tmp.runbook-new/base && exit 0; sleep 0.2; done; echo no base backup started; exit 1")
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		killed := time.Now()
		left := h.sh("pg2", "for i in $(seq 50); do n=$(pgrep -x pg_basebackup | wc -l); s=$(ls -d "+pgData+"/pgsql_tmp.runbook-new "+pgData+"/pg_wal/pgsql_tmp.runbook-new /tblspc/ts1.runbook-new 2>/dev/null | wc -l); "+
			"[ $n = 0 ] && [ $s = 0 ] && break; sleep 0.2; done; echo $n $s")
		if left != "0 0" {
			t.Errorf("10 s after runbook was killed, pg2 still has pg_basebackup processes and staged copies: %s", left)
		}
		t.Logf("pg_basebackup and its stage gone %.1fs after runbook was killed", time.Since(killed).Seconds())
		if got := h.psqlAt("pg2", dbaPort, "SELECT pg_is_in_recovery()"); got != "f" {
			t.Errorf("pg2's PostgreSQL after the killed run: %s", got)
		}
	}) {
		return
	}

	if !t.Run("a swap that fails part-way is undone, checked, and PostgreSQL started again", func(t *testing.T) {
		h := h.on(t)
		// The tablespace's place cannot be moved aside: the WAL and the data
		// directory are swapped by then.
		fingerprint := "cd " + pgData + " && ls -A | grep -v pgsql_tmp; ls -A pg_wal | grep -v pgsql_tmp; cat PG_VERSION; findmnt -n -o TARGET " + pgData + " " + pgData + "/pg_wal /tblspc; " +
			"ls -A /tblspc; ls -d " + pgData + "/pgsql_tmp.runbook-* " + pgData + "/pg_wal/pgsql_tmp.runbook-* /tblspc/*.runbook-* 2>/dev/null; systemctl is-active " + pgUnit
		before := h.sh("pg2", fingerprint)
		h.sh("pg2", "chattr +i /tblspc/ts1")
		out, err := h.run(standby...)
		h.sh("pg2", "chattr -i /tblspc/ts1")
		if err == nil || !strings.Contains(out, "could not move /tblspc/ts1 aside; every move undone and checked") || !strings.Contains(out, "PostgreSQL runs again") {
			t.Fatalf("configure-standby with an immovable tablespace directory: %v\n%s", err, out)
		}
		if after := h.sh("pg2", fingerprint); after != before {
			t.Errorf("pg2 after the undo:\n%s\n---\nbefore:\n%s", after, before)
		}
		if got := h.psqlAt("pg2", dbaPort, "SELECT pg_is_in_recovery()"); got != "f" {
			t.Errorf("pg2's PostgreSQL after the undo: %s", got)
		}
	}) {
		return
	}

	if !t.Run("configure-standby on a mount point with pg_wal the mount point of a WAL disk", func(t *testing.T) {
		h := h.on(t)
		// A base backup of runbook's own left running (a killed run on a
		// version without the watchdog, say) holds the slot: the run stops
		// it and goes on.
		h.sh("pg2", "mkdir -p /var/tmp/orphan && chown postgres /var/tmp/orphan && cd / && PGPASSWORD="+shellQuote(replicationPassword)+" PGAPPNAME='runbook base backup (left over)' "+
			"setsid runuser -u postgres -- pg_basebackup -h "+lab.Address(0)+" -p 5433 -U replication -S replication -D /var/tmp/orphan/d -X stream --checkpoint=fast --max-rate=32k >/dev/null 2>&1 < /dev/null &")
		h.sh("pg1", "for i in $(seq 100); do test \"$(cd / && runuser -u postgres -- psql -XAt -p 5433 -c \"SELECT count(*) FROM pg_replication_slots s JOIN pg_stat_activity a ON a.pid = s.active_pid WHERE slot_name = 'replication' AND application_name LIKE 'runbook base backup%'\")\" = 1 && exit 0; sleep 0.2; done; exit 1")
		out := h.ok(standby...)
		h.sh("pg2", "rm -rf /var/tmp/orphan")
		if !strings.Contains(out, "stopped the base backup an earlier run of runbook left running") {
			t.Errorf("the leftover base backup was not stopped by the run:\n%s", out)
		}
		// The standby keeps its own ALTER SYSTEM settings; the primary's are said.
		if !strings.Contains(out, "not taken from the primary's postgresql.auto.conf") || !strings.Contains(out, "cluster_name = 'pg1-dba'") {
			t.Errorf("the primary's ALTER SYSTEM settings are not reported:\n%s", out)
		}
		if got := h.sh("pg2", "grep cluster_name "+pgData+"/postgresql.auto.conf"); got != "cluster_name = 'pg2-dba'" {
			t.Errorf("pg2's own cluster_name was not kept: %q", got)
		}
		if !strings.Contains(out, "-hot_standby = on") || !strings.Contains(out, "conf.d/dba.conf") {
			t.Errorf("the standby's hot_standby was not set where it takes effect:\n%s", out)
		}
		if got := h.psqlAt("pg1", dbaPort, "SELECT application_name || ' ' || state || ' ' || sync_state FROM pg_stat_replication"); got != "inmanta streaming sync" {
			t.Errorf("pg_stat_replication on pg1: %q", got)
		}
		layout := h.sh("pg2", "findmnt -n -o TARGET "+pgData+"; findmnt -n -o TARGET "+pgData+"/pg_wal; findmnt -rn -o TARGET | grep -c runbook; test -f "+pgData+"/PG_VERSION && test -f "+pgData+"/standby.signal && echo data on the disk; "+
			"test -L "+pgData+"/pg_wal && echo pg_wal a link; ls "+pgData+"/pg_wal | grep -c '^0000' >/dev/null && echo WAL on the WAL disk; readlink "+pgData+"/pg_tblspc/*; ls -A /var/lib/postgresql/15/; stat -c %U "+pgData+"/lost+found; grep -o 'port=[0-9]*' "+pgData+"/postgresql.auto.conf")
		want := pgData + "\n" + pgData + "/pg_wal\n0\ndata on the disk\nWAL on the WAL disk\n/tblspc/ts1\nmain\npostgres\nport=5433"
		if layout != want {
			t.Errorf("pg2's layout after configure-standby:\n%s\nwant:\n%s\n(the mount points where they were, none moved, the WAL on its disk, the tablespace, nothing beside main, lost+found readable, port 5433)", layout, want)
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
		out := h.ok(add...)
		// Inside the mount point: the data of pg2 as a primary, set aside;
		// the fresh cluster the DBA made, set aside by configure-standby,
		// removed by the bound (keep_aside: the newest set only).
		if !strings.Contains(out, "removed "+pgData+"/pgsql_tmp.runbook-old-") {
			t.Errorf("add-standby does not say it removed the fresh cluster pg2 set aside before:\n%s", out)
		}
		layout := h.sh("pg2", "findmnt -n -o TARGET "+pgData+"; test -f "+pgData+"/standby.signal && echo standby; ls -d "+pgData+"/pgsql_tmp.runbook-old-* | wc -l; ls -A /var/lib/postgresql/15/")
		if layout != pgData+"\nstandby\n1\nmain" {
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
		// The archiver uses a WAL sender: with max_wal_senders = 3, the
		// standby's and its base backup's no longer fit. Refused before the
		// primary is changed or restarted.
		h.refused("max_wal_senders is 3 and other clients use 1 (PID "+holder+" (pg_receivewal from "+lab.Address(1)+")); the standby needs 1 and its base backup 2", primary...)
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
	if !t.Run("a standby of another cluster gets a base backup, never a mere conninfo rewrite", func(t *testing.T) {
		h := h.on(t)
		// pg2 is made a standby of a cluster of its own (a fresh initdb)
		// whose primary_conninfo names pg1 exactly: it is in archive
		// recovery, has standby.signal and the right host, and is not pg1's.
		// (What earlier runs set aside is deleted first, as a DBA would.)
		h.sh("pg2", `set -e
systemctl stop `+pgUnit+`
cd `+pgData+` && for e in *; do case $e in lost+found|pg_wal) ;; *) rm -rf "$e";; esac; done
rm -rf pg_wal/0* pg_wal/archive_status pg_wal/pgsql_tmp.*
rm -rf /var/tmp/other && cd / && runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D /var/tmp/other >/dev/null
mv /var/tmp/other/pg_wal/* `+pgData+`/pg_wal/ && rmdir /var/tmp/other/pg_wal && mv /var/tmp/other/* `+pgData+`/ && rm -rf /var/tmp/other
touch `+pgData+`/standby.signal && echo "primary_conninfo = 'user=replication host=`+lab.Address(0)+` port=5433 application_name=inmanta'" >> `+pgData+`/postgresql.auto.conf
chown -R postgres:postgres `+pgData+`/* && chown postgres:postgres `+pgData+`/lost+found
systemctl start `+pgUnit+`
for i in $(seq 50); do LC_ALL=C /usr/lib/postgresql/15/bin/pg_controldata -D `+pgData+` | grep -q 'in archive recovery' && exit 0; sleep 0.2; done; exit 1`)
		out := h.ok(standby...)
		if !strings.Contains(out, "a base backup is needed: the standby's cluster") || !strings.Contains(out, "is not the primary's") {
			t.Errorf("configure-standby did not see pg2 is another cluster's standby:\n%s", out)
		}
		sysid := "LC_ALL=C /usr/lib/postgresql/15/bin/pg_controldata -D " + pgData + " | sed -n 's/^Database system identifier: *//p'"
		if a, b := h.sh("pg1", sysid), h.sh("pg2", sysid); a != b {
			t.Errorf("pg2's cluster (%s) is not pg1's (%s)", b, a)
		}
		if got := h.psqlAt("pg1", dbaPort, "SELECT application_name || ' ' || state || ' ' || sync_state FROM pg_stat_replication WHERE application_name = 'inmanta'"); got != "inmanta streaming sync" {
			t.Errorf("pg_stat_replication on pg1: %q", got)
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
