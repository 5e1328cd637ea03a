package playbooks_test

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/internal/testpg"
	"github.com/runbook-dev/runbook/internal/testsshd"
)

// lookCommands returns, as bundled, pg-ha/promote-standby's guard that
// begins the standby's look at the old primary's address, shared/promote's
// command that ends it and promotes, and the look's functions
// (shared/look.vars.yaml), with the directory the look keeps its record
// in moved from the user's home directory to base.
func lookCommands(t *testing.T, base string) (guard, promote, functions string) {
	t.Helper()
	type sshExec struct {
		SSHExec struct {
			Command string `yaml:"command"`
		} `yaml:"ssh-exec"`
	}
	procedure := bundled[struct {
		Require []struct {
			Name    string `yaml:"name"`
			sshExec `yaml:",inline"`
		} `yaml:"require"`
	}](t, "pg-ha/promote-standby")
	for _, g := range procedure.Require {
		if strings.HasPrefix(g.Name, "no PostgreSQL answers at the old primary's address, seen from the standby") {
			guard = g.SSHExec.Command
		}
	}
	piece := bundled[struct {
		Steps []struct {
			ID      string `yaml:"id"`
			sshExec `yaml:",inline"`
		} `yaml:"steps"`
	}](t, "shared/promote")
	for _, s := range piece.Steps {
		if s.ID == "promote" {
			promote = s.SSHExec.Command
		}
	}
	vars := bundled[struct {
		Vars struct {
			OldLook string `yaml:"old_look"`
		} `yaml:"vars"`
	}](t, "shared/look.vars.yaml")
	functions = vars.Vars.OldLook
	for what, s := range map[string]string{"promote-standby's guard": guard, "shared/promote's command": promote} {
		if !strings.Contains(s, `"$(look_home)"`) {
			t.Fatalf("%s does not keep the look's record in the user's home directory (look_home):\n%s", what, s)
		}
	}
	if !strings.Contains(functions, "look_held()") {
		t.Fatalf("shared/look.vars.yaml: no look_held function")
	}
	return strings.ReplaceAll(guard, `"$(look_home)"`, base), strings.ReplaceAll(promote, `"$(look_home)"`, base), functions
}

