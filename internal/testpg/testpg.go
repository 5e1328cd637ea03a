// Package testpg starts a real PostgreSQL 15 server for tests: a cluster
// made by initdb in a temporary directory, listening on a loopback port.
package testpg

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/internal/testsshd"
)

// Bin is where Debian installs the PostgreSQL 15 server programs.
const Bin = "/usr/lib/postgresql/15/bin"

// Password is the password of the postgres superuser over TCP.
const Password = "test-superuser-pw"

// Server is a running PostgreSQL.
type Server struct {
	Dir    string
	Data   string
	Port   int
	Socket string
	cmd    *exec.Cmd
}

// Start initialises a cluster and starts it; it stops when the test ends.
// Local (socket) connections are trusted; TCP needs the password.
func Start(t testing.TB, settings ...string) *Server {
	t.Helper()
	return StartPrepared(t, nil, settings...)
}

// StartPrepared is Start with prepare called on the data directory between
// initdb and the first start: to write configuration files that the
// server reads from the start (settings are given on its command line).
func StartPrepared(t testing.TB, prepare func(data string), settings ...string) *Server {
	t.Helper()
	_, err := os.Stat(filepath.Join(Bin, "initdb"))
	testsshd.Require(t, err == nil, "PostgreSQL 15 is not installed (apt-get install postgresql-15)")
	dir := t.TempDir()
	s := &Server{Dir: dir, Data: filepath.Join(dir, "data"), Socket: dir}
	if err := s.chownToPostgres(dir); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.chownToPostgres(pw); err != nil {
		t.Fatal(err)
	}
	if out, err := s.command("initdb", "-D", s.Data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile="+pw, "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	if prepare != nil {
		prepare(s.Data)
	}
	s.start(t, settings...)
	return s
}

// StartStandby makes a warm standby of primary with pg_basebackup -R and
// starts it with the given settings (hot_standby = off refuses every
// connection, SQLSTATE 57P03).
func StartStandby(t testing.TB, primary *Server, settings ...string) *Server {
	t.Helper()
	dir := t.TempDir()
	s := &Server{Dir: dir, Data: filepath.Join(dir, "data"), Socket: dir}
	if err := s.chownToPostgres(dir); err != nil {
		t.Fatal(err)
	}
	if out, err := s.command("pg_basebackup", "-h", primary.Socket, "-p", strconv.Itoa(primary.Port), "-U", "postgres", "-D", s.Data, "-R", "-X", "stream", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("pg_basebackup: %v\n%s", err, out)
	}
	s.start(t, settings...)
	return s
}

func (s *Server) start(t testing.TB, settings ...string) {
	t.Helper()
	// The port is found free and then released for postgres to bind:
	// another process may take it in between, and then postgres exits
	// saying so. A few tries with other ports make that race harmless.
	for try := 1; ; try++ {
		err := s.launch(t, settings)
		if err == nil {
			return
		}
		if !errors.Is(err, testsshd.ErrPortTaken) || try == 5 {
			t.Fatal(err)
		}
	}
}

// launch starts postgres on a free port and waits until it answers. It
// fails with testsshd.ErrPortTaken when postgres exits unable to bind.
func (s *Server) launch(t testing.TB, settings []string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	s.Port = port
	args := []string{"-D", s.Data, "-p", strconv.Itoa(s.Port), "-k", s.Socket, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "shared_buffers=16MB"}
	for _, kv := range settings {
		args = append(args, "-c", kv)
	}
	cmd := s.command("postgres", args...)
	logName := filepath.Join(s.Dir, "postgres.log")
	logf, err := os.Create(logName)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	s.cmd = cmd
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// Fast shutdown of the server this test started.
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
	})
	// Ready when a session runs a query, or a warm standby (hot_standby =
	// off) answers that it is one; until then the server says it is
	// starting up or not yet consistent.
	return testsshd.WaitReady("postgres", s.Port, logName, exited, 50*time.Millisecond, func() error {
		out, err := s.command("psql", "-X", "-A", "-t", "-h", s.Socket, "-p", strconv.Itoa(s.Port), "-U", "postgres", "-d", "postgres", "-c", "SELECT 1").CombinedOutput()
		if err == nil && strings.TrimSpace(string(out)) == "1" || strings.Contains(string(out), "Hot standby mode is disabled") {
			return nil
		}
		return errors.New(strings.TrimSpace(string(out)))
	})
}

// freePort is testsshd.FreePort; a variable so that a test can hand out a
// taken port.
var freePort = testsshd.FreePort

// Psql runs SQL through psql on the socket as postgres and returns its
// output, for test setup and checks that must not go through runbook.
func (s *Server) Psql(t testing.TB, sql string) string {
	t.Helper()
	out, err := s.command("psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", s.Socket, "-p", strconv.Itoa(s.Port), "-U", "postgres", "-d", "postgres", "-c", sql).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", sql, err, out)
	}
	return string(out)
}

// command runs a PostgreSQL program as postgres when this process is root
// (initdb and postgres refuse to run as root). The process is the program
// itself, not a wrapper, so that signals stop the server.
func (s *Server) command(prog string, args ...string) *exec.Cmd {
	path := filepath.Join(Bin, prog)
	if prog == "psql" {
		path = "/usr/bin/psql"
	}
	cmd := exec.Command(path, args...)
	if os.Geteuid() == 0 {
		if uid, gid, err := PostgresIDs(); err == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
			cmd.Dir = s.Dir
			cmd.Env = append(os.Environ(), "HOME="+s.Dir)
		}
	}
	return cmd
}

// PostgresIDs returns the user and group ids of the postgres user, whom
// tests running as root run PostgreSQL's programs as (initdb and postgres
// refuse root); an error when there is no such user.
func PostgresIDs() (uid, gid int, err error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return 0, 0, fmt.Errorf("user postgres: %w", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

func (s *Server) chownToPostgres(path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	uid, gid, err := PostgresIDs()
	if err != nil {
		return err
	}
	// The temporary directory's parents must be traversable by postgres.
	_ = os.Chmod(filepath.Dir(path), 0o755)
	return os.Chown(path, uid, gid)
}

// URL is the connection URL of the postgres superuser over TCP.
func (s *Server) URL() string {
	return fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable", Password, s.Port)
}

// Signal sends sig to the server's postmaster: SIGTERM is a smart
// shutdown, which waits for the sessions open and refuses new ones with
// SQLSTATE 57P03 "the database system is shutting down".
func (s *Server) Signal(sig os.Signal) error { return s.cmd.Process.Signal(sig) }
