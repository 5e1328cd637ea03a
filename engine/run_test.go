package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/engine"
)

// recorder collects the events of a run.
type recorder struct {
	mu     sync.Mutex
	events []*engine.Event
}

func (r *recorder) Emit(e *engine.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := *e
	r.events = append(r.events, &c)
}

func (r *recorder) ends() map[string]engine.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]engine.Status{}
	for _, e := range r.events {
		if e.Type == engine.EventStepEnd {
			key := e.ID
			if e.Host != "localhost" {
				key += "@" + e.Host
			}
			out[key] = e.Status
		}
	}
	return out
}

// of returns the events of type typ, in the order they came.
func (r *recorder) of(typ engine.EventType) []*engine.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*engine.Event
	for _, e := range r.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// each returns f of each event of type typ, in the order they came.
func (r *recorder) each(typ engine.EventType, f func(*engine.Event) string) []string {
	var out []string
	for _, e := range r.of(typ) {
		out = append(out, f(e))
	}
	return out
}

// ran lists the steps that ran (not taken as done from a journal), as
// id@host in the order they ended.
func (r *recorder) ran() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ran []string
	for _, e := range r.events {
		if e.Type == engine.EventStepEnd && !e.Resumed {
			ran = append(ran, e.ID+"@"+e.Host)
		}
	}
	return ran
}

func mustLoad(t *testing.T, src string) *engine.Playbook {
	t.Helper()
	pb, ds := loader().Load("test.yaml", []byte(src))
	for _, d := range ds {
		t.Log(d)
	}
	if pb == nil {
		t.Fatal("playbook did not load")
	}
	return pb
}

// mustLoadInDir loads the playbook name whose steps work in a fresh
// directory: its header declares the parameter dir, and rest is what
// follows the header (on the same lines as when the header is written out).
// It returns the playbook and the directory.
func mustLoadInDir(t *testing.T, name, rest string) (*engine.Playbook, string) {
	t.Helper()
	return mustLoad(t, "version: 1\nname: "+name+"\nparams:\n  dir: {type: string}\n"+rest), t.TempDir()
}

// mustInventory parses an inventory and fails the test if it is invalid.
func mustInventory(t *testing.T, src string) *engine.Inventory {
	t.Helper()
	inv, ds := engine.ParseInventory("inv.yaml", []byte(src))
	if inv == nil {
		t.Fatal(ds)
	}
	return inv
}

func run(t *testing.T, pb *engine.Playbook, params map[string]string, secrets map[string]string, opts ...func(*engine.Runner)) (*recorder, error) {
	t.Helper()
	vals, err := engine.ResolveParams(pb, params)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	r := &engine.Runner{Sink: rec}
	for _, o := range opts {
		o(r)
	}
	return rec, r.Run(context.Background(), pb, engine.Inputs{Params: vals, Secrets: secrets})
}

// onHosts has a run work on the hosts of inv.
func onHosts(inv *engine.Inventory) func(*engine.Runner) {
	return func(r *engine.Runner) { r.Inventory = inv }
}

// overSSH has a run work on the hosts of inv, dialled over SSH as the CLI
// does.
func overSSH(inv *engine.Inventory) func(*engine.Runner) {
	return func(r *engine.Runner) { r.Inventory, r.Connect = inv, sshConnect }
}

// resumeOn has a run resume from rs on the hosts of inv.
func resumeOn(inv *engine.Inventory, rs *engine.Resume) func(*engine.Runner) {
	return func(r *engine.Runner) { r.Inventory, r.Resume = inv, rs }
}

// countLines returns how many lines a side-effect log has: each step that
// changes something appends one, so a count proves what ran and how often.
func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

