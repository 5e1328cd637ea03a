package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/internal/lab"
)

// orchKey is the HS256 key of the stand-ins' [auth_jwt_default] section.
const orchKey = "ZTJlLW9yY2hlc3RyYXRvci10b2tlbi1rZXktb2YtMzItYnl0ZXMtb3ItbW9yZQ"

// TestOrchestrator runs the orchestrator playbooks against the stand-in as
// inmanta-server runs: as user inmanta, its API on the loopback address
// only, authentication on. pg1 holds the orchestrator's database; pg2 a
// second primary with the same database and role (which of the two is
// "the new primary" alternates; replication is TestHAScenario's part).
// In each version mode (before 16, 16–18, 19 and later) failover-database
// moves orch to the other database and new-orchestrator moves the server
// from orch to orch2. Then: an inmanta.d/zz.cfg and an INMANTA_DATABASE_HOST
// in the unit's environment that would undo database.host are refused; a
// user-unit install of the old orchestrator that still runs is refused,
// and so is a unit found nowhere; and a new orchestrator starts on a 19
// stand-in after the old machine lost power with its session, and the
// singleton lock, still on the primary.
func TestOrchestrator(t *testing.T) {
	start := time.Now()
	l := startLabWith(t, lab.Options{Hosts: []string{"pg1", "pg2", "orch", "orch2"}, Orchestrator: "orch"})
	h := &ha{t: t, l: l}
	orch, orch2 := lab.Address(2), lab.Address(3)
	password := h.sh("orch", "sed -n 's/^password=//p' /etc/inmanta/inmanta.d/database.cfg")
	token, err := lab.StandinToken(orchKey, "https://localhost:8888/", "api")
	if err != nil {
		t.Fatal(err)
	}
	h.env = []string{"RUNBOOK_DATABASE_PASSWORD=" + password, "RUNBOOK_ORCHESTRATOR_TOKEN=" + token}
	leaks := func(out string) {
		t.Helper()
		if strings.Contains(out, password) || strings.Contains(out, token) {
			t.Fatalf("a secret is in the output:\n%s", out)
		}
	}

	// pg2: a second primary with the orchestrator's role and database.
	h.sh("pg2", "sed -i \"s/^#listen_addresses = 'localhost'/listen_addresses = '*'/\" /etc/postgresql/15/main/postgresql.conf && systemctl restart postgresql@15-main")
	h.stdin("pg2", fmt.Sprintf("CREATE ROLE inmanta LOGIN PASSWORD '%s';\nCREATE DATABASE inmanta OWNER inmanta;\n", password),
		"runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1")
	// Authentication on both orchestrator machines.
	auth := "[server]\nauth=true\n[auth_jwt_default]\nalgorithm=HS256\nsign=true\nclient_types=agent,compiler,api\nkey=" + orchKey + "\n"
	for _, m := range []string{"orch", "orch2"} {
		h.stdin(m, auth, "install -o root -g inmanta -m 0640 /dev/stdin /etc/inmanta/inmanta.d/auth.cfg")
	}
	// The lab's database.cfg as new-orchestrator wrote it before: root
	// 0600, which the server's user cannot read.
	h.sh("orch", "chown root:root /etc/inmanta/inmanta.d/database.cfg && chmod 0600 /etc/inmanta/inmanta.d/database.cfg")

	targets := []string{"pg2", "pg1", "pg2"}
	for i, version := range []string{"15.3.0", "17.0.0", "19.1.0"} {
		major := strings.Split(version, ".")[0]
		target := targets[i]
		for _, m := range []string{"orch", "orch2"} {
			h.sh(m, "sed -i 's/--version [0-9.]*/--version "+version+"/' /etc/systemd/system/inmanta-server.service && systemctl daemon-reload")
		}
		failover := []string{"run", "orchestrator/failover-database", "-p", "orchestrator=orch", "-p", "new_primary=" + target, "-p", "layout=debian", "-p", "server_version=" + major}
		leaks(h.ok(failover...))
		h.unchanged(failover...)
		if got := h.sh("orch", "stat -c '%U:%G %a' /etc/inmanta/inmanta.d/database.cfg"); got != "root:inmanta 640" {
			t.Errorf("%s: database.cfg is %s, want root:inmanta 640", version, got)
		}
		h.serves("orch", version)
		if got := h.psqlDB(target, "inmanta", "SELECT count(*) > 0 FROM standin_heartbeat WHERE server = 'orch' AND at > now() - interval '5 seconds'"); got != "t" {
			t.Errorf("%s: orch does not use %s", version, target)
		}

		h.sh("orch", "systemctl stop inmanta-server && systemctl disable inmanta-server")
		mark := h.psqlDB(target, "inmanta", "SELECT now()")
		newOrch := []string{"run", "orchestrator/new-orchestrator", "-p", "old_orchestrator=orch", "-p", "new_orchestrator=orch2", "-p", "database_host=" + target, "-p", "server_version=" + major}
		out := h.ok(newOrch...)
		leaks(out)
		h.serves("orch2", version)
		if got := h.psqlDB(target, "inmanta", "SELECT count(*) FROM pg_stat_activity WHERE datname = 'inmanta' AND host(client_addr) = '"+orch2+"'"); got == "0" {
			t.Errorf("%s: no session of orch2 on %s", version, target)
		}
		// Active environments only, without pulling new code.
		if got := h.psqlDB(target, "inmanta", "SELECT string_agg(e.name || ' update=' || r.update_sources, ', ' ORDER BY e.name) FROM standin_recompile r JOIN standin_environment e ON e.id = r.environment WHERE r.server = 'orch2' AND r.requested_at > '"+mark+"'"); got != "production update=false, staging update=false" {
			t.Errorf("%s: recompiles requested: %q", version, got)
		}
		if got := h.sh("orch2", "ls /var/lib/runbook/ 2>/dev/null | grep -c recompile-owed || true"); got != "0" {
			t.Errorf("%s: a note of owed recompiles stayed after they were asked for", version)
		}
	}

	// 2. Configuration that would undo database.host: refused, naming it,
	// before anything changes. orch is the orchestrator again, on pg2.
	h.sh("orch2", "systemctl stop inmanta-server && systemctl disable inmanta-server")
	h.sh("orch", "systemctl enable --now inmanta-server")
	h.waitServes("orch")
	failover := []string{"run", "orchestrator/failover-database", "-p", "orchestrator=orch", "-p", "new_primary=pg1", "-p", "layout=debian"}
	h.stdin("orch", "[database]\nhost="+lab.Address(1)+"\n", "install -o root -g inmanta -m 0640 /dev/stdin /etc/inmanta/inmanta.d/zz.cfg")
	before := h.snapshot()
	h.refused("/etc/inmanta/inmanta.d/zz.cfg sets database.host = "+lab.Address(1)+" and is read after /etc/inmanta/inmanta.d/database.cfg: it wins", failover...)
	// An unreadable file is skipped by the server: no refusal for it.
	h.sh("orch", "chmod 0600 /etc/inmanta/inmanta.d/zz.cfg")
	if out, _ := h.run(append([]string{"plan"}, failover[1:]...)...); strings.Contains(out, "refused") {
		t.Errorf("a zz.cfg the server cannot read was held against the failover:\n%s", out)
	}
	h.sh("orch", "rm /etc/inmanta/inmanta.d/zz.cfg && echo INMANTA_DATABASE_HOST="+lab.Address(1)+" >> /etc/sysconfig/inmanta-server")
	h.refused("INMANTA_DATABASE_HOST="+lab.Address(1)+" in EnvironmentFile /etc/sysconfig/inmanta-server of the unit inmanta-server overrides every file", failover...)
	if after := h.snapshot(); after != before {
		t.Fatalf("a refused failover changed the hosts:\n%s\n---\n%s", before, after)
	}
	h.sh("orch", "sed -i '/^INMANTA_DATABASE_HOST=/d' /etc/sysconfig/inmanta-server")
	old := lab.Address(1)
	dropin := func(text string) {
		t.Helper()
		h.stdin("orch", text, "mkdir -p /etc/systemd/system/inmanta-server.service.d && cat > /etc/systemd/system/inmanta-server.service.d/20-e2e.conf && systemctl daemon-reload")
	}
	// The database set on ExecStart's own command line (env VAR=...).
	dropin("[Service]\nExecStart=\nExecStart=/usr/bin/env INMANTA_DATABASE_HOST=" + old + " /usr/local/bin/runbook lab standin --version 19.1.0\n")
	h.refused("INMANTA_DATABASE_HOST="+old+" in env INMANTA_DATABASE_HOST=... on ExecStart of the unit inmanta-server overrides every file", failover...)
	// A shell on ExecStart may set anything (a sourced file): refused.
	dropin("[Service]\nExecStart=\nExecStart=/bin/sh -c 'exec /usr/local/bin/runbook lab standin --version 19.1.0'\n")
	h.refused("ExecStart of the unit inmanta-server runs the server through a shell", failover...)
	// Environment= in a drop-in, and a -c file given on ExecStart.
	dropin("[Service]\nEnvironment=INMANTA_DATABASE_HOST=" + old + "\n")
	h.refused("INMANTA_DATABASE_HOST="+old+" in Environment= of the unit inmanta-server overrides every file", failover...)
	h.stdin("orch", "[database]\nhost="+old+"\n", "install -o root -g inmanta -m 0640 /dev/stdin /etc/inmanta/extra.cfg")
	dropin("[Service]\nExecStart=\nExecStart=/usr/local/bin/runbook lab standin --version 19.1.0 -c /etc/inmanta/extra.cfg\n")
	h.refused("/etc/inmanta/extra.cfg sets database.host = "+old+" and is read after /etc/inmanta/inmanta.d/database.cfg: it wins", failover...)
	h.sh("orch", "rm -r /etc/systemd/system/inmanta-server.service.d /etc/inmanta/extra.cfg && systemctl daemon-reload")
	// The running server got the variable from a source no file shows
	// (here the manager's environment, unset since): its own environment
	// is read.
	h.sh("orch", "systemctl set-environment INMANTA_DATABASE_HOST="+old+" && systemctl restart inmanta-server && systemctl unset-environment INMANTA_DATABASE_HOST")
	h.waitServes("orch")
	h.refused("has INMANTA_DATABASE_HOST="+old+" in its environment, from a source this check cannot read", failover...)
	h.sh("orch", "systemctl restart inmanta-server")
	h.waitServes("orch")
	// A token the running server refuses: found before anything changes.
	other, err := lab.StandinToken("b3RoZXIta2V5LW9mLTMyLWJ5dGVzLW9yLW1vcmUtZm9yLWUyZS10ZXN0cw", "https://localhost:8888/", "api")
	if err != nil {
		t.Fatal(err)
	}
	goodEnv := h.env
	h.env = []string{"RUNBOOK_DATABASE_PASSWORD=" + password, "RUNBOOK_ORCHESTRATOR_TOKEN=" + other}
	h.refused("the running server refuses the API token (HTTP 403", failover...)
	h.env = goodEnv
	// /etc/inmanta read-only: named before the server is stopped.
	h.sh("orch", "mount -o bind /etc/inmanta /etc/inmanta && mount -o remount,bind,ro /etc/inmanta")
	h.refused("/etc/inmanta/inmanta.d/database.cfg is on a read-only file system", failover...)
	h.sh("orch", "umount /etc/inmanta")
	// database.cfg a link into a directory the server's user cannot enter:
	// no owner or mode of the file helps.
	h.sh("orch", "install -d -m 0700 /root/cfg && mv /etc/inmanta/inmanta.d/database.cfg /root/cfg/ && ln -s /root/cfg/database.cfg /etc/inmanta/inmanta.d/database.cfg")
	h.refused("which inmanta cannot enter", failover...)
	h.sh("orch", "rm /etc/inmanta/inmanta.d/database.cfg && mv /root/cfg/database.cfg /etc/inmanta/inmanta.d/ && rmdir /root/cfg")

	// 4. The old orchestrator moved to a user unit (rootless Podman
	// style), under another program path and port, and running; the RPM's
	// system unit is still there, stopped and disabled.
	h.sh("orch", "systemctl disable --now inmanta-server && install -d /opt/inmanta/bin && cp /usr/local/bin/runbook /opt/inmanta/bin/inmanta")
	h.sh("orch", `uid=$(id -u inmanta); systemctl start user@$uid.service
install -d -o inmanta -g inmanta /var/lib/inmanta/.config/systemd/user
printf '[database]\nwait_time=10\n[server]\nbind-port=8889\n' | install -o inmanta -g inmanta -m 0600 /dev/stdin /var/lib/inmanta/user.cfg
printf '[Service]\nExecStart=/opt/inmanta/bin/inmanta lab standin --version 17.0.0 -c /var/lib/inmanta/user.cfg\n[Install]\nWantedBy=default.target\n' | install -o inmanta -g inmanta -m 0644 /dev/stdin /var/lib/inmanta/.config/systemd/user/inmanta-server.service
runuser -u inmanta -- env XDG_RUNTIME_DIR=/run/user/$uid systemctl --user enable --now inmanta-server`)
	userNew := []string{"run", "orchestrator/new-orchestrator", "-p", "old_orchestrator=orch", "-p", "new_orchestrator=orch2", "-p", "database_host=pg2"}
	h.refused("user unit inmanta-server of inmanta is active (a user-scope install", userNew...)
	// And without the system unit: the system manager knows none.
	h.sh("orch", "mv /etc/systemd/system/inmanta-server.service /root/inmanta-server.service && systemctl daemon-reload")
	h.refused("user unit inmanta-server of inmanta is active (a user-scope install", userNew...)
	// Gone from both scopes: a wrong name or machine, never "stopped".
	h.sh("orch", `uid=$(id -u inmanta); runuser -u inmanta -- env XDG_RUNTIME_DIR=/run/user/$uid systemctl --user disable --now inmanta-server
rm /var/lib/inmanta/.config/systemd/user/inmanta-server.service; systemctl stop user@$uid.service`)
	h.refused("no unit inmanta-server here, neither a system unit nor a user unit", userNew...)
	h.sh("orch", "mv /root/inmanta-server.service /etc/systemd/system/ && systemctl daemon-reload")
	// A server started by hand, by no unit, under another path and port:
	// the process itself is the sign.
	h.sh("orch", "systemd-run --quiet --uid=inmanta --gid=inmanta --unit=e2e-byhand /opt/inmanta/bin/inmanta lab standin --version 17.0.0 -c /var/lib/inmanta/user.cfg")
	h.refused("an orchestrator server runs: PID", userNew...)
	h.sh("orch", "systemctl stop e2e-byhand")

	// 3. orch2 is the orchestrator (19) on pg2 and loses power: its session
	// and singleton lock stay on pg2 until TCP keepalive ends them. A new
	// orchestrator on orch starts all the same.
	h.sh("orch2", "systemctl enable --now inmanta-server")
	h.waitServes("orch2")
	lockHolder := "SELECT coalesce(string_agg(host(a.client_addr), ','), '') FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND (l.classid::bigint << 32 | l.objid::bigint) = " + fmt.Sprint(lab.SingletonLockKey)
	if got := h.psqlDB("pg2", "inmanta", lockHolder); got != orch2 {
		t.Fatalf("the singleton lock on pg2 is held by %q, want orch2 (%s)", got, orch2)
	}
	// Power lost: the network goes first, so no FIN reaches pg2.
	for _, f := range []string{lab.FaultPartition, lab.FaultKill} {
		if err := l.Fault(context.Background(), "orch2", f); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.psqlDB("pg2", "inmanta", lockHolder); got != orch2 {
		t.Fatalf("after the power cut the lock on pg2 is held by %q, want the orphaned session of orch2", got)
	}
	powerCut := []string{"run", "orchestrator/new-orchestrator", "-p", "old_orchestrator=orch2", "-p", "new_orchestrator=orch", "-p", "database_host=pg2", "-p", "old_orchestrator_powered_off=true"}
	// A token not signed with the new server's key: found before anything
	// changes, though no server runs there yet to ask.
	h.env = []string{"RUNBOOK_DATABASE_PASSWORD=" + password, "RUNBOOK_ORCHESTRATOR_TOKEN=" + other}
	h.refused("the API token is not signed with the server's key", powerCut...)
	h.env = goodEnv
	out := h.ok(powerCut...)
	leaks(out)
	if !strings.Contains(out, "changed      End the old orchestrator's sessions") {
		t.Errorf("no step ended the orphaned sessions:\n%s", out)
	}
	if got := h.psqlDB("pg2", "inmanta", lockHolder); got != orch {
		t.Errorf("the singleton lock on pg2 is held by %q, want orch (%s)", got, orch)
	}
	if got := h.psqlDB("pg2", "inmanta", "SELECT count(*) FROM pg_stat_activity WHERE datname = 'inmanta' AND host(client_addr) = '"+orch+"'"); got == "0" {
		t.Error("no session of orch in pg2's pg_stat_activity")
	}
	h.serves("orch", "19.1.0")
	// A rerun after a run that failed between the start and the
	// recompiles (its note left on the machine) still asks for them.
	mark := h.psqlDB("pg2", "inmanta", "SELECT now()")
	h.sh("orch", "mkdir -p /var/lib/runbook && touch /var/lib/runbook/recompile-owed.inmanta-server")
	h.ok(powerCut...)
	if got := h.psqlDB("pg2", "inmanta", "SELECT count(*) FROM standin_recompile WHERE server = 'orch' AND requested_at > '"+mark+"'"); got != "2" {
		t.Errorf("a rerun that owed recompiles asked for %s, want 2", got)
	}
	t.Logf("TestOrchestrator took %.1fs", time.Since(start).Seconds())
}

// stdin runs a shell command on a lab host with text on its standard
// input (secrets never on a command line).
func (h *ha) stdin(host, text, cmd string) {
	h.t.Helper()
	var out strings.Builder
	code, err := h.l.ExecInteractive(context.Background(), host, strings.NewReader(text), &out, &out, "sh", "-c", cmd)
	if err != nil || code != 0 {
		h.t.Fatalf("%s: %s: exit %d %v\n%s", host, cmd, code, err, out.String())
	}
}

// serves checks that the stand-in of version runs on host as inmanta-server
// does: as user inmanta, listening on 127.0.0.1:8888 only.
func (h *ha) serves(host, version string) {
	h.t.Helper()
	got := h.sh(host, "pid=$(systemctl show -p MainPID --value inmanta-server); ps -o user= -p $pid; ps -o args= -p $pid; ss -Hltn 'sport = :8888' | awk '{print $4}'")
	want := "inmanta\n/usr/local/bin/runbook lab standin --version " + version + "\n127.0.0.1:8888"
	if got != want {
		h.t.Errorf("%s: the server runs as\n%s\nwant\n%s", host, got, want)
	}
}

// waitServes waits until the stand-in on host listens.
func (h *ha) waitServes(host string) {
	h.t.Helper()
	h.sh(host, "for i in $(seq 150); do ss -Hltn 'sport = :8888' | grep -q . && exit 0; sleep 0.1; done; systemctl status --no-pager inmanta-server; exit 1")
}
