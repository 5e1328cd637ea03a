package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/internal/cli"
)

// hookSecret is the secret of the hooks' playbooks: it must be in no
// payload.
const hookSecret = "Hook-secret-4f9c2e7a"

const hookPlaybooks = `-- ok.yaml --
version: 1
name: hooks/ok
params:
  who: {type: string, default: alice}
secrets:
  pw: {env: RB_HOOK_PW, description: a password}
steps:
  - id: greet
    ssh-exec:
      command: echo "hello $PW"
      env: {PW: "${{ secrets.pw }}"}
-- refused.yaml --
version: 1
name: hooks/refused
secrets:
  pw: {env: RB_HOOK_PW, description: a password}
require:
  - name: the password file is there
    ssh-exec: {command: "test -e /nonexistent/hooks-guard", read_only: true}
    assert: result.exit_code == 0
steps:
  - id: never
    ssh-exec: {command: "true"}
-- failing.yaml --
version: 1
name: hooks/failing
secrets:
  pw: {env: RB_HOOK_PW, description: a password}
steps:
  - id: first
    ssh-exec: {command: "true"}
  - id: breaks
    name: Break with the password in the message
    ssh-exec:
      command: echo "bad password $PW" >&2; exit 3
      env: {PW: "${{ secrets.pw }}"}
`

// hookWorld is a directory with the playbooks above, a user configuration
// and a local HTTP receiver of webhooks.
type hookWorld struct {
	t      *testing.T
	dir    string
	mu     sync.Mutex
	posted [][]byte
	srv    *httptest.Server
}

