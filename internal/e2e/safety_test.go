package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/internal/lab"
)

const (
	pgData = "/var/lib/postgresql/15/main"
	pgBin  = "/usr/lib/postgresql/15/bin"
	pgUnit = "postgresql@15-main"
)

// TestNeverTwoPrimaries replays on the lab, with the bundled
// promote-standby, every way into two primaries that was found: a
// PostgreSQL started by hand beside its inactive unit, an ssh-agent whose
// keys exhaust sshd's MaxAuthTries, a hung sshd on the old primary, a
// wrong unit name, a live old primary whose firewall rejects this machine
// (its ICMP "no route to host" once taken for no machine at all). Each is refused with what it saw, pg2 stays in
// recovery and nothing changes on any host. Then the confirmation gate
// (refused without a terminal or --yes), a promotion with the evidence in
// the output and the journal, fencing that survives a power cut and a
// boot, and the same judgement in add-standby and new-orchestrator.
func TestNeverTwoPrimaries(t *testing.T) {
	l := startLabWith(t, lab.Options{Hosts: []string{"pg1", "pg2", "orch"}, Orchestrator: "orch"})
	h := &ha{t: t, l: l, env: []string{"RUNBOOK_REPLICATION_PASSWORD=" + replicationPassword}}
	h.ok("run", "pg-ha/configure-primary", "-p", "primary=pg1", "-p", "standby=pg2", "-p", "layout=debian")
	h.ok("run", "pg-ha/configure-standby", "-p", "primary=pg1", "-p", "standby=pg2", "-p", "layout=debian")
	promote := []string{"run", "pg-ha/promote-standby", "-p", "standby=pg2", "-p", "old_primary=pg1", "-p", "layout=debian"}
	yes := append(append([]string{}, promote...), "--yes")

	// refusedUnchanged: refused with want, pg2 still a standby in recovery,
	// no configuration file nor unit state changed on any host.
	refusedUnchanged := func(what, want string, args ...string) {
		t.Helper()
		before := h.snapshot()
		h.refused(want, args...)
		if after := h.snapshot(); after != before {
			t.Fatalf("%s: a refused promotion changed the hosts:\n%s\n---\n%s", what, before, after)
		}
		if st := h.sh("pg2", "LC_ALL=C "+pgBin+"/pg_controldata -D "+pgData+" | grep 'cluster state'"); !strings.Contains(st, "in archive recovery") {
			t.Fatalf("%s: pg2 left recovery: %s", what, st)
		}
	}

	// 1. PostgreSQL started by hand on pg1, its unit inactive.
	h.sh("pg1", "systemctl stop "+pgUnit+" && cd / && runuser -u postgres -- "+pgBin+"/pg_ctl start -w -s -D "+pgData+
		" -o '-c config_file=/etc/postgresql/15/main/postgresql.conf' -l /var/log/postgresql/by-hand.log")
	if got := h.sh("pg1", "systemctl is-active "+pgUnit+"; true"); got != "inactive" {
		t.Fatalf("pg1's unit is %q, want inactive with the server started by hand", got)
	}
	refusedUnchanged("started by hand", "a live process (PID", yes...)
	out, _ := h.run(yes...)
	for _, sign := range []string{"PostgreSQL answers at /var/run/postgresql port 5432", "the standby sees a PostgreSQL at " + lab.Address(0), "a server answers at " + lab.Address(0)} {
		if !strings.Contains(out, sign) {
			t.Errorf("the refusal does not name %q:\n%s", sign, out)
		}
	}
	h.sh("pg1", "cd / && runuser -u postgres -- "+pgBin+"/pg_ctl stop -w -s -m fast -D "+pgData+" && systemctl start "+pgUnit)

	// 2. An ssh-agent with seven keys before pg1's: the inventory's key is
	// offered first, pg1 is reached and seen running.
	sock := startAgent(t, 7)
	h.env = append(h.env, "SSH_AUTH_SOCK="+sock)
	refusedUnchanged("agent with seven keys", "unit "+pgUnit+" is active", yes...)
	// Without the inventory's key, sshd cuts the connection after
	// MaxAuthTries: an authentication error, never "unreachable".
	noKey := writeFile(t, "inventory.yaml", strings.ReplaceAll(readFile(t, l.InventoryPath()), l.KeyFile(), "/nonexistent/id_ed25519"))
	before := h.snapshot()
	out, errOut, err := runbook(t, h.env, append([]string{"run", "-i", noKey}, yes[1:]...)...)
	if err == nil || !strings.Contains(errOut, "refused") || !strings.Contains(errOut, "authentication to pg1 as root failed") || !strings.Contains(errOut, "MaxAuthTries") {
		t.Fatalf("agent keys only: %v\n%s%s", err, out, errOut)
	}
	if after := h.snapshot(); after != before {
		t.Fatalf("a refused promotion changed the hosts:\n%s\n---\n%s", before, after)
	}
	h.env = h.env[:len(h.env)-1]

	// 3. A hung sshd on pg1 (its listener stopped): the port accepts and
	// never speaks; pg1 is up, PostgreSQL still serves there.
	fast := writeFile(t, "ssh_config", "Host *\n  ConnectTimeout 3\n")
	h.sh("pg1", "kill -STOP $(cat /run/sshd.pid)")
	refusedUnchanged("hung sshd", "no SSH handshake finished within 3s", append(yes, "--ssh-config", fast)...)
	if got := h.psql("pg1", "SELECT 1"); got != "1" {
		t.Errorf("PostgreSQL on pg1 stopped serving: %q", got)
	}
	h.sh("pg1", "kill -CONT $(cat /run/sshd.pid)")

	// 4. A unit that does not exist on the old primary: a wrong parameter.
	refusedUnchanged("wrong unit", "the unit postgresql@14-main does not exist on the old primary", append(yes, "-p", "unit=postgresql@14-main")...)
	out, _ = h.run(append(yes, "-p", "unit=postgresql@14-main")...)
	if !strings.Contains(out, pgUnit+".service") {
		t.Errorf("the refusal does not list the units that exist:\n%s", out)
	}

	// 4b. A wrong old primary, or a typo in its address: the standby does
	// not replicate from there, so the checks would look at the wrong place.
	refusedUnchanged("wrong old primary", "the standby replicates from "+lab.Address(0)+", not from "+lab.Address(2), "run", "pg-ha/promote-standby", "-p", "standby=pg2", "-p", "old_primary=orch", "-p", "layout=debian", "--yes")
	refusedUnchanged("address typo", "not from 10.231.0.111", append(yes, "-p", "old_primary_address=10.231.0.111")...)
	refusedUnchanged("address that does not resolve", "does not resolve on the standby", append(yes, "-p", "old_primary_address=pg1-db.invalid")...)

	// 4c. pg1 alive, answering this machine's TCP with an ICMP "packet
	// filtered" from its own address, as a firewall's REJECT does (ARP
	// still answered), and the standby cut from pg1 by a route of its
	// own: every look sees nothing answer, and only the ICMP's sender
	// tells a live machine from one that is gone. Refused: pg1 answered.
	h.sh("pg1", "sysctl -qw net.ipv4.conf.all.forwarding=1 && ip rule add pref 100 lookup local && ip rule del pref 0 && "+
		"ip rule add pref 10 from "+lab.Gateway+" ipproto tcp prohibit")
	h.sh("pg2", "ip route add prohibit "+lab.Address(0)+"/32")
	refusedUnchanged("a firewall's REJECT", "a live machine whose firewall rejects the connection", yes...)
	h.sh("pg2", "ip route del prohibit "+lab.Address(0)+"/32")
	h.sh("pg1", "ip rule del pref 10 && ip rule add pref 0 lookup local && ip rule del pref 100 && sysctl -qw net.ipv4.conf.all.forwarding=0")

	// 5. pg1 stopped through its unit. Without a terminal and without --yes
	// the promotion changes nothing and says how to proceed.
	h.sh("pg1", "systemctl stop "+pgUnit)
	before = h.snapshot()
	out, err = h.run(promote...)
	if err == nil || !strings.Contains(out, "--yes") {
		t.Fatalf("a promotion without a terminal and without --yes: %v\n%s", err, out)
	}
	if after := h.snapshot(); after != before {
		t.Fatalf("a promotion refused for want of a confirmation changed the hosts:\n%s\n---\n%s", before, after)
	}

	// 6. With --yes: evidence shown and journaled, pg1 fenced, pg2 promoted.
	out = h.ok(yes...)
	for _, want := range []string{"timeline 1", "last WAL record received: 0/", "replaying", "Fence the old primary", "timeline 2; switched from timeline 1 at 0/"} {
		if !strings.Contains(out, want) {
			t.Errorf("the promotion's output lacks %q:\n%s", want, out)
		}
	}
	journal, _, err := runbook(t, nil, "show-run", latestRun(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"timeline 1", "last WAL record received: 0/", "--yes", "timeline 2; switched from timeline 1 at 0/", "old primary pg1: Database cluster state:"} {
		if !strings.Contains(journal, want) {
			t.Errorf("the journal lacks %q:\n%s", want, journal)
		}
	}
	if got := h.sh("pg1", "systemctl is-enabled "+pgUnit+"; true"); got != "masked" {
		t.Errorf("pg1's unit is %q after the promotion, want masked", got)
	}

	// 7. pg1 loses power and boots again: it does not accept writes.
	if err := l.Fault(context.Background(), "pg1", lab.FaultKill); err != nil {
		t.Fatal(err)
	}
	if err := l.Fault(context.Background(), "pg1", lab.FaultStart); err != nil {
		t.Fatal(err)
	}
	h.sh("pg1", "systemctl is-system-running --wait >/dev/null; true")
	if got := h.sh("pg1", "systemctl is-active "+pgUnit+"; pgrep -x postgres || echo 'no postgres'; "+pgBin+"/pg_isready -h "+lab.Address(0)+" -t 3; true"); !strings.Contains(got, "inactive") || !strings.Contains(got, "no postgres") || !strings.Contains(got, "no response") {
		t.Fatalf("pg1 after a reboot of a fenced old primary:\n%s", got)
	}
	// The check finds no second primary (its later steps fail: pg2 has no
	// standby yet).
	if out, _ := h.run("run", "pg-ha/check", "-p", "primary=pg2", "-p", "standby=pg1", "-p", "layout=debian"); !strings.Contains(out, "] ok           The standby does not accept writes (no second primary), or is the primary [pg1]") || strings.Contains(out, "TWO PRIMARIES") {
		t.Errorf("check after the fenced pg1 rebooted:\n%s", out)
	}

	// 8. add-standby judges the node the same way: a PostgreSQL started by
	// hand as a primary is refused; then the node becomes a standby and its
	// unit is unmasked.
	add := []string{"run", "pg-ha/add-standby", "-p", "primary=pg2", "-p", "standby=pg1", "-p", "layout=debian", "-p", "discard_standby_data=true"}
	h.sh("pg1", "cd / && runuser -u postgres -- "+pgBin+"/pg_ctl start -w -s -D "+pgData+" -o '-c config_file=/etc/postgresql/15/main/postgresql.conf' -l /var/log/postgresql/by-hand.log")
	h.refused("a running primary: a live postmaster (PID", add...)
	h.sh("pg1", "cd / && runuser -u postgres -- "+pgBin+"/pg_ctl stop -w -s -m fast -D "+pgData)
	h.ok(add...)
	if got := h.sh("pg1", "systemctl is-enabled "+pgUnit+"; true"); got == "masked" {
		t.Errorf("add-standby left pg1's unit masked")
	}

	// new-orchestrator: the old stand-in stopped and disabled, but a copy
	// started by hand with the unit's command line serves the API.
	h.env = append(h.env, "RUNBOOK_DATABASE_PASSWORD=not-used-by-a-refused-run")
	h.sh("orch", "systemctl stop inmanta-server && systemctl disable inmanta-server")
	// As the server's user, against pg2 (the primary: pg1 is its standby).
	h.sh("orch", "setsid runuser -u inmanta -- env INMANTA_DATABASE_HOST="+lab.Address(1)+" /usr/local/bin/runbook lab standin --version "+lab.DefaultStandinVersion+" >/dev/null 2>&1 < /dev/null & "+
		"for i in $(seq 100); do ss -Hltn 'sport = :8888' | grep -q . && exit 0; sleep 0.1; done; exit 1")
	h.refused("the server's program /usr/local/bin/runbook runs (PID", "run", "orchestrator/new-orchestrator", "-p", "old_orchestrator=orch", "-p", "new_orchestrator=pg2", "-p", "database_host=pg2")
	out, _ = h.run("run", "orchestrator/new-orchestrator", "-p", "old_orchestrator=orch", "-p", "new_orchestrator=pg2", "-p", "database_host=pg2")
	if !strings.Contains(out, "something listens on port 8888") {
		t.Errorf("the refusal does not name the listener:\n%s", out)
	}
	h.sh("orch", "pkill -f -x '/usr/local/bin/runbook lab standin --version "+lab.DefaultStandinVersion+"'; true")

	// 9. The other way round, with a stale observation: pg1 (now the
	// standby) is to be promoted while pg2 is powered off. The run dies
	// at the confirmation, having recorded pg2 as down. pg2 boots and its
	// PostgreSQL starts as a primary: the resume is refused. Stopped by
	// hand, the resume goes on: the old primary is observed again after
	// the confirmation, found reachable and fenced, not taken as down.
	if err := l.Fault(context.Background(), "pg2", lab.FaultKill); err != nil {
		t.Fatal(err)
	}
	back := []string{"run", "pg-ha/promote-standby", "-p", "standby=pg1", "-p", "old_primary=pg2", "-p", "layout=debian", "--yes"}
	crash := append(append([]string{}, h.env...), "RUNBOOK_CRASHPOINT=intent:5")
	if out, errOut, err := runbook(t, crash, append([]string{back[0], "-i", l.InventoryPath()}, back[1:]...)...); err == nil {
		t.Fatalf("the run was not killed at the confirmation:\n%s%s", out, errOut)
	}
	id := latestRun(t)
	if err := l.Fault(context.Background(), "pg2", lab.FaultStart); err != nil {
		t.Fatal(err)
	}
	h.sh("pg2", "for i in $(seq 150); do systemctl is-active -q "+pgUnit+" && exit 0; sleep 0.2; done; exit 1")
	if out, errOut, err := runbook(t, h.env, "resume", id, "--yes"); err == nil || !strings.Contains(out+errOut, "refused") {
		t.Fatalf("a resume with the old primary back as a primary was not refused:\n%s%s", out, errOut)
	}
	h.sh("pg2", "systemctl stop "+pgUnit)
	if out, errOut, err := runbook(t, h.env, "resume", id, "--yes"); err != nil || !strings.Contains(out, "changed      Fence the old primary") {
		t.Fatalf("the resume did not fence the old primary it had recorded as down: %v\n%s%s", err, out, errOut)
	}
	if got := h.sh("pg2", "systemctl is-enabled "+pgUnit+"; true"); got != "masked" {
		t.Errorf("pg2's unit is %q after the promotion of pg1, want masked", got)
	}
}

// startAgent starts a real ssh-agent on this machine holding n new keys
// that no lab host knows; it is stopped by its PID when the test ends.
func startAgent(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatalf("ssh-agent: %v", err)
	}
	t.Cleanup(func() {
		_ = agent.Process.Signal(syscall.SIGTERM)
		_ = agent.Wait()
	})
	env := append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	deadline := time.Now().Add(5 * time.Second)
	for {
		// ssh-add -l exits 1 for an empty agent, 2 when it cannot connect.
		l := exec.Command("ssh-add", "-l")
		l.Env = env
		err := l.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh-agent does not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range n {
		k := filepath.Join(dir, "key"+strconv.Itoa(i))
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, out)
		}
		add := exec.Command("ssh-add", "-q", k)
		add.Env = env
		if out, err := add.CombinedOutput(); err != nil {
			t.Fatalf("ssh-add: %v %s", err, out)
		}
	}
	return sock
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// latestRun returns the id of the newest journaled run.
func latestRun(t *testing.T) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(stateDir, "runbook", "runs", "*.journal"))
	if len(files) == 0 {
		t.Fatal("no journal")
	}
	mtime := func(f string) time.Time {
		st, err := os.Stat(f)
		if err != nil {
			return time.Time{}
		}
		return st.ModTime()
	}
	sort.Slice(files, func(i, j int) bool { return mtime(files[i]).Before(mtime(files[j])) })
	return strings.TrimSuffix(filepath.Base(files[len(files)-1]), ".journal")
}