func TestGuardsAbortBeforeAnyStep(t *testing.T) {
	pb, dir := mustLoadInDir(t, "guarded", `require:
  - name: the marker exists
    ssh-exec:
      command: test -e ${{ params.dir }}/marker
    assert: result.exit_code == 0
    hint: create the marker first
  - name: always fine
    ssh-exec: {command: "true"}
    assert: result.exit_code == 0
  - name: an unreachable host is an observation
    ssh-exec: {command: "true"}
    assert: result.reachable
steps:
  - id: one
    ssh-exec:
      command: echo one >> ${{ params.dir }}/log
  - id: two
    ssh-exec:
      command: echo two >> ${{ params.dir }}/log
`)
	log, marker := filepath.Join(dir, "log"), filepath.Join(dir, "marker")
	params := map[string]string{"dir": dir}
	rec, err := run(t, pb, params, nil)
	var ge *engine.GuardError
	if !errors.As(err, &ge) {
		t.Fatalf("err = %v, want a GuardError", err)
	}
	if len(ge.Failed) != 1 || !strings.Contains(ge.Failed[0], "the marker exists") || !strings.Contains(ge.Failed[0], "create the marker first") || !strings.Contains(ge.Failed[0], "exit_code: 1") {
		t.Errorf("guard failures = %q, want the marker guard with its observed value and hint", ge.Failed)
	}
	if n := countLines(t, log); n != 0 {
		t.Fatalf("%d steps ran after a guard failed", n)
	}
	if len(rec.ends()) != 0 {
		t.Errorf("step events after a failed guard: %v", rec.ends())
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, pb, params, nil); err != nil {
		t.Fatal(err)
	}
	if n := countLines(t, log); n != 2 {
		t.Fatalf("%d steps ran, want 2", n)
	}
}

func TestStepsSeeEarlierResultsAndWhen(t *testing.T) {
	pb := mustLoad(t, `
version: 1
name: results
steps:
  - id: a
    ssh-exec: {command: "echo 42", read_only: true}
  - id: b
    when: steps.a.result.stdout == "42\n"
    ssh-exec:
      command: test ${{ trim(steps.a.result.stdout) }} = 42
  - id: c
    when: steps.b.status == "skipped"
    ssh-exec: {command: "false"}
`)
	rec, err := run(t, pb, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]engine.Status{"a": engine.StatusOK, "b": engine.StatusChanged, "c": engine.StatusSkipped}
	for k, v := range want {
		if got := rec.ends()[k]; got != v {
			t.Errorf("step %s: %s, want %s", k, got, v)
		}
	}
}

func TestShellMetacharactersStayOneArgument(t *testing.T) {
	pb, dir := mustLoadInDir(t, "quoting", `  evil: {type: string}
steps:
  - id: w
    ssh-exec:
      command: printf '%s' ${{ params.evil }} > ${{ params.dir }}/out
`)
	evil := `'; touch ` + filepath.Join(dir, "pwned") + ` #$(id)`
	if _, err := run(t, pb, map[string]string{"evil": evil, "dir": dir}, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "out"))
	if string(got) != evil {
		t.Errorf("the command received %q, want %q", got, evil)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Fatal("a parameter was executed by the shell")
	}
}

func TestSecretsNeverInEvents(t *testing.T) {
	const secret = "s3cr3t-Pa55word"
	pb := mustLoad(t, `
version: 1
name: secrets
secrets:
  pw: {env: PW}
steps:
  - id: echo
    ssh-exec:
      command: echo "the password is $PW"; echo "$PW" >&2; exit 3
      env:
        PW: ${{ secrets.pw }}
`)
	rec, err := run(t, pb, nil, map[string]string{"pw": secret})
	if err == nil {
		t.Fatal("the step should have failed")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("the secret is in the error: %v", err)
	}
	if !strings.Contains(err.Error(), engine.Redacted) {
		t.Errorf("the error should show the redacted stderr, got %v", err)
	}
	for _, e := range rec.events {
		if strings.Contains(e.Message+e.Diff+e.Name, secret) {
			t.Errorf("the secret is in an event: %+v", e)
		}
		if b, _ := json.Marshal(e.Result); strings.Contains(string(b), secret) {
			t.Errorf("the secret is in a result: %s", b)
		}
	}
}

// TestVerifiersNeverInEvents: a SCRAM verifier a step reads (a role's
// stored password) is masked in results and messages, as good as a hash of
// the password; the step after it still sees the real value.
func TestVerifiersNeverInEvents(t *testing.T) {
	const verifier = "SCRAM-SHA-256$4096:c2FsdHNhbHQ=$c3RvcmVka2V5c3RvcmVka2V5:c2VydmVya2V5c2VydmVya2V5"
	pb := mustLoad(t, `
version: 1
name: verifiers
steps:
  - id: read
    ssh-exec:
      command: printf '%s' 'SCRAM-SHA-256$4096:c2FsdHNhbHQ=$c3RvcmVka2V5c3RvcmVka2V5:c2VydmVya2V5c2VydmVya2V5'
  - id: check
    ssh-exec: {command: "true"}
    assert: steps.read.result.stdout == "`+verifier+`"
`)
	rec, err := run(t, pb, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	masked := 0
	for _, e := range rec.events {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), "c3RvcmVka2V5") {
			t.Errorf("the verifier is in an event: %s", b)
		}
		if strings.Contains(string(b), `SCRAM-SHA-256$`+engine.Redacted) {
			masked++
		}
	}
	if masked == 0 {
		t.Error("no event shows the masked verifier")
	}
}

