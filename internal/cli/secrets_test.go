package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"index/suffixarray"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/internal/cli"
	"github.com/runbook-dev/runbook/internal/redact"
	"github.com/runbook-dev/runbook/internal/testpg"
	"github.com/runbook-dev/runbook/internal/testsshd"
)

// secretCorpus holds secrets that each broke redaction somewhere: quotes
// of each kind and backslashes (shell, SQL, conninfo, postgresql.conf,
// JSON and Go quoting), a tab and a newline (lines trimmed and joined),
// &<> (JSON's HTML escapes), non-ASCII (ASCII-only JSON and Go quoting),
// one secret the prefix of another, a colon and a percent sign (.pgpass,
// URLs), and one of 300 bytes (cut to 60, 160, 200 bytes).
func secretCorpus() map[string]string {
	r := rand.New(rand.NewPCG(24, 2))
	const chars = `abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 '"\$&<>:;%#!?*(){}[]|~^=+-_,./` + "`"
	long := make([]byte, 300)
	for i := range long {
		long[i] = chars[r.IntN(len(chars))]
	}
	return map[string]string{
		"quotes":     `it's "double" and 'single' and \back\slash`,
		"ctrl":       "tab\there, newline\nsecond line",
		"html":       `a&b<c>d "json" & <html>`,
		"unicode":    "pässwörd-✓-ünïcode-𝄞",
		"prefix":     "prefix-secret-value",
		"prefixlong": "prefix-secret-value-and-more",
		"pgpass":     "colon:and;semi $dollar `tick` 100%",
		"long":       string(long),
		"dbpw":       `db pass 'q' \ "x" :y`,
		"pem":        "-----BEGIN KEY-----\nMIIBVwIBADANBgkqhkiG/9w0BAQ+\n-----END KEY-----\n",
	}
}

// secretsHeader declares every secret of the corpus; the playbooks of the
// test share it.
func secretsHeader(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nname: secrets/%s\nparams:\n  dir: {type: string}\n  api: {type: string}\n  escapes: {type: string}\nsecrets:\n", name)
	names := make([]string, 0)
	for n := range secretCorpus() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  %s: {env: RB_SECRET_%s}\n", n, strings.ToUpper(n))
	}
	return b.String()
}

// asRBApp connects a sql step as rb_app, over TCP, with its password.
const asRBApp = `
      user: rb_app
      password: ${{ secrets.dbpw }}
      address: 127.0.0.1
      port: ${{ params.pgport }}
      sslmode: disable`

// allEnv passes every secret to a command.
const allEnv = `
      env:
        S_QUOTES: ${{ secrets.quotes }}
        S_CTRL: ${{ secrets.ctrl }}
        S_HTML: ${{ secrets.html }}
        S_UNICODE: ${{ secrets.unicode }}
        S_PREFIX: ${{ secrets.prefix }}
        S_PREFIXLONG: ${{ secrets.prefixlong }}
        S_PGPASS: ${{ secrets.pgpass }}
        S_LONG: ${{ secrets.long }}
        S_DBPW: ${{ secrets.dbpw }}
        S_PEM: ${{ secrets.pem }}
        ESCAPES: ${{ params.escapes }}`

// printAll prints every secret of allEnv raw, on both outputs, as bash's
// printf %q and xtrace quote it, and as Python's json.dumps escapes it.
const printAll = `for v in "$S_QUOTES" "$S_CTRL" "$S_HTML" "$S_UNICODE" "$S_PREFIX" "$S_PREFIXLONG" "$S_PGPASS" "$S_LONG" "$S_DBPW" "$S_PEM"; do printf '%s\n' "$v"; printf 'err %s\n' "$v" >&2; done;
        bash -c 'printf "%q\n" "$S_QUOTES" "$S_CTRL" "$S_PGPASS" "$S_LONG"; set -x; : "$S_QUOTES" "$S_CTRL" "$S_HTML" "$S_LONG"';
        /usr/bin/python3 -c 'import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith("S_")}))';
        /usr/bin/python3 -c "$ESCAPES"`

