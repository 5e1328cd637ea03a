package steps_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/testpg"
	"github.com/runbook-dev/runbook/internal/testsshd"
	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/internal/transport"
	"github.com/runbook-dev/runbook/steps"
)

// An interpolation case puts params.v in one context of one step type and
// says what must come out: what the command received, what PostgreSQL
// parsed, what the file holds, what the server was asked. want returns
// ok false when the value must be refused (the step fails and the run
// stops), never placed.
type interpCase struct {
	name string
	// steps are the playbook's steps; $DIR is the scratch directory, $PORT
	// the HTTP server's, $SOCKET and $PGPORT PostgreSQL's.
	steps string
	// shell marks the cases run over SSH too.
	shell bool
	want  func(v string) (string, bool)
	got   func(f *interpFixture, ev *events) string
}

// interpFixture is what the cases run against: a scratch directory, a
// real PostgreSQL, an HTTP server recording what it is asked.
type interpFixture struct {
	dir   string
	pg    *testpg.Server
	api   *httptest.Server
	mu    sync.Mutex
	asked string
}

// pwned is what the hostile seeds try to create, on disk and in the
// database; it must never exist.
const pwned = "/tmp/runbook-interp-pwned"

func result(ev *events, id, key string) string {
	r := ev.end(id).Result
	s, _ := r[key].(string)
	return s
}

func firstRow(ev *events, id string) map[string]any {
	rows, _ := ev.end(id).Result["rows"].([]any)
	if len(rows) == 0 {
		return nil
	}
	m, _ := rows[0].(map[string]any)
	return m
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func noNUL(v string) bool { return !strings.Contains(v, "\x00") }

// shellOK: any value but one with a NUL byte reaches a command exactly.
func shellOK(wrap func(string) string) func(string) (string, bool) {
	return func(v string) (string, bool) { return wrap(v), noNUL(v) }
}

// heredoc is what cat prints of a here-document body, and false when a
// line of it would end the document.
func heredoc(body string, dash bool) (string, bool) {
	if !noNUL(body) {
		return "", false
	}
	lines := strings.Split(body, "\n")
	for i, l := range lines {
		if dash {
			l = strings.TrimLeft(l, "\t")
			lines[i] = l
		}
		if endsDoc(l) || dropsByte(l) {
			return "", false
		}
	}
	return strings.Join(lines, "\n") + "\n", true
}

// endsDoc: a line that a shell may take as the end of the here-document
// (bash ends one inside $(...) at "EOF)"), which runbook refuses: EOF
// followed by nothing or by a byte that cannot continue a word.
func endsDoc(l string) bool {
	if !strings.HasPrefix(l, "EOF") {
		return false
	}
	if len(l) == 3 {
		return true
	}
	c := l[3]
	return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c >= 0x80)
}

// dropsByte: dash (/bin/sh on Debian) drops a non-ASCII byte that
// follows the start of a here-document's end word at the start of a line,
// so runbook refuses such a value there.
func dropsByte(l string) bool {
	n := 0
	for n < len(l) && n < 3 && l[n] == "EOF"[n] {
		n++
	}
	return n > 0 && n < len(l) && l[n] >= 0x80
}

// sqlText: PostgreSQL takes neither NUL bytes nor invalid UTF-8 in SQL.
func sqlText(v string) bool { return noNUL(v) && utf8.ValidString(v) }

func sqlIdent(v string) bool { return sqlText(v) && v != "" && len(v) <= tmpl.MaxIdentifier }

// clipIdent is an identifier as PostgreSQL keeps it: cut to 63 bytes at
// a character boundary.
func clipIdent(s string) string {
	n := 0
	for n < len(s) {
		_, w := utf8.DecodeRuneInString(s[n:])
		if n+w > tmpl.MaxIdentifier {
			break
		}
		n += w
	}
	return s[:n]
}

func fileLine(v string) bool { return !strings.ContainsAny(v, "\n\r\x00") }

// quotedAlready: a postgresql.conf value in single quotes already, which
// file-patch set refuses (PostgreSQL would read the quotes as part of it).
func quotedAlready(v string) bool {
	t := strings.TrimSpace(v)
	return len(t) >= 2 && t[0] == '\'' && t[len(t)-1] == '\''
}

