package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/internal/testkit"
	"github.com/runbook-dev/runbook/internal/testpg"
	"github.com/runbook-dev/runbook/internal/testsshd"
)

// slowStep runs a command on pg1 that logs its start, works for a while
// and marks what it made; creates: makes it idempotent.
const slowStep = `version: 1
name: faults/slow
params:
  dir: {type: string}
steps:
  - id: slow
    host: pg1
    ssh-exec:
      command: echo start >> ${{ params.dir }}/log; sleep 3; echo done >> ${{ params.dir }}/log; touch ${{ params.dir }}/made
      creates: ${{ params.dir }}/made
`

var resumeID = regexp.MustCompile(`continue with: runbook resume (\S+)`)

// sessionPIDs returns the sshd processes that serve the connections of a
// test's sshd: the descendants of its listener that are sshd (a monitor
// and its session process, or one process for both), not the commands
// and subsystems they run.
func sessionPIDs(t *testing.T, s *testsshd.Server) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Dir, "sshd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	var walk func(pid string)
	walk = func(pid string) {
		out, _ := exec.Command("pgrep", "-P", pid).Output()
		for _, c := range strings.Fields(string(out)) {
			comm, _ := os.ReadFile("/proc/" + c + "/comm")
			if strings.TrimSpace(string(comm)) != "sshd" {
				continue
			}
			if n, err := strconv.Atoi(c); err == nil {
				pids = append(pids, n)
			}
			walk(c)
		}
	}
	walk(strings.TrimSpace(string(b)))
	return pids
}

// startSlow starts `runbook run` of slowStep in the background and waits
// until its command logged its start on the host.
func startSlow(t *testing.T, s *testsshd.Server, dir string, extra ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	inv := writeFile(t, "inventory.yaml", s.Inventory("pg1"))
	pb := writeFile(t, "slow.yaml", slowStep)
	cmd := exec.Command(runbookBin, append([]string{"run", "-i", inv, pb, "-p", "dir=" + dir}, extra...)...)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+stateDir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, _ := os.ReadFile(filepath.Join(dir, "log")); bytes.Contains(b, []byte("start")) {
			return cmd, &out
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("the command did not start on the host:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLostSessionIsInDoubt: the connection of a step dies while its
// command runs (the sshd processes of the session killed); the command
// goes on on the host. The step is in doubt, not failed, and the resume
// waits for the command that outlived the connection instead of starting
// it a second time beside it: the host's log shows one start.
func TestLostSessionIsInDoubt(t *testing.T) {
	s := testsshd.Start(t)
	dir := t.TempDir()
	cmd, out := startSlow(t, s, dir)
	for _, pid := range sessionPIDs(t, s) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}

	if err := cmd.Wait(); err == nil {
		t.Fatalf("the run succeeded with its connection killed:\n%s", out)
	}
	if !strings.Contains(out.String(), "in-doubt") || strings.Contains(out.String(), "] failed") {
		t.Fatalf("the step is not in doubt:\n%s", out)
	}
	m := resumeID.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no resume command:\n%s", out)
	}
	rout, rerr, err := runbook(t, nil, "resume", m[1])
	if err != nil {
		t.Fatalf("resume: %v\n%s%s", err, rout, rerr)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "log"))
	if got := string(log); got != "start\ndone\n" {
		t.Fatalf("the host's log is %q, want one start and one done:\nrun:\n%s\nresume:\n%s%s", got, out, rout, rerr)
	}
}

