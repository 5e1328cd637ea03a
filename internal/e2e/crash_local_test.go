package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/runbook-dev/runbook/internal/testpg"
)

// crashPlaybook has a step of every type that runs on this machine, each
// with a side effect the test counts: a file edit, a command that runs
// once (creates), a command that cannot tell whether it ran (it appends),
// SQL (create if not exists, insert unless there), a for_each, a fan-out
// over three hosts, an HTTP PUT, a wait, a step that uses the results of
// earlier ones, and a command slow enough to outlive the engine.
const crashPlaybook = `version: 1
name: crash/multi
params:
  dir: {type: string}
  table: {type: string}
  api: {type: string}
lock: crash-${{ params.table }}
steps:
  - id: conf
    name: settings
    file-patch:
      path: ${{ params.dir }}/app.conf
      create: true
      backup: false
      set: {mode: replica, port: "5433"}
  - id: init
    name: initialise once
    ssh-exec:
      command: echo init >> ${{ params.dir }}/effects.init && touch ${{ params.dir }}/initialised
      creates: ${{ params.dir }}/initialised
  - id: append
    name: append a line
    ssh-exec:
      command: echo appended >> ${{ params.dir }}/effects.append && echo appended-once
  - id: table
    name: create the table
    sql:
      exec: CREATE TABLE IF NOT EXISTS ${{ params.table }} (k text PRIMARY KEY, n int)
      address: %[1]s
      port: %[2]d
      idempotent: true
  - id: row
    name: insert a row unless there
    sql:
      exec: INSERT INTO ${{ params.table }} VALUES ($1, 1)
      args: [one]
      unless: SELECT true FROM ${{ params.table }} WHERE k = $1
      address: %[1]s
      port: %[2]d
  - id: items
    name: one file per item
    for_each: ${{ ["a", "b", "c"] }}
    ssh-exec:
      command: echo ${{ item }} >> ${{ params.dir }}/effects.items && touch ${{ params.dir }}/item-${{ item }}
      creates: ${{ params.dir }}/item-${{ item }}
  - id: fan
    name: one marker per host
    hosts: [h1, h2, h3]
    parallel: 3
    ssh-exec:
      command: echo ${{ host.name }} >> ${{ params.dir }}/effects.fan && touch ${{ params.dir }}/fan-${{ host.name }}
      creates: ${{ params.dir }}/fan-${{ host.name }}
  - id: put
    name: store a value over HTTP
    http:
      method: PUT
      url: ${{ params.api }}/value
      body: ${{ steps.init.status }}
  - id: ready
    name: wait for the marker
    wait-until:
      probe:
        ssh-exec: {command: "test -f ${{ params.dir }}/initialised"}
      until: result.exit_code == 0
      timeout: 5s
  - id: summary
    name: record earlier results
    ssh-exec:
      command: echo ${{ steps.init.status }} ${{ steps.row.status }} ${{ steps.items.status }} ${{ len(steps.fan.results) }} > ${{ params.dir }}/summary
      idempotent: true
  - id: slow
    name: a command that outlives the engine
    ssh-exec:
      command: sleep 0.5 && echo slow >> ${{ params.dir }}/effects.slow && touch ${{ params.dir }}/slow-done
      creates: ${{ params.dir }}/slow-done
`

const crashInventory = `hosts:
  h1: {transport: local}
  h2: {transport: local}
  h3: {transport: local}
`

// putServer is the HTTP API the playbook stores a value in.
type putServer struct {
	mu     sync.Mutex
	values map[string]string
}

func (p *putServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		http.Error(w, "PUT only", http.StatusMethodNotAllowed)
		return
	}
	b, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.values[r.URL.Path] = string(b)
	p.mu.Unlock()
}

func (p *putServer) value(path string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.values[path]
}

// operatorAnswer is what an operator asked about the append step answers
// after looking at the host: its line is there, so it ran (take it as
// done), or it is not (run it again).
func operatorAnswer(dir string) string {
	if b, _ := os.ReadFile(filepath.Join(dir, "effects.append")); len(b) > 0 {
		return "--skip-in-doubt"
	}
	return "--retry-in-doubt"
}

// onlyJournal is the path and the run id of the one journal a run in dir
// (its XDG_STATE_HOME dir/state) left.
func onlyJournal(t *testing.T, dir string) (path, id string) {
	t.Helper()
	ids, _ := filepath.Glob(filepath.Join(dir, "state", "runbook", "runs", "*.journal"))
	if len(ids) != 1 {
		t.Fatalf("journals: %v", ids)
	}
	return ids[0], strings.TrimSuffix(filepath.Base(ids[0]), ".journal")
}

// syncedLength is how much of journal reached the disk by the synclog
// (RUNBOOK_SYNCLOG) the run wrote, -1 when nothing did; log is the
// synclog, for messages.
func syncedLength(synclog, journal string) (synced int64, log []byte) {
	log, _ = os.ReadFile(synclog)
	synced = -1
	for _, l := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		var p string
		var n int64
		if _, err := fmt.Sscanf(l, "%s %d", &p, &n); err == nil && p == journal {
			synced = n
		}
	}
	return synced, log
}