// iniValue: a value ini readers read back as it is: one line, no blanks
// around it, no ; or # at its start or after a blank, no quote first.
func iniValue(v string) bool {
	return fileLine(v) && strings.TrimFunc(v, func(r rune) bool { return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f }) == v &&
		!strings.HasPrefix(v, ";") && !strings.HasPrefix(v, "#") && !strings.HasPrefix(v, `"`) && !strings.HasPrefix(v, "'") &&
		!strings.Contains(v, " ;") && !strings.Contains(v, " #") && !strings.Contains(v, "\t;") && !strings.Contains(v, "\t#")
}

// readIni reads the value of k in [s] of an ini file with Python's
// configparser, the reader of the orchestrator's database.cfg.
func readIni(path string) string {
	out, err := exec.Command("/usr/bin/python3", "-c", `import configparser, sys
c = configparser.RawConfigParser()
c.read_file(open(sys.argv[1], encoding="utf-8", errors="surrogateescape"))
sys.stdout.buffer.write(c.get("s", "k").encode("utf-8", "surrogateescape"))`, path).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("configparser: %v: %s", err, out)
	}
	return string(out)
}

// shellCase is a case in the command of an ssh-exec step s, run over SSH
// too, whose standard output is what comes out; sshExec is the step's
// body, a flow mapping or the block below ssh-exec:.
func shellCase(name, sshExec string, want func(v string) (string, bool)) interpCase {
	sep := " "
	if strings.HasPrefix(sshExec, "\n") {
		sep = ""
	}
	return interpCase{name: name, shell: true, steps: "\n  - id: s\n    host: ${{ params.host }}\n    ssh-exec:" + sep + sshExec, want: want, got: stdoutOfS}
}

// newFile is a file-patch step s that creates the file name in the
// scratch directory, without a backup, and makes the edit given.
func newFile(name, edit string) string {
	return "\n  - id: s\n    file-patch:\n      path: $DIR/" + name + "\n      create: true\n      backup: false\n      " + edit
}

// stdoutOfS is what step s printed.
func stdoutOfS(_ *interpFixture, ev *events) string { return result(ev, "s", "stdout") }

