package steps_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/testnet"
	"github.com/runbook-dev/runbook/internal/testpg"
	"github.com/runbook-dev/runbook/internal/testsshd"
	"github.com/runbook-dev/runbook/steps"
)

func sqlPlaybook(port int, body string) string {
	return fmt.Sprintf(`version: 1
name: sql
params:
  value: {type: string, default: x}
  table: {type: string, default: t}
secrets:
  pw: {env: PW}
x-db: &db
  address: 127.0.0.1
  port: %d
  password: ${{ secrets.pw }}
  sslmode: disable
%s`, port, body)
}

// sqlServer starts a PostgreSQL server with the settings given and
// returns it and the playbook of body reaching it (sqlPlaybook).
func sqlServer(t *testing.T, body string, settings ...string) (*testpg.Server, string) {
	pg := testpg.Start(t, settings...)
	return pg, sqlPlaybook(pg.Port, body)
}

var pgSecret = map[string]string{"pw": testpg.Password}

func TestSQLBoundArgsAndIdentifiers(t *testing.T) {
	pg, src := sqlServer(t, `steps:
  - id: create
    sql:
      <<: *db
      exec: CREATE TABLE ${{ params.table }} (v text)
  - id: insert
    sql:
      <<: *db
      exec: INSERT INTO ${{ params.table }} (v) VALUES ($1), ($2)
      args: ["${{ params.value }}", "second"]
    assert: result.rows_affected == 2
  - id: read
    sql:
      <<: *db
      query: SELECT v, length(v) AS n, now() > '2000-01-01' AS recent FROM ${{ params.table }} ORDER BY v
      read_only: true
    assert: result.rows[0].v == params.value && result.rows[0].n == len(params.value) && result.rows[0].recent
`)
	evil := `it's'); DROP TABLE "odd""name"; --`
	ev, err := runPlaybook(t, src, runOpts{params: map[string]string{"value": evil, "table": `odd"name`}, secrets: pgSecret})
	if err != nil {
		t.Fatal(err)
	}
	if st := ev.end("read").Status; st != engine.StatusOK {
		t.Errorf("read: %s", st)
	}
	if got := pg.Psql(t, `SELECT count(*) FROM "odd""name"`); strings.TrimSpace(got) != "2" {
		t.Errorf("table after run: %q", got)
	}
}

func TestSQLUnlessMakesItIdempotent(t *testing.T) {
	pg, src := sqlServer(t, `steps:
  - id: slot
    sql:
      <<: *db
      exec: SELECT pg_create_physical_replication_slot($1)
      args: [replication]
      unless: SELECT true FROM pg_replication_slots WHERE slot_name = $1
`, "wal_level=replica", "max_replication_slots=4")
	ev, err := runPlaybook(t, src, runOpts{secrets: pgSecret})
	if err != nil || ev.end("slot").Status != engine.StatusChanged {
		t.Fatalf("first run: %v %s", err, ev.end("slot").Status)
	}
	ev, err = runPlaybook(t, src, runOpts{secrets: pgSecret})
	if err != nil || ev.end("slot").Status != engine.StatusSkipped {
		t.Fatalf("second run: %v %s", err, ev.end("slot").Status)
	}
	if got := pg.Psql(t, "SELECT count(*) FROM pg_replication_slots"); strings.TrimSpace(got) != "1" {
		t.Errorf("slots: %q", got)
	}
}

// TestSQLProbeIsReadOnly: a guard's SQL runs in a read-only transaction, so
// a probe that would write is refused by PostgreSQL itself.
func TestSQLProbeIsReadOnly(t *testing.T) {
	pg := testpg.Start(t)
	pg.Psql(t, "CREATE TABLE t (v int)")
	src := sqlPlaybook(pg.Port, `require:
  - name: probing must not write
    sql:
      <<: *db
      query: INSERT INTO t VALUES (1) RETURNING v
    assert: result.ok
steps:
  - sql:
      <<: *db
      query: SELECT 1 AS one
      read_only: true
`)
	_, err := runPlaybook(t, src, runOpts{secrets: pgSecret})
	var ge *engine.GuardError
	if !errors.As(err, &ge) || !strings.Contains(err.Error(), "sqlstate: \"25006\"") {
		t.Fatalf("err = %v, want the guard refused with SQLSTATE 25006 (read-only transaction)", err)
	}
	if got := pg.Psql(t, "SELECT count(*) FROM t"); strings.TrimSpace(got) != "0" {
		t.Errorf("the probe wrote: %q rows", got)
	}
}