// escapes prints every secret of allEnv in the forms of encoders that
// escape more than they must: every byte as %xx (lower case), every
// character as a decimal HTML entity, XML's &apos; and &quot;, Python's
// html.escape (&#x27;), JSON with \/, Python's ascii() (\xe9, \u2713) and
// bytes repr (\xc3\xa9); then each line of a secret apart.
const escapes = `import os, html
for k, v in sorted(os.environ.items()):
    if k.startswith("S_"):
        print("".join("%%%02x" % b for b in v.encode()))
        print("".join("&#%d;" % ord(c) for c in v))
        print(v.replace(chr(38), chr(38) + "amp;").replace(chr(39), chr(38) + "apos;").replace(chr(34), chr(38) + "quot;").replace(chr(60), chr(38) + "lt;"))
        print(html.escape(v))
        print(__import__("json").dumps(v).replace("/", "\\/"))
        print(ascii(v), repr(v.encode()))
        for line in v.splitlines():
            print("line", line.strip())
`

// The steps of the playbook that succeeds: every step type, every input
// that takes a secret.
var secretSteps = `require:
  - name: the box answers
    host: box
    ssh-exec:
      command: |
        ` + printAll + allEnv + `
    assert: result.reachable && result.exit_code == 0
    hint: "the box said ${{ result.stdout }}"
steps:
  - id: echo
    name: every secret, in every quoting
    host: box
    ssh-exec:
      command: |
        ` + printAll + allEnv + `
      read_only: true
  - id: conf
    name: configuration files holding secrets
    host: box
    file-patch:
      path: ${{ params.dir }}/postgresql.auto.conf
      create: true
      set:
        primary_conninfo: >-
          user=replication password='${{ replace(replace(secrets.quotes, "\\", "\\\\"), "'", "\\'") }}' host=10.0.0.1
        db_password: ${{ secrets.unicode }}
        long_setting: ${{ secrets.long }}
        other_setting: ${{ secrets.pgpass }}
      ensure-line:
        - line: "token ${{ secrets.unicode }}"
  - id: ini
    host: box
    file-patch:
      path: ${{ params.dir }}/database.cfg
      create: true
      ini:
        - section: database
          values: {password: "${{ secrets.pgpass }}", user: "${{ secrets.prefixlong }}"}
  - id: rows
    name: rows that hold secrets
    sql:
      query: SELECT $1::text AS a, $2::text AS b, $3::text AS c, $4::text AS d
      args: ["${{ secrets.quotes }}", "${{ secrets.ctrl }}", "${{ secrets.long }}", "${{ secrets.unicode }}"]` + asRBApp + `
      read_only: true
  - id: literal
    sql:
      exec: SELECT ${{ literal(secrets.quotes) }}::text` + asRBApp + `
      idempotent: true
  - id: api
    http:
      url: ${{ params.api }}/echo?t=${{ secrets.prefix }}
      headers:
        X-Secret: ${{ secrets.html }}
        X-Long: ${{ secrets.long }}
        X-Quotes: ${{ secrets.quotes }}
  - id: each
    for_each: ${{ [secrets.long, secrets.prefixlong, secrets.unicode] }}
    host: box
    ssh-exec:
      command: printf '%s\n' "$ITEM"
      env: {ITEM: "${{ item }}"}
      read_only: true
  - id: wait
    wait-until:
      probe:
        host: box
        ssh-exec:
          command: |
            cd ${{ params.dir }} || exit 1; n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count
            printf 'attempt %s %s %s\n' "$n" "$S_LONG" "$S_QUOTES"` + strings.ReplaceAll(allEnv, "\n      ", "\n          ") + `
      until: result.stdout startsWith "attempt 3"
      timeout: 30s
      interval: 50ms
  - id: derived
    host: box
    ssh-exec:
      command: printf '%s\n' "$X"
      env: {X: "${{ upper(secrets.prefix) }}-${{ secrets.prefixlong }}"}
      read_only: true
  - id: gate
    host: box
    confirm:
      text: "The box said: ${{ steps.echo.result.stdout }}"
      word: go
    ssh-exec:
      command: touch ${{ params.dir }}/gated
      creates: ${{ params.dir }}/gated
    assert: result.exit_code == 0
`