func newHookWorld(t *testing.T) *hookWorld {
	w := &hookWorld{t: t, dir: t.TempDir()}
	for _, part := range strings.Split(hookPlaybooks, "-- ")[1:] {
		name, body, _ := strings.Cut(part, " --\n")
		if err := os.WriteFile(filepath.Join(w.dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Token") != "abc" {
			http.Error(rw, "want JSON and the token", http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.posted = append(w.posted, b)
		w.mu.Unlock()
	}))
	t.Cleanup(w.srv.Close)
	return w
}

// configure writes the user configuration.
func (w *hookWorld) configure(cfg string) {
	w.t.Helper()
	f := filepath.Join(w.dir, "config", "runbook", "config.yaml")
	if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(f, []byte(cfg), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// run runs runbook with the secret in its environment.
func (w *hookWorld) run(args ...string) (int, string) {
	env := map[string]string{"RB_HOOK_PW": hookSecret, "XDG_CONFIG_HOME": filepath.Join(w.dir, "config"),
		"XDG_STATE_HOME": filepath.Join(w.dir, "state"), "PATH": os.Getenv("PATH"), "HOME": w.dir}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var out bytes.Buffer
	e := &cli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out, LookupEnv: lookup,
		Getenv: func(k string) string { v, _ := lookup(k); return v }}
	code := e.Main(append([]string{"runbook"}, args...))
	return code, out.String()
}

type summary struct {
	Event, RunID, Playbook, Operator, Host, FailedStep, FailedHost, Message, Text string
	Params                                                                        map[string]any
	DurationSeconds                                                               float64 `json:"duration_seconds"`
}

func decodeSummaries(t *testing.T, payloads [][]byte) []summary {
	t.Helper()
	var out []summary
	for _, p := range payloads {
		var raw map[string]any
		if err := json.Unmarshal(p, &raw); err != nil {
			t.Fatalf("a payload is not JSON: %v\n%s", err, p)
		}
		str := func(k string) string { s, _ := raw[k].(string); return s }
		s := summary{Event: str("event"), RunID: str("run_id"), Playbook: str("playbook"), Operator: str("operator"), Host: str("host"),
			FailedStep: str("failed_step"), FailedHost: str("failed_host"), Message: str("message"), Text: str("text")}
		s.Params, _ = raw["params"].(map[string]any)
		s.DurationSeconds, _ = raw["duration_seconds"].(float64)
		out = append(out, s)
	}
	return out
}

// TestHooks: a webhook (a local HTTP receiver) and a hook command both
// get the JSON summary of a run's start and of its end for a success, a
// guard refusal and a failure, with no secret in any of them.
func TestHooks(t *testing.T) {
	w := newHookWorld(t)
	cmdLog := filepath.Join(w.dir, "command.log")
	w.configure(fmt.Sprintf(`hooks:
  - name: chat
    url: %s/hook
    headers: {X-Token: abc}
  - name: script
    command: [/bin/sh, -c, 'cat >> %s; echo >> %s']
`, w.srv.URL, cmdLog, cmdLog))
	runs := []struct {
		file, playbook, outcome string
		code                    int
	}{
		{"ok.yaml", "hooks/ok", "success", cli.ExitOK},
		{"refused.yaml", "hooks/refused", "refused", cli.ExitFailed},
		{"failing.yaml", "hooks/failing", "failure", cli.ExitFailed},
	}
	for _, r := range runs {
		if code, out := w.run("run", filepath.Join(w.dir, r.file), "--yes"); code != r.code {
			t.Fatalf("%s: exit %d, want %d\n%s", r.file, code, r.code, out)
		}
	}
	logged, err := os.ReadFile(cmdLog)
	if err != nil {
		t.Fatal(err)
	}
	fromCommand := bytes.Split(bytes.TrimSpace(logged), []byte("\n"))
	w.mu.Lock()
	posted := w.posted
	w.mu.Unlock()
	for name, payloads := range map[string][][]byte{"webhook": posted, "command": fromCommand} {
		for _, p := range payloads {
			if bytes.Contains(p, []byte(hookSecret)) || bytes.Contains(p, []byte("4f9c2e7a")) {
				t.Errorf("the %s got the secret: %s", name, p)
			}
		}
		got := decodeSummaries(t, payloads)
		if len(got) != 2*len(runs) {
			t.Fatalf("the %s got %d summaries, want %d (start and end of each run):\n%s", name, len(got), 2*len(runs), bytes.Join(payloads, []byte("\n")))
		}
		// Each hook is told in order: a run's start, then its end.
		for i, r := range runs {
			start, end := got[2*i], got[2*i+1]
			if start.Event != "start" || start.Playbook != r.playbook || start.RunID == "" || start.Operator == "" || start.Host == "" {
				t.Errorf("%s, %s: the start summary is %+v", name, r.file, start)
			}
			if end.Event != r.outcome || end.RunID != start.RunID || end.Playbook != r.playbook || end.DurationSeconds <= 0 || end.Text == "" {
				t.Errorf("%s, %s: the end summary is %+v, want outcome %s of run %s", name, r.file, end, r.outcome, start.RunID)
			}
		}
		if ok := got[1]; ok.Params["who"] != "alice" || ok.Message != "" {
			t.Errorf("%s: the success's summary: params %v, message %q", name, ok.Params, ok.Message)
		}
		if ref := got[3]; !strings.Contains(ref.Message, "the password file is there") || ref.FailedStep != "" {
			t.Errorf("%s: the refusal's summary does not name the guard: %+v", name, ref)
		}
		fail := got[5]
		if fail.FailedStep != "Break with the password in the message" || fail.FailedHost != "localhost" || !strings.Contains(fail.Message, "bad password ********") {
			t.Errorf("%s: the failure's summary: step %q on %q, message %q", name, fail.FailedStep, fail.FailedHost, fail.Message)
		}
	}
}

// TestHookLimits: a hook that fails, or sleeps past its time limit,
// changes nothing of the run's outcome, is logged, and delays the run's
// exit by no more than its limit.
func TestHookLimits(t *testing.T) {
	w := newHookWorld(t)
	const limit = 2 * time.Second
	w.configure(fmt.Sprintf(`hooks:
  - name: sleepy
    command: [/bin/sh, -c, 'sleep 60']
    events: [start, success]
    timeout: %s
  - name: broken
    command: [/bin/sh, -c, 'echo cannot reach the mail server >&2; exit 7']
    events: [success]
  - name: refused-post
    url: %s/no-token
    events: [success]
`, limit, w.srv.URL))
	start := time.Now()
	code, out := w.run("run", filepath.Join(w.dir, "ok.yaml"))
	took := time.Since(start)
	if code != cli.ExitOK {
		t.Fatalf("a run whose hooks fail: exit %d, want 0\n%s", code, out)
	}
	if took > limit+time.Second {
		t.Errorf("the run took %s with a hook that sleeps past its limit of %s\n%s", took, limit, out)
	}
	for _, want := range []string{
		"runbook: hook sleepy (success): command /bin/sh: passed its time limit of 2s; the run's outcome is unchanged",
		"runbook: hook broken (success): command /bin/sh: exit status 7: cannot reach the mail server; the run's outcome is unchanged",
		"runbook: hook refused-post (success): post " + w.srv.URL + ": 400 Bad Request: want JSON and the token",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the output does not say %q:\n%s", want, out)
		}
	}
	// A webhook's URL holds its token: no message shows its path.
	if strings.Contains(out, "/no-token") {
		t.Errorf("the output shows the webhook's path:\n%s", out)
	}
}

// TestHookInterrupted: a run stopped by Ctrl-C (SIGINT) tells its hooks,
// outcome interrupted, naming the step it stopped.
func TestHookInterrupted(t *testing.T) {
	w := newHookWorld(t)
	w.configure(fmt.Sprintf("hooks:\n  - {name: chat, url: %s/hook, headers: {X-Token: abc}}\n", w.srv.URL))
	fifo := filepath.Join(w.dir, "started")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	pb := filepath.Join(w.dir, "slow.yaml")
	if err := os.WriteFile(pb, []byte(fmt.Sprintf(`version: 1
name: hooks/slow
steps:
  - id: slow
    name: Wait for a long time
    ssh-exec: {command: "echo started > %s; sleep 60"}
`, fifo)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(linkRunbook(t, w.dir), "run", pb)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + w.dir, "XDG_CONFIG_HOME=" + filepath.Join(w.dir, "config"), "XDG_STATE_HOME=" + filepath.Join(w.dir, "state")}
	// The step has started once it writes to the FIFO.
	out := interruptAt(t, cmd, fifo, os.Interrupt)
	w.mu.Lock()
	got := decodeSummaries(t, w.posted)
	w.mu.Unlock()
	if len(got) != 2 || got[0].Event != "start" || got[1].Event != "interrupted" || got[1].Playbook != "hooks/slow" || got[1].FailedStep != "Wait for a long time" {
		t.Fatalf("the webhook got %+v, want the start and the interruption\n%s", got, out)
	}
}