// TestSQLWarmStandbyRefuses: a warm standby (hot_standby = off) refuses
// every connection with SQLSTATE 57P03, and runbook says so.
func TestSQLWarmStandbyRefuses(t *testing.T) {
	primary := testpg.Start(t, "wal_level=replica")
	standby := testpg.StartStandby(t, primary, "hot_standby=off")
	probe := sqlPlaybook(standby.Port, `require:
  - name: the standby refuses connections
    sql:
      <<: *db
      query: SELECT 1 AS one
    assert: "!result.ok && result.sqlstate == '57P03'"
steps:
  - id: direct
    sql:
      <<: *db
      query: SELECT pg_is_in_recovery() AS r
      read_only: true
`)
	_, err := runPlaybook(t, probe, runOpts{secrets: pgSecret})
	var se *steps.StandbyError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "warm standby with hot_standby = off") {
		t.Fatalf("err = %v, want the StandbyError of the step after the guard passed", err)
	}
}

func TestSQLPasswordNeverInErrors(t *testing.T) {
	_, src := sqlServer(t, `steps:
  - id: q
    sql:
      <<: *db
      query: SELECT 1 AS one
      read_only: true
`)
	const wrong = "wrong-password-7c1e"
	ev, err := runPlaybook(t, src, runOpts{secrets: map[string]string{"pw": wrong}})
	if err == nil {
		t.Fatal("a wrong password connected")
	}
	if !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("err = %v", err)
	}
	for _, e := range ev.all {
		if strings.Contains(e.Message, wrong) {
			t.Errorf("the password is in an event: %s", e.Message)
		}
	}
	if strings.Contains(err.Error(), wrong) {
		t.Errorf("the password is in the error: %v", err)
	}
}

// TestSQLThroughSSH reaches PostgreSQL through the host's SSH connection.
func TestSQLThroughSSH(t *testing.T) {
	sshd := testsshd.Start(t)
	_, src := sqlServer(t, `steps:
  - id: q
    host: db
    sql:
      <<: *db
      via_ssh: true
      query: SELECT inet_client_addr()::text AS client, current_user AS who
      read_only: true
    assert: result.rows[0].who == "postgres"
`)
	ev, err := runPlaybook(t, src, runOpts{secrets: pgSecret, inv: sshd.Inventory("db")})
	if err != nil {
		t.Fatal(err)
	}
	if ev.end("q").Status != engine.StatusOK {
		t.Errorf("status %s", ev.end("q").Status)
	}
}

// TestSQLScramPassword sets a role's password as a SCRAM-SHA-256 verifier
// computed by runbook (scram_sha256, inserted with literal()), then logs in
// with the password: PostgreSQL accepts the verifier's format, and the
// plain text never reached the server. scram_verify recognises it.
func TestSQLScramPassword(t *testing.T) {
	pg, src := sqlServer(t, `secrets:
  role_pw: {env: ROLE_PW}
steps:
  - id: create
    sql:
      <<: *db
      exec: CREATE ROLE ${{ params.table }} LOGIN PASSWORD ${{ literal(scram_sha256(secrets.role_pw)) }}
  - id: stored
    sql:
      <<: *db
      query: SELECT rolpassword FROM pg_authid WHERE rolname = $1
      args: ["${{ params.table }}"]
      read_only: true
    assert: scram_verify(result.rows[0].rolpassword, secrets.role_pw) && !scram_verify(result.rows[0].rolpassword, "other")
  - id: login
    sql:
      address: 127.0.0.1
      port: PORT
      sslmode: disable
      user: ${{ params.table }}
      password: ${{ secrets.role_pw }}
      query: SELECT current_user AS who
      read_only: true
    assert: result.rows[0].who == params.table
`)
	src = strings.Replace(src, "secrets:\n  pw: {env: PW}\n", "", 1)
	src = strings.Replace(src, "secrets:\n  role_pw: {env: ROLE_PW}\n", "secrets:\n  pw: {env: PW}\n  role_pw: {env: ROLE_PW}\n", 1)
	src = strings.Replace(src, "port: PORT", "port: "+strconv.Itoa(pg.Port), 1)
	const rolePw = "role pw with 'quotes' and \\ backslash"
	ev, err := runPlaybook(t, src, runOpts{params: map[string]string{"table": "app_user"}, secrets: map[string]string{"pw": testpg.Password, "role_pw": rolePw}})
	if err != nil {
		t.Fatal(err)
	}
	if ev.end("login").Status != engine.StatusOK {
		t.Fatalf("login: %s %s", ev.end("login").Status, ev.end("login").Message)
	}
	if got := pg.Psql(t, "SELECT rolpassword LIKE 'SCRAM-SHA-256$4096:%' FROM pg_authid WHERE rolname = 'app_user'"); strings.TrimSpace(got) != "t" {
		t.Errorf("stored password is not a SCRAM verifier: %q", got)
	}
	for _, e := range ev.all {
		if strings.Contains(e.Message, "role pw") || strings.Contains(e.Message, "SCRAM-SHA-256$") {
			t.Errorf("the password or its verifier is in an event: %s", e.Message)
		}
	}
}