var interpCases = []interpCase{
	// ssh-exec: the argv a command receives, printed NUL-separated.
	shellCase("shell-word", `{command: "printf '%s\\0' ${{ params.v }}", read_only: true}`,
		shellOK(func(v string) string { return v + "\x00" })),
	shellCase("shell-double-quotes", `{command: "printf '%s\\0' \"pre ${{ params.v }} post\"", read_only: true}`,
		shellOK(func(v string) string { return "pre " + v + " post\x00" })),
	shellCase("shell-single-quotes", `{command: "printf '%s\\0' 'pre ${{ params.v }} post'", read_only: true}`,
		shellOK(func(v string) string { return "pre " + v + " post\x00" })),
	shellCase("shell-substitution", `
      command: |
        printf '%s\0' "$(printf '%s' ${{ params.v }})" "$(printf '%s' "${{ params.v }}")"
      read_only: true`,
		shellOK(func(v string) string {
			// Command substitution drops trailing newlines.
			t := strings.TrimRight(v, "\n")
			return t + "\x00" + t + "\x00"
		})),
	shellCase("shell-heredoc", `
      command: |
        cat <<EOF
        pre ${{ params.v }} post
        EOF
      read_only: true`,
		func(v string) (string, bool) { return heredoc("pre "+v+" post", false) }),
	shellCase("shell-heredoc-quoted", `
      command: |
        cat <<'EOF'
        pre ${{ params.v }} post
        EOF
      read_only: true`,
		func(v string) (string, bool) { return heredoc("pre "+v+" post", false) }),
	shellCase("shell-heredoc-tabs", "\n      command: \"cat <<-EOF\\n\\tpre ${{ params.v }} post\\n\\tEOF\\n\"\n      read_only: true",
		func(v string) (string, bool) { return heredoc("\tpre "+v+" post", true) }),
	// Places a value is proven data in, beyond a word: the command of a
	// wrapper, a variable assigned from it, a pipe through programs that
	// keep their input data, a here-document inside $(...), a test.
	shellCase("shell-wrapped", `{command: "env -u X -- timeout 10 nice -n 1 printf '%s\\0' ${{ params.v }}", read_only: true}`,
		shellOK(func(v string) string { return v + "\x00" })),
	shellCase("shell-variable", `
      command: |
        x=${{ params.v }} y="pre ${{ params.v }}"
        z=$x
        for w in "$z"; do printf '%s\0' "$w" "$y"; done
      read_only: true`,
		shellOK(func(v string) string { return v + "\x00pre " + v + "\x00" })),
	shellCase("shell-pipe", `{command: "printf '%s\\0' ${{ params.v }} | cat | tee /dev/null", read_only: true}`,
		shellOK(func(v string) string { return v + "\x00" })),
	shellCase("shell-heredoc-substitution", `
      command: |
        x=$(cat <<EOF
        pre ${{ params.v }} post
        EOF
        )
        printf '%s\n' "$x"
      read_only: true`,
		func(v string) (string, bool) {
			out, ok := heredoc("pre "+v+" post", false)
			return strings.TrimRight(out, "\n") + "\n", ok
		}),
	shellCase("shell-test", `{command: "if [ ${{ params.v }} = \"$(printf '%s' ${{ params.v }})\" ] || [ -n \"${{ params.v }}\" ]; then printf '%s\\0' ok; fi", read_only: true}`,
		func(v string) (string, bool) { return "ok\x00", noNUL(v) }),
	{name: "shell-unless", shell: true, steps: `
  - id: s
    host: ${{ params.host }}
    ssh-exec:
      command: "true"
      unless: "printf '%s\\0' ${{ params.v }} > $DIR/unless; false"`,
		want: shellOK(func(v string) string { return v + "\x00" }),
		got:  func(f *interpFixture, _ *events) string { return readFile(filepath.Join(f.dir, "unless")) }},
	shellCase("shell-env", `
      command: "printf '%s\\0' \"$V\""
      env: {V: "${{ params.v }}"}
      read_only: true`,
		shellOK(func(v string) string { return v + "\x00" })),
	{name: "shell-probe", shell: true, steps: `
  - id: s
    wait-until:
      probe:
        host: ${{ params.host }}
        ssh-exec: {command: "printf '%s\\0' \"${{ params.v }}\""}
      until: result.exit_code == 0
      timeout: 10s`,
		want: shellOK(func(v string) string { return v + "\x00" }),
		got:  stdoutOfS},
	// A libpq connection string in a command: the role psql logs in as.
	{name: "shell-conninfo", steps: `
  - id: drop
    sql: {<<: *db, exec: "DROP ROLE IF EXISTS ${{ params.v }}"}
  - id: role
    sql: {<<: *db, exec: "CREATE ROLE ${{ params.v }} LOGIN"}
  - id: s
    ssh-exec:
      command: psql -X -A -t -c 'SELECT current_user' "host=$SOCKET port=$PGPORT dbname=postgres user=${{ conninfo_value(params.v) }}"
      read_only: true
  - id: cleanup
    sql: {<<: *db, exec: "DROP ROLE ${{ params.v }}"}`,
		want: func(v string) (string, bool) { return v + "\n", sqlIdent(v) },
		got:  stdoutOfS},
	// sql: what PostgreSQL parsed, read back from it.
	{name: "sql-identifier", steps: `
  - id: s
    sql: {<<: *db, query: "SELECT 1 AS ${{ params.v }}", read_only: true}`,
		want: func(v string) (string, bool) { return v, sqlIdent(v) },
		got:  func(_ *interpFixture, ev *events) string { return onlyKey(firstRow(ev, "s")) }},
	{name: "sql-quoted-identifier", steps: `
  - id: s
    sql: {<<: *db, query: "SELECT 1 AS \"x_${{ params.v }}\"", read_only: true}`,
		want: func(v string) (string, bool) { return clipIdent("x_" + v), sqlText(v) },
		got:  func(_ *interpFixture, ev *events) string { return onlyKey(firstRow(ev, "s")) }},
	{name: "sql-literal", steps: `
  - id: s
    sql: {<<: *db, query: "SELECT ${{ literal(params.v) }}::text AS v", read_only: true}`,
		want: func(v string) (string, bool) { return v, sqlText(v) },
		got:  func(_ *interpFixture, ev *events) string { s, _ := firstRow(ev, "s")["v"].(string); return s }},
	{name: "sql-args", steps: `
  - id: s
    sql: {<<: *db, query: "SELECT $1::text AS v", args: ["${{ params.v }}"], read_only: true}`,
		want: func(v string) (string, bool) { return v, sqlText(v) },
		got:  func(_ *interpFixture, ev *events) string { s, _ := firstRow(ev, "s")["v"].(string); return s }},
	{name: "sql-do-literal", steps: `
  - id: s
    sql:
      <<: *db
      exec: DO $do$ BEGIN INSERT INTO interp_out VALUES ('lit', ${{ literal(params.v) }}); END $do$
  - id: read
    sql: {<<: *db, query: "DELETE FROM interp_out WHERE ctx = 'lit' RETURNING v"}`,
		want: func(v string) (string, bool) { return v, sqlText(v) && !strings.Contains(v, "$do$") },
		got:  func(_ *interpFixture, ev *events) string { s, _ := firstRow(ev, "read")["v"].(string); return s }},
	{name: "sql-do-identifier", steps: `
  - id: s
    sql:
      <<: *db
      exec: DO $do$ DECLARE ${{ params.v }} text := 'declared'; BEGIN INSERT INTO interp_out VALUES ('ident', ${{ params.v }}); END $do$
  - id: read
    sql: {<<: *db, query: "DELETE FROM interp_out WHERE ctx = 'ident' RETURNING v"}`,
		want: func(v string) (string, bool) { return "declared", sqlIdent(v) && !strings.Contains(v, "$do$") },
		got:  func(_ *interpFixture, ev *events) string { s, _ := firstRow(ev, "read")["v"].(string); return s }},
	{name: "sql-unless", steps: `
  - id: s
    sql:
      <<: *db
      exec: INSERT INTO interp_out VALUES ('unless', $1)
      args: ["${{ params.v }}"]
      unless: SELECT true WHERE ${{ literal(params.v) }} IS NULL AND $1::text IS NULL
  - id: read
    sql: {<<: *db, query: "DELETE FROM interp_out WHERE ctx = 'unless' RETURNING v"}`,
		want: func(v string) (string, bool) { return v, sqlText(v) },
		got:  func(_ *interpFixture, ev *events) string { s, _ := firstRow(ev, "read")["v"].(string); return s }},
	// file-patch: what PostgreSQL reads from the file, or the file itself.
	{name: "file-set", steps: newFile("interp.conf", `set: {runbook.v: "${{ params.v }}"}`) + `
  - id: read
    sql: {<<: *db, query: "SELECT setting, error FROM pg_file_settings WHERE name = 'runbook.v'"}`,
		want: func(v string) (string, bool) { return v + "|", fileLine(v) && !quotedAlready(v) },
		got: func(_ *interpFixture, ev *events) string {
			r := firstRow(ev, "read")
			s, _ := r["setting"].(string)
			e, _ := r["error"].(string)
			return s + "|" + e
		}},
	{name: "file-ini", steps: newFile("interp.ini", `ini: [{section: s, values: {k: "${{ params.v }}"}}]`),
		// What an ini reader (Python's configparser) reads back.
		want: func(v string) (string, bool) { return v, iniValue(v) },
		got:  func(f *interpFixture, _ *events) string { return readIni(filepath.Join(f.dir, "interp.ini")) }},
	{name: "file-line", steps: newFile("interp.hba", `ensure-line: [{line: "host replication ${{ params.v }} 10.0.0.12/32 scram-sha-256"}]`),
		want: func(v string) (string, bool) {
			return "host replication " + v + " 10.0.0.12/32 scram-sha-256\n", fileLine(v) && v != "" && !strings.ContainsAny(v, " \t\v\f\"#")
		},
		got: func(f *interpFixture, _ *events) string { return readFile(filepath.Join(f.dir, "interp.hba")) }},
	{name: "file-regexp", steps: `
  - id: s
    file-patch:
      path: $DIR/interp.lines
      backup: false
      ensure-line: [{line: "unused", state: absent, regexp: "^k=${{ params.v }}$"}]`,
		want: func(v string) (string, bool) {
			var keep []string
			for _, l := range strings.Split(regexpLines(v), "\n") {
				if l != "k="+v {
					keep = append(keep, l)
				}
			}
			return strings.Join(keep, "\n") + "\n", utf8.ValidString(v)
		},
		got: func(f *interpFixture, _ *events) string { return readFile(filepath.Join(f.dir, "interp.lines")) }},
	// http: the path segment and the query value the server received.
	{name: "http-url", steps: `
  - id: s
    http: {url: "http://127.0.0.1:$PORT/base/${{ params.v }}?q=${{ params.v }}&z=1"}`,
		want: func(v string) (string, bool) { return v + "|" + v + "|1", v != "." && v != ".." },
		got:  func(f *interpFixture, _ *events) string { f.mu.Lock(); defer f.mu.Unlock(); return f.asked }},
}