// failing are playbooks whose failure messages are built from what holds
// a secret: errors from the remote side, PostgreSQL and HTTP servers, a
// failed assert, a wait that times out, a guard that refuses.
var failing = map[string]string{
	"remote": `steps:
  - id: fail
    host: box
    ssh-exec:
      command: |
        printf '%s' "$S_LONG" >&2; printf '  %s  \n' "$S_CTRL" "$S_QUOTES" "$S_LONG" >&2; exit 3` + allEnv + `
`,
	"sql-syntax": `steps:
  - id: fail
    sql:
      exec: SELECT ${{ literal(secrets.quotes) }} ${{ literal(secrets.long) }}` + asRBApp + `
`,
	"sql-value": `steps:
  - id: fail
    sql:
      query: SELECT $1::int AS n, $2::int AS m
      args: ["${{ secrets.long }}", "${{ secrets.quotes }}"]` + asRBApp + `
`,
	"http-status": `steps:
  - id: fail
    http:
      method: POST
      url: ${{ params.api }}/fail
      headers: {X-Secret: "${{ secrets.html }}", X-Long: "${{ secrets.long }}", X-Quotes: "${{ secrets.quotes }}"}
      body: ${{ secrets.unicode }}
`,
	"http-url": `steps:
  - id: fail
    http:
      url: http://127.0.0.1:1/x?t=${{ secrets.prefixlong }}&u=${{ secrets.html }}
`,
	"assert": `steps:
  - id: fail
    host: box
    ssh-exec:
      command: |
        printf '%s\n' "$S_LONG"; printf '%s\n' "$S_LONG" >&2
        ` + printAll + allEnv + `
      read_only: true
    assert: result.stdout == ""
`,
	"wait": `steps:
  - id: fail
    wait-until:
      probe:
        host: box
        ssh-exec:
          command: printf '%s %s\n' "$S_LONG" "$S_QUOTES"` + strings.ReplaceAll(allEnv, "\n      ", "\n          ") + `
      until: result.stdout == ""
      timeout: 1s
      interval: 100ms
`,
	"guard": `require:
  - name: the box has no secrets
    host: box
    ssh-exec:
      command: |
        ` + printAll + allEnv + `
    assert: result.stdout == ""
    hint: "it said ${{ result.stdout }} and ${{ result.stderr }}"
steps:
  - ssh-exec: {command: "true", read_only: true}
`,
	"systemd": `steps:
  - id: fail
    host: box
    systemd: {unit: ssh, state: started}
`,
}

// secretsWorld is what the playbooks of the test run against.
type secretsWorld struct {
	t       *testing.T
	dir     string
	state   string
	inv     string
	env     map[string]string
	pgport  int
	api     string
	outputs map[string]string
}

func newSecretsWorld(t *testing.T) *secretsWorld {
	sshd := testsshd.Start(t)
	pg := testpg.Start(t)
	w := &secretsWorld{t: t, dir: t.TempDir(), env: map[string]string{}, pgport: pg.Port, outputs: map[string]string{}}
	w.state = filepath.Join(w.dir, "state")
	w.inv = filepath.Join(w.dir, "inventory.yaml")
	if err := os.WriteFile(w.inv, []byte(sshd.Inventory("box")), 0o600); err != nil {
		t.Fatal(err)
	}
	corpus := secretCorpus()
	for n, v := range corpus {
		w.env["RB_SECRET_"+strings.ToUpper(n)] = v
	}
	pg.Psql(t, "CREATE ROLE rb_app LOGIN PASSWORD '"+strings.ReplaceAll(corpus["dbpw"], "'", "''")+"'")
	api := httptest.NewServer(http.HandlerFunc(echoSecrets))
	t.Cleanup(api.Close)
	w.api = api.URL
	return w
}

// echoSecrets is an API that gives back what it was sent, in the ways
// servers do: JSON (HTML-escaped), HTML, URL-encoded, and an error page.
func echoSecrets(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	vals := []string{r.Header.Get("X-Secret"), r.Header.Get("X-Long"), r.Header.Get("X-Quotes"), r.URL.Query().Get("t"), string(body)}
	if r.URL.Path == "/fail" {
		w.WriteHeader(http.StatusInternalServerError)
		// The long value first: the message is cut at 200 bytes, inside it.
		fmt.Fprintf(w, "<p>%q bad token %s (%s) for %s</p> %s %s %s", vals[1], html.EscapeString(vals[0]), url.QueryEscape(vals[0]), vals[2], vals[4], everyByte(vals[0]), xmlEscape(vals[2]))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Echo", vals[0])
	_ = json.NewEncoder(w).Encode(map[string]any{"values": vals, "html": html.EscapeString(vals[2]), "url": url.QueryEscape(vals[1]),
		"every": everyByte(vals[1]), "xml": xmlEscape(vals[2])})
}

// everyByte percent-encodes every byte, in lower case, as some clients do.
func everyByte(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02x", s[i])
	}
	return b.String()
}