// TestFrozenHostEndsWithinBound: the host stops answering mid-command (its
// sshd session processes stopped with SIGSTOP, as a frozen VM does). With
// ServerAliveInterval 1 and ServerAliveCountMax 2, the step ends in doubt
// within a few seconds, saying the host stopped answering, instead of
// waiting forever.
func TestFrozenHostEndsWithinBound(t *testing.T) {
	s := testsshd.Start(t)
	dir := t.TempDir()
	conf := writeFile(t, "ssh_config", "Host *\n  ServerAliveInterval 1\n  ServerAliveCountMax 2\n")
	cmd, out := startSlow(t, s, dir, "--ssh-config", conf)
	pids := sessionPIDs(t, s)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	t.Cleanup(func() {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("the run succeeded with its host frozen:\n%s", out)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("the run still waits 30s after the host froze:\n%s", out)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the step ended %s after the host froze; the bound is 2 keepalive intervals of 1s plus one", d)
	}
	if !strings.Contains(out.String(), "the host stopped answering") || !strings.Contains(out.String(), "in-doubt") {
		t.Errorf("the step does not say the host stopped answering, in doubt:\n%s", out)
	}
}

// TestInterruptWhileWaitingForLock: a run waiting for a lock another run
// holds (--wait-lock 5m) stops at Ctrl-C within a second, exit 130,
// having run nothing.
func TestInterruptWhileWaitingForLock(t *testing.T) {
	dir := t.TempDir()
	pb := writeFile(t, "locked.yaml", `version: 1
name: faults/locked
params:
  dir: {type: string}
  who: {type: string}
lock: faults-locked
steps:
  - id: hold
    ssh-exec:
      command: echo ${{ params.who }} >> ${{ params.dir }}/ran; touch ${{ params.dir }}/holding-${{ params.who }}; sleep 30
`)
	start := func(who string, extra ...string) (*exec.Cmd, *testkit.SyncBuffer) {
		cmd := exec.Command(runbookBin, append([]string{"run", pb, "-p", "dir=" + dir, "-p", "who=" + who}, extra...)...)
		cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+stateDir)
		out := &testkit.SyncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, out
	}
	waitFor := func(what string, ok func() bool) {
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	holder, _ := start("a")
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	waitFor("the first run to hold the lock", func() bool { _, err := os.Stat(filepath.Join(dir, "holding-a")); return err == nil })
	waiter, out := start("b", "--wait-lock", "5m")
	waitFor("the second run to wait for the lock", func() bool { return strings.Contains(out.String(), "waiting up to 5m0s") })
	at := time.Now()
	_ = waiter.Process.Signal(syscall.SIGINT)
	err := waiter.Wait()
	if d := time.Since(at); d > time.Second {
		t.Errorf("the waiting run took %s to stop after Ctrl-C", d)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("exit %v, want 130:\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "ran")); string(b) != "a\n" {
		t.Errorf("ran: %q, want only the first run", b)
	}
}

// sqlStep writes a playbook with one slow INSERT on pg1: through the
// server's socket as the postgres OS user over SSH (become), or over TCP.
func sqlStep(t *testing.T, pg *testpg.Server, become bool) string {
	t.Helper()
	route := fmt.Sprintf("    become: postgres\n    sql:\n      address: %s\n      port: %d\n", pg.Socket, pg.Port)
	if !become {
		route = fmt.Sprintf("    sql:\n      address: 127.0.0.1\n      port: %d\n      sslmode: disable\n      password: ${{ secrets.pw }}\n", pg.Port)
	}
	return writeFile(t, "insert.yaml", `version: 1
name: faults/insert
secrets:
  pw: {env: PGPW}
steps:
  - id: insert
    host: pg1
`+route+`      exec: INSERT INTO t SELECT 1 FROM pg_sleep(3)
      unless: SELECT true FROM t
`)
}

// startInsert starts the run of the slow INSERT and waits until the
// statement runs on the server.
func startInsert(t *testing.T, s *testsshd.Server, pg *testpg.Server, become bool) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	pg.Psql(t, "CREATE TABLE t (n int)")
	inv := writeFile(t, "inventory.yaml", s.Inventory("pg1"))
	cmd := exec.Command(runbookBin, "run", "-i", inv, sqlStep(t, pg, become))
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+stateDir, "PGPW="+testpg.Password)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for strings.TrimSpace(pg.Psql(t, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'INSERT INTO t%'")) != "1" {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("the statement did not start:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cmd, &out
}

// TestInterruptCancelsStatementOnServer: Ctrl-C while a statement runs
// through the server's socket as the postgres OS user (become: over SSH)
// cancels it on the server and waits for that: exit 130, no row
// committed, no session left.
func TestInterruptCancelsStatementOnServer(t *testing.T) {
	s := testsshd.Start(t)
	pg := testpg.Start(t)
	cmd, out := startInsert(t, s, pg, true)
	_ = cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("exit %v, want 130:\n%s", err, out)
	}
	if got := strings.TrimSpace(pg.Psql(t, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'INSERT INTO t%'")); got != "0" {
		t.Errorf("%s sessions still run the statement after the run ended", got)
	}
	// Had it gone on, it would have committed by now.
	time.Sleep(3 * time.Second)
	if got := strings.TrimSpace(pg.Psql(t, "SELECT count(*) FROM t")); got != "0" {
		t.Errorf("%s rows committed after Ctrl-C, want none", got)
	}
}

// TestKilledDuringStatementResumesOnce: runbook killed (SIGKILL) while an
// INSERT with unless: runs; the statement goes on and commits. The resume
// finds that session by its application_name (the run and step), waits for
// it to end, and only then checks unless: one row, not two.
func TestKilledDuringStatementResumesOnce(t *testing.T) {
	s := testsshd.Start(t)
	pg := testpg.Start(t)
	cmd, out := startInsert(t, s, pg, false)
	if got := pg.Psql(t, "SELECT application_name FROM pg_stat_activity WHERE query LIKE 'INSERT INTO t%'"); !strings.Contains(got, "step 1 pg1") {
		t.Errorf("the statement's application_name does not name the run's step: %q", got)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	runs, _, _ := runbook(t, nil, "runs")
	var id string
	for _, l := range strings.Split(runs, "\n") {
		if strings.Contains(l, "faults/insert") {
			id = strings.Fields(l)[0]
		}
	}
	if id == "" {
		t.Fatalf("no run of faults/insert in:\n%s\n%s", runs, out)
	}
	rout, rerr, err := runbook(t, []string{"PGPW=" + testpg.Password}, "resume", id)
	if err != nil {
		t.Fatalf("resume: %v\n%s%s", err, rout, rerr)
	}
	if got := strings.TrimSpace(pg.Psql(t, "SELECT count(*) FROM t")); got != "1" {
		t.Fatalf("%s rows after the resume, want 1:\n%s%s", got, rout, rerr)
	}
}