// TestLookKeptUpFromGuardToPromotion runs the standby's look at the old
// primary's address as pg-ha/promote-standby and shared/promote run it,
// on real PostgreSQL 15 servers: the old primary p, its standby q, p's
// address 127.0.0.1 and its port. With p stopped the guard finds nothing
// answering and the standby goes on looking; then
//   - p started and stopped again while the standby looks: the promotion
//     refuses, naming the answer, though nothing answers any more, and q
//     stays in recovery (one look made right before the promotion sees
//     nothing);
//   - the looking stopped for longer than a look (its processes paused),
//     or killed: the promotion does not go by its record and looks
//     afresh, and refuses since p answers by then;
//   - a look the caller says it did not keep up (switchover's): the
//     promotion ends it, unread, and looks afresh;
//   - kept up without a break: the promotion goes by it at once, says so,
//     promotes q, and leaves neither the looking process nor its record.
//
// With p running, the guard finds it and begins no look.
func TestLookKeptUpFromGuardToPromotion(t *testing.T) {
	p := testpg.Start(t, "wal_level=replica", "max_wal_senders=5")
	q := testpg.StartStandby(t, p)
	base := t.TempDir()
	chownPostgres(t, base)
	guard, promote, functions := lookCommands(t, base)
	t.Cleanup(func() { _ = exec.Command("pkill", "-f", "runbook-look "+base+"/").Run() })
	env := append(os.Environ(), "BIN="+testpg.Bin, "DATA="+q.Data, "OLD=127.0.0.1", "PORT="+strconv.Itoa(p.Port), "OLD_LOOK="+functions, "KEPT=true")
	run := func(command string) (string, int) {
		t.Helper()
		cmd := exec.Command("sh", "-c", command)
		cmd.Env = env
		return statusAsPostgres(t, cmd)
	}
	record := func() string {
		t.Helper()
		m, _ := filepath.Glob(filepath.Join(base, ".runbook-look.*"))
		if len(m) > 1 {
			t.Fatalf("more than one record of a look: %v", m)
		}
		if len(m) == 0 {
			return ""
		}
		return m[0]
	}
	// begin runs the guard with p stopped: no response, and a look goes
	// on; it returns the looking process's PID.
	begin := func() int {
		t.Helper()
		if out, code := run(guard); code != 2 || !strings.Contains(out, "no response") {
			t.Fatalf("the guard with the old primary stopped: exit %d, want 2\n%s", code, out)
		}
		for i := 0; ; i++ {
			if b, err := os.ReadFile(filepath.Join(record(), "pid")); err == nil && len(b) > 0 {
				pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
				if err != nil {
					t.Fatalf("the look's pid file: %q", b)
				}
				return pid
			}
			if i == 100 {
				t.Fatal("the guard began no look that goes on (no pid in its record within 5 s)")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	inRecovery := func(what string) {
		t.Helper()
		if _, err := os.Stat(filepath.Join(q.Data, "standby.signal")); err != nil {
			t.Fatalf("%s: q left recovery (%v)", what, err)
		}
	}
	oldPrimary := []string{"start", "-w", "-t", "60", "-l", filepath.Join(p.Dir, "again.log"),
		"-o", "-p " + strconv.Itoa(p.Port) + " -k " + p.Socket + " -c listen_addresses=127.0.0.1"}
	startOld := func() {
		t.Helper()
		if out, err := pgCtl(t, p.Data, oldPrimary...); err != nil {
			t.Fatalf("starting the old primary again: %v\n%s", err, out)
		}
	}
	stopOld := func() {
		t.Helper()
		if out, err := pgCtl(t, p.Data, "stop", "-w", "-m", "fast"); err != nil {
			t.Fatalf("stopping the old primary: %v\n%s", err, out)
		}
	}

	// The old primary running: the guard sees it and begins no look.
	if out, code := run(guard); code != 0 || !strings.Contains(out, "accepting connections") || record() != "" {
		t.Fatalf("the guard with the old primary running: exit %d, record %q\n%s", code, record(), out)
	}
	stop(t, p)
	t.Cleanup(func() { _, _ = pgCtl(t, p.Data, "stop", "-m", "immediate") })

	// 1. p answers while the standby looks, then is gone again.
	begin()
	startOld()
	for i := 0; ; i++ {
		if _, err := os.Stat(filepath.Join(record(), "answered")); err == nil {
			break
		}
		if i == 200 {
			t.Fatal("the look did not record the old primary answering within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopOld()
	out, code := run(promote)
	if code == 0 || !strings.Contains(out, "a PostgreSQL answered at 127.0.0.1 port "+strconv.Itoa(p.Port)+" while the standby looked") || !strings.Contains(out, "accepting connections") || !strings.Contains(out, "not promoting") {
		t.Fatalf("the promotion after the old primary answered while the standby looked: exit %d\n%s", code, out)
	}
	inRecovery("after an answer while the standby looked")
	if r := record(); r != "" {
		t.Errorf("the refusal left the look's record %s", r)
	}

	// 1b. p starts answering right before the promotion, before any
	// look of the record saw it: the look made at the promotion does.
	begin()
	startOld()
	out, code = run(promote)
	if code == 0 || !strings.Contains(out, "not promoting") {
		t.Fatalf("the promotion right after the old primary started: exit %d\n%s", code, out)
	}
	inRecovery("the old primary answering right before the promotion")
	stopOld()

	// 1c. The looking stalled for less than one look may take (a paused
	// standby), the old primary answering meanwhile and still: the
	// record has no break to refuse, the look made at the promotion
	// refuses.
	pid := begin()
	if err := syscall.Kill(-pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	startOld()
	out, code = run(promote)
	// On a loaded machine starting p may outlast a look's 4 s: then the
	// record has a break and a full look refuses, as it should.
	if code == 0 || !strings.Contains(out, "a PostgreSQL answers at 127.0.0.1 port "+strconv.Itoa(p.Port)+" now (accepting connections)") && !strings.Contains(out, "without beginning a look") {
		t.Fatalf("the promotion after a short stall of the looking, the old primary running: exit %d\n%s", code, out)
	}
	inRecovery("a short stall")
	stopOld()

	// 1d. The looks ended at once (a reset: the machine up, nothing
	// listening), then the server answers, but slowly (here through a
	// proxy that waits 0.4 s before passing the connection on: a name
	// slow to resolve, a slow link, TLS's round trips): the last look's
	// 0.25 s pass without an answer, which after looks that ended at
	// once is a change, and a full look refuses.
	slow, err := testsshd.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	env[len(env)-3] = "PORT=" + strconv.Itoa(slow)
	pid = begin()
	if err := syscall.Kill(-pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	startOld()
	stopProxy := slowProxy(t, slow, p.Port, 400*time.Millisecond)
	out, code = run(promote)
	// As in 1c, a break under load also ends in the full look.
	if code == 0 || !strings.Contains(out, "did not end within 0.25 s where the looks before it ended at once") && !strings.Contains(out, "without beginning a look") || !strings.Contains(out, "a PostgreSQL answers at 127.0.0.1 port "+strconv.Itoa(slow)+" again (") {
		t.Fatalf("the promotion with the old primary answering slowly after looks that ended at once: exit %d\n%s", code, out)
	}
	inRecovery("a slow answer")
	stopProxy()
	stopOld()
	env[len(env)-3] = "PORT=" + strconv.Itoa(p.Port)

	// 2. The looking paused for longer than a look; 3. killed. Each time
	// the promotion looks afresh and finds p, started meanwhile.
	for _, c := range []struct {
		what   string
		signal func(pid int)
		want   string
	}{
		{"paused", func(pid int) {
			if err := syscall.Kill(-pid, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			// The break being tested: longer than one look may take. The
			// promotion's look_held ends the paused process.
			time.Sleep(4500 * time.Millisecond)
		}, "without beginning a look"},
		{"killed", func(pid int) {
			if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}, "no look at 127.0.0.1 port " + strconv.Itoa(p.Port) + " kept up from the guards"},
	} {
		pid := begin()
		c.signal(pid)
		startOld()
		out, code := run(promote)
		if code == 0 || !strings.Contains(out, "a PostgreSQL answers at 127.0.0.1 port "+strconv.Itoa(p.Port)+" again (") || !strings.Contains(out, "not promoting") {
			t.Fatalf("%s: the promotion with the old primary running: exit %d\n%s", c.what, code, out)
		}
		inRecovery(c.what)
		if r := record(); r != "" {
			t.Errorf("%s: the promotion left the look's record %s", c.what, r)
		}
		stopOld()
		// The reason it looked afresh is not in a refusal's output; the
		// look alone, without pg_ctl promote, says it.
		pid = begin()
		c.signal(pid)
		held, code := run(functions + "\nlook_held " + base + " 127.0.0.1 " + strconv.Itoa(p.Port) + " " + testpg.Bin)
		if code != 2 || !strings.Contains(held, c.want) {
			t.Errorf("%s: look_held: exit %d, want 2 and %q\n%s", c.what, code, c.want, held)
		}
	}

	// 3b. A record someone else made at the record's path (on Debian
	// /run/postgresql is writable by the group postgres), with a live
	// process named as the looking and fresh times: not read, and the
	// promotion looks afresh. As root only: the forger must be another
	// user than postgres.
	if os.Geteuid() == 0 {
		where, _ := run(functions + "\nlook_dir " + base + " 127.0.0.1 " + strconv.Itoa(p.Port))
		forger := exec.Command("sh", "-c", "sleep 60; true", "runbook-look", where, "x")
		if err := forger.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = forger.Process.Kill(); _ = forger.Wait() })
		now := strconv.FormatInt(time.Now().Unix(), 10)
		if err := os.Mkdir(where, 0o700); err != nil {
			t.Fatal(err)
		}
		for name, text := range map[string]string{"since": now, "looks": now, "pid": strconv.Itoa(forger.Process.Pid)} {
			if err := os.WriteFile(filepath.Join(where, name), []byte(text+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		startOld()
		out, code := run(promote)
		if code == 0 || !strings.Contains(out, "a PostgreSQL answers at 127.0.0.1 port "+strconv.Itoa(p.Port)+" again (") || !strings.Contains(out, "not promoting") || !strings.Contains(out, "was not made by postgres alone: not read") {
			t.Fatalf("the promotion with a record another user made, the old primary running: exit %d\n%s", code, out)
		}
		inRecovery("a forged record")
		stopOld()
		_ = os.RemoveAll(where)
	}

	// 4. A look the caller did not keep up (pg-ha/switchover's promotion,
	// after an earlier promote-standby run's guard began one): ended,
	// not read; the promotion looks afresh.
	pid = begin()
	startOld()
	env[len(env)-1] = "KEPT=false"
	out, code = run(promote)
	env[len(env)-1] = "KEPT=true"
	if code == 0 || !strings.Contains(out, "a PostgreSQL answers at 127.0.0.1 port "+strconv.Itoa(p.Port)+" again (") || !strings.Contains(out, "not promoting") {
		t.Fatalf("the promotion that keeps no look, the old primary running: exit %d\n%s", code, out)
	}
	inRecovery("a look not kept up")
	if r := record(); r != "" {
		t.Errorf("the promotion that keeps no look left the earlier look's record %s", r)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("the earlier look's process %d still runs", pid)
	}
	stopOld()

	// 5. Kept up: the promotion goes by it.
	pid = begin()
	out, code = run(promote)
	if code != 0 || !strings.Contains(out, "looked from the standby right before pg_ctl promote: ") || !strings.Contains(out, "the standby looked at 127.0.0.1 port "+strconv.Itoa(p.Port)+" without a break since its guard's look began") || !strings.Contains(out, "nothing answered") {
		t.Fatalf("the promotion with the look kept up: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(q.Data, "standby.signal")); !os.IsNotExist(err) {
		t.Errorf("q is still a standby after the promotion (%v)", err)
	}
	if r := record(); r != "" {
		t.Errorf("the promotion left the look's record %s", r)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("the looking process %d still runs after the promotion", pid)
	}
}

// slowProxy listens at 127.0.0.1:port and passes each connection on to
// 127.0.0.1:to after delay; the returned function stops it.
func slowProxy(t *testing.T, port, to int, delay time.Duration) func() {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				time.Sleep(delay)
				s, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(to))
				if err != nil {
					return
				}
				defer s.Close()
				// Either side closing ends both.
				go func() { _, _ = io.Copy(s, c); _ = s.Close() }()
				_, _ = io.Copy(c, s)
			}()
		}
	}()
	stop := func() { _ = ln.Close(); wg.Wait() }
	t.Cleanup(func() { _ = ln.Close() })
	return stop
}