// xmlEscape escapes as XML writers do, with &apos; and &#x27; both.
func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "'", "&apos;", `"`, "&#x22;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// run runs the CLI and keeps what it printed under label.
func (w *secretsWorld) run(label string, args ...string) int {
	var stdout, stderr bytes.Buffer
	lookup := func(k string) (string, bool) {
		if v, ok := w.env[k]; ok {
			return v, true
		}
		return os.LookupEnv(k)
	}
	e := &cli.Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, LookupEnv: lookup,
		Getenv: func(k string) string { v, _ := lookup(k); return v }}
	code := e.Main(append([]string{"runbook"}, args...))
	w.outputs[label+" (stdout)"] = stdout.String()
	w.outputs[label+" (stderr)"] = stderr.String()
	return code
}

func (w *secretsWorld) playbook(name, body string) string {
	f := filepath.Join(w.dir, name+".yaml")
	body = strings.ReplaceAll(body, "${{ params.pgport }}", strconv.Itoa(w.pgport))
	if err := os.WriteFile(f, []byte(secretsHeader(name)+body), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return f
}

func (w *secretsWorld) args(cmd, file string, extra ...string) []string {
	return append([]string{cmd, file, "-i", w.inv, "--state-dir", w.state, "-p", "dir=" + w.dir, "-p", "api=" + w.api, "-p", "escapes=" + escapes}, extra...)
}

// TestSecretsNeverShow runs a playbook of every step type whose inputs and
// results hold a corpus of secrets, and playbooks that fail in every way
// whose message is built from such a result, through every output: text,
// --output json, plan with its diffs, the journal, runs and show-run. No
// secret, no escaped form of one and no piece of one may be anywhere.
func TestSecretsNeverShow(t *testing.T) {
	w := newSecretsWorld(t)
	pb := w.playbook("all-paths", secretSteps)
	if code := w.run("plan", w.args("plan", pb)...); code != cli.ExitOK {
		t.Fatalf("plan: exit %d\n%s", code, w.outputs["plan (stdout)"]+w.outputs["plan (stderr)"])
	}
	w.run("plan json", w.args("plan", pb, "--output", "json")...)
	if !strings.Contains(w.outputs["plan (stdout)"], "+++ "+w.dir+"/postgresql.auto.conf") {
		t.Errorf("the plan shows no diff:\n%s", w.outputs["plan (stdout)"])
	}
	if code := w.run("run", w.args("run", pb, "--yes")...); code != cli.ExitOK {
		t.Fatalf("run: exit %d\n%s", code, w.outputs["run (stdout)"]+w.outputs["run (stderr)"])
	}
	_ = os.Remove(filepath.Join(w.dir, "count"))
	_ = os.Remove(filepath.Join(w.dir, "gated"))
	if code := w.run("run json", w.args("run", pb, "--yes", "--output", "json")...); code != cli.ExitOK {
		t.Fatalf("run --output json: exit %d\n%s", code, w.outputs["run json (stderr)"])
	}
	w.checkRan()
	names := make([]string, 0, len(failing))
	for n := range failing {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := w.playbook("fail-"+n, failing[n])
		// --journal: some of these playbooks are read-only, whose runs
		// keep no journal otherwise; their journals are read below.
		if code := w.run("fail "+n, w.args("run", f, "--yes", "--journal")...); code != cli.ExitFailed {
			t.Errorf("%s: exit %d, want 1\n%s", n, code, w.outputs["fail "+n+" (stderr)"])
		}
		w.run("fail json "+n, w.args("run", f, "--yes", "--journal", "--output", "json")...)
		w.run("fail plan "+n, w.args("plan", f)...)
	}
	w.checkFailed()
	w.run("runs", "runs", "--state-dir", w.state)
	ids := regexp.MustCompile(`(?m)^\d{8}T\d{6}Z-[0-9a-f]{6}`).FindAllString(w.outputs["runs (stdout)"], -1)
	if len(ids) != 2+2*len(failing) {
		t.Errorf("runs lists %d runs, want %d:\n%s", len(ids), 2+2*len(failing), w.outputs["runs (stdout)"])
	}
	for _, id := range ids {
		w.run("show-run "+id, "show-run", id, "--state-dir", w.state)
	}
	_ = filepath.WalkDir(w.state, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(path)
			w.outputs["file "+path] = string(b)
		}
		return nil
	})
	// A secret whose lines are each too short to mask is refused before
	// anything runs, by name and with the reason, never by value.
	w.env["RB_SECRET_PEM"] = "ab12\ncd34\nef56\n"
	f := w.playbook("fail-remote", failing["remote"])
	if code := w.run("short lines", w.args("run", f, "--yes")...); code == cli.ExitOK || !strings.Contains(w.outputs["short lines (stderr)"], "secret pem has a line (the 1st) of 4 bytes") {
		t.Errorf("a secret of short lines: exit %d\n%s", code, w.outputs["short lines (stderr)"])
	}
	if strings.Contains(w.outputs["short lines (stderr)"], "cd34") {
		t.Errorf("the refusal shows the secret:\n%s", w.outputs["short lines (stderr)"])
	}
	w.env["RB_SECRET_PEM"] = secretCorpus()["pem"]
	checkNoSecret(t, w.outputs, secretCorpus(), "PREFIX-SECRET-VALUE")
}