func TestTimeoutNamesStepAndKillsCommand(t *testing.T) {
	pb, dir := mustLoadInDir(t, "timeout", `
steps:
  - id: slow
    name: a slow step
    timeout: 200ms
    ssh-exec:
      command: sleep 1; touch ${{ params.dir }}/finished
`)
	start := time.Now()
	_, err := run(t, pb, map[string]string{"dir": dir}, nil)
	var te *engine.StepTimeoutError
	if !errors.As(err, &te) || te.Step != "a slow step" || te.Limit != 200*time.Millisecond {
		t.Fatalf("err = %v, want a StepTimeoutError naming the step and limit", err)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("the run took %s: the step was not cancelled at its timeout", d)
	}
	// Had the command survived its timeout, it would touch the file now.
	time.Sleep(1500 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(dir, "finished")); err == nil {
		t.Error("the command kept running after its timeout")
	}
}

func TestRetries(t *testing.T) {
	pb, dir := mustLoadInDir(t, "retries", `
steps:
  - id: flaky
    retries: 3
    retry_delay: 10ms
    ssh-exec:
      command: echo x >> ${{ params.dir }}/n; test "$(wc -l < ${{ params.dir }}/n)" -ge 3
`)
	if _, err := run(t, pb, map[string]string{"dir": dir}, nil); err != nil {
		t.Fatal(err)
	}
	if n := countLines(t, filepath.Join(dir, "n")); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "postgresql.conf")
	orig := "#wal_level = minimal\nport = 5432\n"
	if err := os.WriteFile(conf, []byte(orig), 0o640); err != nil {
		t.Fatal(err)
	}
	pb := mustLoad(t, `
version: 1
name: plan
params:
  conf: {type: string}
steps:
  - id: patch
    file-patch:
      path: ${{ params.conf }}
      set: {wal_level: replica}
  - id: after
    ssh-exec:
      command: echo ${{ steps.patch.result.changed }} >> ${{ params.conf }}
`)
	rec, err := run(t, pb, map[string]string{"conf": conf}, nil, func(r *engine.Runner) { r.DryRun = true })
	if err == nil {
		t.Log("dry run finished")
	}
	got, _ := os.ReadFile(conf)
	if string(got) != orig {
		t.Fatalf("dry run changed the file:\n%s", got)
	}
	ends := rec.ends()
	if ends["patch"] != engine.StatusWould || ends["after"] != engine.StatusUnknown {
		t.Errorf("statuses = %v", ends)
	}
	var diff string
	for _, e := range rec.events {
		if e.Type == engine.EventStepEnd && e.ID == "patch" {
			diff = e.Diff
		}
	}
	if !strings.Contains(diff, "-#wal_level = minimal\n+wal_level = 'replica'") {
		t.Errorf("plan diff:\n%s", diff)
	}
	// The real run makes the change, a second run finds nothing to do.
	if _, err := run(t, pb, map[string]string{"conf": conf}, nil); err != nil {
		t.Fatal(err)
	}
	rec, err = run(t, pb, map[string]string{"conf": conf}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rec.ends()["patch"] != engine.StatusOK {
		t.Errorf("second run: %v", rec.ends())
	}
	st, _ := os.Stat(conf)
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 kept", st.Mode().Perm())
	}
}

func TestFanOutParallelAndFailures(t *testing.T) {
	inv := mustInventory(t, `
defaults: {transport: local}
hosts:
  a: {vars: {fail: false}}
  b: {vars: {fail: true}}
  c: {vars: {fail: false}}
  d: {vars: {fail: false}}
groups:
  all: [a, b, c, d]
`)
	pb, dir := mustLoadInDir(t, "fanout", `steps:
  - id: each
    hosts: [all]
    parallel: 2
    max_failures: 1
    ssh-exec:
      command: touch ${{ params.dir }}/${{ host.name }}; test ${{ host.vars.fail }} = false
  - id: next
    ssh-exec: {command: "true"}
`)
	rec, err := run(t, pb, map[string]string{"dir": dir}, nil, onHosts(inv))
	var se *engine.StepError
	if !errors.As(err, &se) || se.Host != "b" {
		t.Fatalf("err = %v, want the failure of host b", err)
	}
	ends := rec.ends()
	for _, h := range []string{"a", "c", "d"} {
		if ends["each@"+h] != engine.StatusChanged {
			t.Errorf("host %s: %s (one failure is within max_failures)", h, ends["each@"+h])
		}
	}
	if _, ran := ends["next"]; ran {
		t.Error("the next step ran after a failed step")
	}
}