func regexpLines(v string) string { return "k=" + v + "\nk=other\nk=.*" }

func onlyKey(m map[string]any) string {
	for k := range m {
		return k
	}
	return ""
}

func newInterpFixture(t testing.TB) *interpFixture {
	f := &interpFixture{dir: t.TempDir(), pg: testpg.Start(t)}
	f.pg.Psql(t, "CREATE TABLE interp_out (ctx text, v text)")
	conf := filepath.Join(f.pg.Data, "postgresql.conf")
	c, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "\ninclude_if_exists = '%s'\n", filepath.Join(f.dir, "interp.conf"))
	c.Close()
	if err := os.Chmod(f.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f.api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seg, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/base/"))
		if err != nil {
			seg = "bad escape: " + err.Error()
		}
		f.mu.Lock()
		f.asked = seg + "|" + r.URL.Query().Get("q") + "|" + r.URL.Query().Get("z")
		f.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(f.api.Close)
	return f
}

// load builds the playbook of a case.
func (f *interpFixture) load(t testing.TB, c interpCase) *engine.Playbook {
	_, port, _ := strings.Cut(f.api.Listener.Addr().String(), ":")
	src := fmt.Sprintf(`version: 1
name: interp-%s
params:
  v: {type: string, default: ""}
  host: {type: host, default: localhost}
x-db: &db
  address: %s
  port: %d
  user: postgres
  sslmode: disable
steps:%s
`, c.name, f.pg.Socket, f.pg.Port, strings.NewReplacer("$DIR", f.dir, "$PORT", port, "$SOCKET", f.pg.Socket, "$PGPORT", strconv.Itoa(f.pg.Port)).Replace(c.steps))
	l := &engine.Loader{Registry: steps.Builtin()}
	pb, ds := l.Load(c.name+".yaml", []byte(src))
	if pb == nil || diag.HasErrors(ds) {
		t.Fatalf("case %s: %v", c.name, ds)
	}
	return pb
}