// TestSQLAnswered: result.answered says whether anything lives at the
// server's address: a server that replies (a wrong password, a warm
// standby's 57P03) or a port that accepts and says nothing (a hung server)
// answered; a refused or silent port did not.
func TestSQLAnswered(t *testing.T) {
	primary := testpg.Start(t, "wal_level=replica")
	standby := testpg.StartStandby(t, primary, "hot_standby=off")
	port := func(addr string) int {
		_, p, _ := strings.Cut(addr, ":")
		n, _ := strconv.Atoi(p)
		return n
	}
	cases := []struct {
		name string
		port int
		want bool
	}{
		{"wrong password", primary.Port, true},
		{"warm standby", standby.Port, true},
		{"hung", port(testnet.HungAddr(t)), true},
		{"refused", port(testnet.ClosedAddr(t)), false},
		{"silent", port(testnet.SilentAddr(t)), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := fmt.Sprintf(`version: 1
name: answered
require:
  - name: answered is %[2]v
    sql:
      address: 127.0.0.1
      port: %[1]d
      password: not the password
      sslmode: disable
      connect_timeout: 1s
      query: SELECT 1 AS one
    assert: '!result.ok && result.answered == %[2]v'
steps:
  - ssh-exec: {command: "true"}
`, c.port, c.want)
			if _, err := runPlaybook(t, src, runOpts{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSQLShuttingDownIsNotAStandby: SQLSTATE 57P03 has several reasons;
// a server in a smart shutdown says it is shutting down, which runbook
// reports as such, not as a warm standby.
func TestSQLShuttingDownIsNotAStandby(t *testing.T) {
	pg := testpg.Start(t)
	hold := exec.Command("/usr/bin/psql", "-X", "-h", pg.Socket, "-p", strconv.Itoa(pg.Port), "-U", "postgres", "-d", "postgres", "-c", "SELECT pg_sleep(30)")
	hold.Env = append(os.Environ(), "PGPASSWORD="+testpg.Password)
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hold.Process.Kill(); _ = hold.Wait() })
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(pg.Psql(t, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"), "1"); {
		if time.Now().After(deadline) {
			t.Fatal("the holding session did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := pg.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	src := sqlPlaybook(pg.Port, `steps:
  - id: direct
    retries: 20
    retry_delay: 50ms
    sql:
      <<: *db
      query: SELECT 1 AS one
      read_only: true
    assert: "false"
`)
	_, err := runPlaybook(t, src, runOpts{secrets: pgSecret})
	var na *steps.NotAcceptingError
	var se *steps.StandbyError
	if !errors.As(err, &na) || errors.As(err, &se) || !strings.Contains(err.Error(), "the database system is shutting down") {
		t.Fatalf("err = %v, want a NotAcceptingError saying the server shuts down", err)
	}
}

// TestSQLPortExpression: the port may be an expression (an int param, or a
// string such as an inventory var written in quotes), also for the socket
// path; a value that is not a port is an error naming the expression.
func TestSQLPortExpression(t *testing.T) {
	pg := testpg.Start(t)
	src := `version: 1
name: sql-port
params:
  port: {type: int, default: 1}
  text_port: {type: string, default: "1"}
  socket: {type: string}
steps:
  - id: tcp
    sql:
      address: 127.0.0.1
      port: ${{ params.port }}
      password: ${{ secrets.pw }}
      sslmode: disable
      query: SELECT current_setting('port') AS port
      read_only: true
    assert: result.rows[0].port == string(params.port)
  - id: socket
    sql:
      address: ${{ params.socket }}
      port: ${{ params.text_port }}
      query: SELECT current_setting('port') AS port
      read_only: true
    assert: result.rows[0].port == params.text_port
secrets:
  pw: {env: PW}
`
	p := strconv.Itoa(pg.Port)
	ev, err := runPlaybook(t, src, runOpts{params: map[string]string{"port": p, "text_port": p, "socket": pg.Socket}, secrets: pgSecret})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"tcp", "socket"} {
		if st := ev.end(id).Status; st != engine.StatusOK {
			t.Errorf("%s: %s %s", id, st, ev.end(id).Message)
		}
	}
	_, err = runPlaybook(t, src, runOpts{params: map[string]string{"port": p, "text_port": "54x", "socket": pg.Socket}, secrets: pgSecret})
	if err == nil || !strings.Contains(err.Error(), `${{ params.text_port }}: "54x" is not a port number`) {
		t.Errorf("a port that is not a number: %v", err)
	}
}