func TestInterruptCancelsRunningStep(t *testing.T) {
	pb := mustLoad(t, `
version: 1
name: interrupt
steps:
  - id: long
    ssh-exec: {command: sleep 30}
`)
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() {
		time.Sleep(200 * time.Millisecond)
		cancel(engine.ErrInterrupted)
	}()
	start := time.Now()
	err := (&engine.Runner{}).Run(ctx, pb, engine.Inputs{})
	if !errors.Is(err, engine.ErrInterrupted) {
		t.Fatalf("err = %v, want interrupted", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("the step was not cancelled")
	}
}

func TestUnknownHostStopsBeforeAnything(t *testing.T) {
	pb, dir := mustLoadInDir(t, "hosts", `
steps:
  - id: first
    ssh-exec:
      command: touch ${{ params.dir }}/ran
  - id: second
    host: pg9
    ssh-exec: {command: "true"}
`)
	_, err := run(t, pb, map[string]string{"dir": dir}, nil)
	if err == nil || !strings.Contains(err.Error(), `unknown host "pg9"`) {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Fatal("a step ran although a later host is unknown")
	}
}

func TestForEachMessageAndInventory(t *testing.T) {
	inv := mustInventory(t, "hosts:\n  pg2: {address: 10.9.9.2, transport: local, vars: {role: standby}}\n")
	pb, dir := mustLoadInDir(t, "loops", `  peer: {type: host, default: pg2}
steps:
  - id: list
    ssh-exec: {command: "printf 'a\nb\nc'", read_only: true}
  - id: each
    for_each: ${{ split(steps.list.result.stdout, "\n") }}
    ssh-exec:
      command: echo ${{ item }} ${{ inventory[params.peer].address }} >> ${{ params.dir }}/out
  - id: check
    ssh-exec: {command: "cat ${{ params.dir }}/out", read_only: true}
    assert: result.stdout == "x"
    message: the file says ${{ trim(result.stdout) }}, not x
`)
	rec, err := run(t, pb, map[string]string{"dir": dir}, nil, onHosts(inv))
	if err == nil || !strings.Contains(err.Error(), `step "check" on localhost: the file says a 10.9.9.2`) {
		t.Fatalf("err = %v, want the assert's message", err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "out"))
	if string(got) != "a 10.9.9.2\nb 10.9.9.2\nc 10.9.9.2\n" {
		t.Errorf("for_each ran: %q", got)
	}
	var names []string
	for _, e := range rec.events {
		if e.Type == engine.EventStepEnd && e.ID == "each" {
			names = append(names, e.Name)
		}
	}
	if strings.Join(names, ",") != "each (a),each (b),each (c)" {
		t.Errorf("events: %v", names)
	}
}

// TestPrintShowsResultAndRedacts: print is rendered with the step's result
// on success, secrets redacted, and not rendered for a skipped step.
func TestPrintShowsResultAndRedacts(t *testing.T) {
	pb := mustLoad(t, `version: 1
name: print
secrets:
  pw: {env: PW}
steps:
  - id: one
    ssh-exec: {command: "echo timeline 2", read_only: true}
    print: "${{ trim(result.stdout) }}; password ${{ secrets.pw }}"
  - id: two
    when: "false"
    ssh-exec: {command: "echo never", read_only: true}
    print: "never ${{ result.stdout }}"
`)
	rec, err := run(t, pb, nil, map[string]string{"pw": "s3cret-word"})
	if err != nil {
		t.Fatal(err)
	}
	printed := rec.each(engine.EventStepEnd, func(e *engine.Event) string { return e.Print })
	if len(printed) != 2 || !strings.HasPrefix(printed[0], "timeline 2; password ") || strings.Contains(printed[0], "s3cret") || printed[1] != "" {
		t.Fatalf("printed = %q, want the first step's text with the secret redacted and nothing for the skipped step", printed)
	}
}