// reset puts the files the cases edit back as they start.
func (f *interpFixture) reset(t testing.TB, v string) {
	for name, text := range map[string]string{"interp.ini": "", "interp.hba": "", "interp.lines": regexpLines(v) + "\n", "unless": ""} {
		if err := os.WriteFile(filepath.Join(f.dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	f.asked = ""
	f.mu.Unlock()
}

// check runs a case with v and compares what came out with what was meant.
func (f *interpFixture) check(t *testing.T, c interpCase, pb *engine.Playbook, v string, run func(*engine.Playbook, map[string]any) (*events, error)) {
	t.Helper()
	f.reset(t, v)
	want, ok := c.want(v)
	ev, err := run(pb, map[string]any{"v": v})
	switch {
	case !ok && err == nil:
		t.Errorf("%s: %q was placed, and should have been refused", c.name, v)
	case ok && err != nil:
		t.Errorf("%s: %q: %v", c.name, v, err)
	case ok:
		if got := c.got(f, ev); got != want {
			t.Errorf("%s: %q:\n got %q\nwant %q", c.name, v, got, want)
		}
	}
	if _, err := os.Stat(pwned); err == nil {
		os.Remove(pwned)
		t.Fatalf("%s: %q ran a command of its own", c.name, v)
	}
}

// corpus returns the committed seeds of FuzzInterpolation
// (testdata/fuzz/FuzzInterpolation): values that broke out of a context
// once, or would in some: quotes of every kind, substitutions, newlines,
// NUL, backslashes, ;, --, dollar quotes, here-document ends, names,
// invalid UTF-8.
func corpus(t testing.TB) []string {
	files, err := filepath.Glob("testdata/fuzz/FuzzInterpolation/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no seed corpus: %v", err)
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(string(b), "\nstring(")
		v, err := strconv.Unquote(strings.TrimSuffix(strings.TrimSpace(rest), ")"))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, v)
	}
	return out
}

// FuzzInterpolation feeds a value through every interpolation context of
// every step type, run for real: commands on the local transport, SQL on a
// real PostgreSQL, files read back by PostgreSQL, URLs sent to a server.
// Whatever the value, what runs is exactly what was meant, or the value is
// refused and nothing runs. The seeds in testdata/fuzz/FuzzInterpolation
// run with every go test; go test -fuzz FuzzInterpolation looks further.
func FuzzInterpolation(f *testing.F) {
	os.Remove(pwned)
	fx := newInterpFixture(f)
	pbs := make([]*engine.Playbook, len(interpCases))
	for i, c := range interpCases {
		pbs[i] = fx.load(f, c)
	}
	run := func(pb *engine.Playbook, params map[string]any) (*events, error) {
		ev := &events{}
		r := &engine.Runner{Sink: ev}
		return ev, r.Run(context.Background(), pb, engine.Inputs{Params: withHost(params, engine.Localhost)})
	}
	f.Fuzz(func(t *testing.T, v string) {
		for i, c := range interpCases {
			fx.check(t, c, pbs[i], v, run)
		}
		if out := fx.pg.Psql(t, "SELECT to_regclass('pwned') IS NULL"); strings.TrimSpace(out) != "t" {
			t.Fatalf("%q created a table of its own", v)
		}
	})
}

// keptConn is a connection that a run's end does not close.
type keptConn struct{ transport.Conn }

func (keptConn) Close() error { return nil }

func withHost(p map[string]any, host string) map[string]any {
	out := map[string]any{"host": host}
	for k, v := range p {
		out[k] = v
	}
	return out
}

// TestInterpolationOverSSH runs the shell cases with the seed corpus on
// a host behind a real sshd: the login shell there is the first to parse
// the command.
func TestInterpolationOverSSH(t *testing.T) {
	s := testsshd.Start(t)
	os.Remove(pwned)
	fx := newInterpFixture(t)
	inv, _ := engine.ParseInventory("inv.yaml", []byte(s.Inventory("pg1")))
	h, err := inv.Host("pg1")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := transport.DialSSH(context.Background(), transport.SSHConfig{Name: h.Name, Address: h.Address, Port: h.Port, User: h.User, IdentityFiles: []string{h.IdentityFile}, KnownHosts: []string{h.KnownHosts}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	run := func(pb *engine.Playbook, params map[string]any) (*events, error) {
		ev := &events{}
		// One connection for every run: the runs close theirs.
		r := &engine.Runner{Inventory: inv, Sink: ev, Connect: func(context.Context, *engine.HostSpec) (transport.Conn, error) {
			return keptConn{conn}, nil
		}}
		return ev, r.Run(context.Background(), pb, engine.Inputs{Params: withHost(params, "pg1")})
	}
	seeds := corpus(t)
	for _, c := range interpCases {
		if !c.shell {
			continue
		}
		pb := fx.load(t, c)
		for _, v := range seeds {
			fx.check(t, c, pb, v, run)
		}
	}
	if !slices.ContainsFunc(interpCases, func(c interpCase) bool { return c.shell }) {
		t.Fatal("no shell cases")
	}
}