// checkRan checks that the run did what the playbook says, so that the
// outputs checked hold what they should.
func (w *secretsWorld) checkRan() {
	t := w.t
	out := w.outputs["run (stdout)"]
	for _, want := range []string{"every secret, in every quoting [box]", "rows that hold secrets", "each (element 3) [box]", "configuration files holding secrets"} {
		if !strings.Contains(out, want) {
			t.Errorf("the run's output lacks %q:\n%s", want, out)
		}
	}
	conf, _ := os.ReadFile(filepath.Join(w.dir, "postgresql.auto.conf"))
	if !strings.Contains(string(conf), `password=''it\\''s "double"`) {
		t.Errorf("the configuration was not written as asked:\n%s", conf)
	}
	js := w.outputs["run json (stdout)"]
	for _, want := range []string{`"type":"step-progress"`, `"type":"confirm"`, `"rows":[{`, `"json":{`} {
		if !strings.Contains(js, want) {
			t.Errorf("the JSON output lacks %s", want)
		}
	}
	if !strings.Contains(w.outputs["run (stdout)"], redact.Mask) {
		t.Error("nothing was masked in the run's output: the secrets did not reach it")
	}
}

// checkFailed checks that each failing playbook failed for the reason it
// was written for.
func (w *secretsWorld) checkFailed() {
	for name, want := range map[string]string{
		"remote":      "exit status 3: ",
		"sql-syntax":  "syntax error at or near",
		"sql-value":   "invalid input syntax for type integer",
		"http-status": "HTTP status 500: <p>",
		"http-url":    "connection refused",
		"assert":      "assert result.stdout == \"\" is false; observed {",
		"wait":        "timed out after 1s waiting until",
		"guard":       "refused: 1 guard(s) failed",
		"systemd":     "systemctl show ssh",
	} {
		if got := w.outputs["fail "+name+" (stderr)"]; !strings.Contains(got, want) {
			w.t.Errorf("%s: the failure does not say %q:\n%s", name, want, got)
		}
	}
}

// checkNoSecret fails for every secret, escaped form of one, or piece of
// one (10 bytes or more, as a cut or a split would leave) found in the
// outputs; also for the extra texts, values computed from secrets.
func checkNoSecret(t *testing.T, outputs map[string]string, secrets map[string]string, extra ...string) {
	t.Helper()
	labels := make([]string, 0, len(outputs))
	var all strings.Builder
	var starts []int
	// Each output also read through every decoder: a secret escaped more
	// than it must (%xx for every byte, &#39;, \u0027) shows there.
	texts := map[string]string{}
	for l, o := range outputs {
		texts[l] = o
		for i, d := range redact.Decodings(o) {
			texts[fmt.Sprintf("%s, decoded %d", l, i)] = d
		}
	}
	outputs = texts
	for l := range outputs {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		starts = append(starts, all.Len())
		all.WriteString(outputs[l])
		all.WriteByte(0)
	}
	text := all.String()
	index := suffixarray.New([]byte(text))
	where := func(off int) string {
		i := sort.SearchInts(starts, off+1) - 1
		l := labels[i]
		from, to := max(off-60, starts[i]), min(off+80, len(text))
		return fmt.Sprintf("%s: …%q…", l, text[from:to])
	}
	const piece = 10
	reported := map[string]bool{}
	found := func(name, what, s string) {
		if len(s) < 4 || reported[name] {
			return
		}
		if offs := index.Lookup([]byte(s), 1); len(offs) > 0 {
			reported[name] = true
			t.Errorf("secret %s shows (%s %q) in %s", name, what, s, where(offs[0]))
		}
	}
	names := make([]string, 0, len(secrets))
	for n := range secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, f := range redact.Forms(secrets[n]) {
			found(n, "form", f)
			for i := 0; i+piece <= len(f); i++ {
				found(n, "piece", f[i:i+piece])
			}
		}
	}
	for _, x := range extra {
		found(x, "computed value", x)
	}
}