// TestCrashResumeLocal kills runbook with SIGKILL at every step boundary
// and in the middle of every step (after its intent is on disk, and after
// its change is made but before its outcome is recorded), resumes, and
// checks that the end state is the one of a run never interrupted, with
// every side effect made exactly once. A crash inside the one step that
// cannot tell whether it ran makes the resume stop and ask; the test then
// looks, as an operator would, and answers with --skip-in-doubt or
// --retry-in-doubt.
func TestCrashResumeLocal(t *testing.T) {
	pg := testpg.Start(t)
	api := &putServer{values: map[string]string{}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	root := t.TempDir()
	pb := filepath.Join(root, "crash.yaml")
	inv := filepath.Join(root, "inventory.yaml")
	if err := os.WriteFile(pb, []byte(fmt.Sprintf(crashPlaybook, pg.Socket, pg.Port)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inv, []byte(crashInventory), 0o600); err != nil {
		t.Fatal(err)
	}
	const steps = 11

	type world struct {
		files map[string]string
		rows  string
		value string
	}
	snapshot := func(dir, table, key string) world {
		w := world{files: map[string]string{}}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() == "state" || e.Name() == "synclog" {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			w.files[e.Name()] = string(b)
		}
		w.rows = pg.Psql(t, "SELECT k, n FROM "+table+" ORDER BY k")
		w.value = api.value("/" + key + "/value")
		return w
	}
	show := func(w world) string {
		var names []string
		for n := range w.files {
			names = append(names, n)
		}
		sort.Strings(names)
		var b strings.Builder
		for _, n := range names {
			fmt.Fprintf(&b, "%s: %q\n", n, w.files[n])
		}
		fmt.Fprintf(&b, "rows: %q\nvalue: %q\n", w.rows, w.value)
		return b.String()
	}

	// run starts runbook for one scenario; crash names the crash point.
	type result struct {
		killed         bool
		code           int
		stdout, stderr string
	}
	var extraEnv []string
	runbook := func(dir, crash string, args ...string) result {
		cmd := exec.Command(runbookBin, args...)
		cmd.Dir = dir
		cmd.Env = append(append(os.Environ(), "XDG_STATE_HOME="+filepath.Join(dir, "state"), "RUNBOOK_CRASHPOINT="+crash, "NO_COLOR=1",
			"RUNBOOK_SYNCLOG="+filepath.Join(dir, "synclog")), extraEnv...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		r := result{stdout: out.String(), stderr: errb.String()}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				r.killed = true
			}
			r.code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return r
	}
	scenario := func(name string) (dir, table string, args []string) {
		dir = filepath.Join(root, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		table = "t_" + strings.NewReplacer(":", "_", "-", "_").Replace(name)
		args = []string{"run", pb, "-i", inv, "-p", "dir=" + dir, "-p", "table=" + table, "-p", "api=" + srv.URL + "/" + name}
		return dir, table, args
	}

	refDir, refTable, refArgs := scenario("reference")
	if r := runbook(refDir, "", refArgs...); r.code != 0 {
		t.Fatalf("uninterrupted run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	ref := snapshot(refDir, refTable, "reference")
	// The reference is itself checked: one line per side effect.
	for file, want := range map[string]string{"effects.init": "init\n", "effects.append": "appended\n", "effects.items": "a\nb\nc\n", "summary": "changed changed changed 3\n", "effects.slow": "slow\n"} {
		if ref.files[file] != want {
			t.Fatalf("uninterrupted run: %s = %q, want %q", file, ref.files[file], want)
		}
	}
	if got := strings.Count(ref.files["effects.fan"], "\n"); got != 3 {
		t.Fatalf("uninterrupted run: effects.fan = %q", ref.files["effects.fan"])
	}
	if ref.rows != "one|1\n" || ref.value != "changed" {
		t.Fatalf("uninterrupted run: rows %q, value %q", ref.rows, ref.value)
	}
	// The fan-out's hosts finish in any order.
	normal := func(w world) string {
		lines := strings.Split(strings.TrimSpace(w.files["effects.fan"]), "\n")
		sort.Strings(lines)
		w.files["effects.fan"] = strings.Join(lines, "\n")
		return show(w)
	}
	want := normal(ref)

	killedAt := 0
	asked := 0
	for i := 1; i <= steps; i++ {
		for _, point := range []string{"intent", "started", "applied", "outcome"} {
			crash := fmt.Sprintf("%s:%d", point, i)
			t.Run(crash, func(t *testing.T) {
				dir, table, args := scenario(strings.ReplaceAll(crash, ":", "-"))
				r := runbook(dir, crash, args...)
				if !r.killed {
					// The step made no change (nothing applied) or the point
					// was not reached: the run must have finished.
					if r.code != 0 || point != "applied" && point != "started" {
						t.Fatalf("not killed at %s: exit %d\n%s%s", crash, r.code, r.stdout, r.stderr)
					}
				} else {
					killedAt++
					_, id := onlyJournal(t, dir)
					res := runbook(dir, "", "resume", id)
					if res.code != 0 && strings.Contains(res.stderr, "--retry-in-doubt") {
						// Only the append step cannot tell whether it ran, once
						// it has said it makes its change (its intent alone is
						// staged: killed there, it never started).
						if i != 3 || point == "outcome" || point == "intent" {
							t.Fatalf("resume after %s asked the operator:\n%s", crash, res.stderr)
						}
						asked++
						res = runbook(dir, "", "resume", operatorAnswer(dir), id)
					} else if i == 3 && (point == "started" || point == "applied") {
						t.Fatalf("resume after %s did not stop to ask (exit %d):\n%s%s", crash, res.code, res.stdout, res.stderr)
					}
					if res.code != 0 {
						t.Fatalf("resume after %s: exit %d\n%s%s", crash, res.code, res.stdout, res.stderr)
					}
					st := runbook(dir, "", "runs")
					if !strings.Contains(st.stdout, " ok (") {
						t.Errorf("runs after the resume:\n%s", st.stdout)
					}
				}
				got := snapshot(dir, table, strings.ReplaceAll(crash, ":", "-"))
				if g := normal(got); g != want {
					t.Errorf("end state after a crash at %s differs from an uninterrupted run's:\n got:\n%s\nwant:\n%s", crash, g, want)
				}
			})
		}
	}
	// A power cut: killed at each point, the journal cut back to what was
	// synced (what a power cut leaves), resumed after a "reboot" (another
	// boot id): the steps the lost records may have been changing are
	// taken as in doubt, rechecked, and the one that cannot recheck asked
	// about; the end state is still an uninterrupted run's.
	powerAsked, powerEmpty := 0, 0
	for i := 1; i <= steps; i++ {
		for _, point := range []string{"intent", "applied", "outcome"} {
			crash := fmt.Sprintf("%s:%d", point, i)
			t.Run("power-cut/"+crash, func(t *testing.T) {
				extraEnv = nil
				dir, table, args := scenario("p-" + strings.ReplaceAll(crash, ":", "-"))
				r := runbook(dir, crash, args...)
				if !r.killed {
					if r.code != 0 || point != "applied" {
						t.Fatalf("not killed at %s: exit %d\n%s%s", crash, r.code, r.stdout, r.stderr)
					}
				} else {
					journal, id := onlyJournal(t, dir)
					synced, log := syncedLength(filepath.Join(dir, "synclog"), journal)
					extraEnv = []string{"RUNBOOK_BOOT_ID=after-the-power-cut"}
					if synced < 0 {
						// The journal reaches the disk with the first mark,
						// which the first change waits for: only a cut before
						// it loses the whole journal, and then the resume says
						// to run again.
						if crash != "intent:1" {
							t.Fatalf("nothing of the journal was synced by %s: %q", crash, log)
						}
						powerEmpty++
						if err := os.Truncate(journal, 0); err != nil {
							t.Fatal(err)
						}
						res := runbook(dir, "", "resume", id)
						if res.code == 0 || !strings.Contains(res.stderr, "run the playbook again") {
							t.Fatalf("resume of a journal a power cut emptied: exit %d\n%s", res.code, res.stderr)
						}
						if res := runbook(dir, "", args...); res.code != 0 {
							t.Fatalf("run again: exit %d\n%s%s", res.code, res.stdout, res.stderr)
						}
						got := snapshot(dir, table, "p-"+strings.ReplaceAll(crash, ":", "-"))
						if g := normal(got); g != want {
							t.Errorf("end state after a power cut at %s and a new run differs from an uninterrupted run's:\n got:\n%s\nwant:\n%s", crash, g, want)
						}
						return
					}
					if err := os.Truncate(journal, synced); err != nil {
						t.Fatal(err)
					}
					res := runbook(dir, "", "resume", id)
					if !strings.Contains(res.stderr, "its last records may be lost") {
						t.Errorf("the resume did not see the reboot:\n%s", res.stderr)
					}
					if res.code != 0 && strings.Contains(res.stderr, "--retry-in-doubt") {
						if !strings.Contains(res.stderr, "append a line") || strings.Contains(res.stderr, "initialise once") {
							t.Fatalf("resume after %s asked about the wrong steps:\n%s", crash, res.stderr)
						}
						powerAsked++
						res = runbook(dir, "", "resume", operatorAnswer(dir), id)
					}
					if res.code != 0 {
						t.Fatalf("resume after %s: exit %d\n%s%s", crash, res.code, res.stdout, res.stderr)
					}
				}
				got := snapshot(dir, table, "p-"+strings.ReplaceAll(crash, ":", "-"))
				if g := normal(got); g != want {
					t.Errorf("end state after a power cut at %s differs from an uninterrupted run's:\n got:\n%s\nwant:\n%s", crash, g, want)
				}
			})
		}
	}
	extraEnv = nil
	t.Logf("%d crash points killed the run; %d resumes stopped to ask about the step that cannot recheck; %d after a power cut; %d power cuts left no journal", killedAt, asked, powerAsked, powerEmpty)
	if asked != 2 {
		t.Errorf("resumes that asked: %d, want 2 (crashes while the append runs and after it, before its outcome)", asked)
	}
}
