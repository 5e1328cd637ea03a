package steps_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/testkit"
	"github.com/runbook-dev/runbook/steps"
)

func TestCaptureSavesAtomicallyWithinItsLimit(t *testing.T) {
	dir, src := fileIn(t, "remote.log", strings.Repeat("x", 2048), 0o644)
	pb := taking("capture", "dir", `steps:
  - id: file
    capture: {path: "${{ params.dir }}/remote.log", dest: "${{ params.dir }}/out/${{ host.name }}/remote.log", max_size: 2KiB}
  - id: cmd
    capture: {command: "echo hello", dest: "${{ params.dir }}/out/${{ host.name }}/hello.txt"}
    assert: result.bytes == 6
`)
	ev, err := runPlaybook(t, pb, given("dir", dir))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "out", "localhost", "remote.log"))
	if err != nil || len(got) != 2048 {
		t.Fatalf("saved %d bytes (%v), want 2048", len(got), err)
	}
	st, _ := os.Stat(filepath.Join(dir, "out", "localhost", "remote.log"))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	if e := ev.end("file"); e.Status != engine.StatusChanged || e.Result["bytes"] != 2048 {
		t.Fatalf("file: %s %v", e.Status, e.Result)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "out", "localhost", ".*tmp*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}

	// One byte over the limit: an error naming it, and the file saved
	// before stays whole.
	testkit.WriteFile(t, src, strings.Repeat("y", 2049), 0o644)
	_, err = runPlaybook(t, pb, given("dir", dir))
	if err == nil || !strings.Contains(err.Error(), "is larger than max_size 2KiB: nothing was saved") {
		t.Fatalf("err = %v, want the limit named", err)
	}
	got, _ = os.ReadFile(filepath.Join(dir, "out", "localhost", "remote.log"))
	if string(got) != strings.Repeat("x", 2048) {
		t.Fatal("the file saved before was changed")
	}
}

func TestCaptureRefusals(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`{dest: a}`, "capture needs path (a remote file) or command"},
		{`{path: /a, command: "true", dest: a}`, "capture takes path or command, not both"},
		{`{path: /a, dest: a, max_size: 10MB}`, `max_size: "10MB" is not a size such as 1048576, 512KiB or 16MiB`},
	} {
		l := &engine.Loader{Registry: steps.Builtin()}
		_, ds := l.Load("t.yaml", []byte("version: 1\nname: t\nsteps:\n  - capture: "+c.body+"\n"))
		var all []string
		for _, d := range ds {
			all = append(all, d.String())
		}
		if !strings.Contains(strings.Join(all, "\n"), c.want) {
			t.Errorf("%s: got %v, want %q", c.body, all, c.want)
		}
	}
}

// TestCaptureDestAndEndlessCommands: a dest with a .. element (a value from
// a host leading out of the directory) is refused; a command that never
// ends is stopped at max_size, not left running until a timeout.
func TestCaptureDestAndEndlessCommands(t *testing.T) {
	dir := t.TempDir()
	pb := taking("capture", "dir", `  name: {type: string}
steps:
  - id: out
    capture: {command: "echo hi", dest: "${{ params.dir }}/out/${{ params.name }}"}
`)
	_, err := runPlaybook(t, pb, runOpts{params: map[string]string{"dir": dir, "name": "../../escaped"}})
	if err == nil || !strings.Contains(err.Error(), "has a .. element") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "..", "escaped")); err == nil {
		t.Fatal("written outside")
	}
	// A newline from a value (a host's output, untrimmed) is refused.
	_, err = runPlaybook(t, pb, runOpts{params: map[string]string{"dir": dir, "name": "vm\n"}})
	if err == nil || !strings.Contains(err.Error(), "has a control character") {
		t.Fatalf("err = %v, want the newline refused", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "vm\n")); err == nil {
		t.Fatal("a file with a newline in its name was written")
	}
	endless := taking("endless", "dir", `steps:
  - id: yes
    timeout: 60s
    capture: {command: "yes", dest: "${{ params.dir }}/yes.txt", max_size: 64KiB}
`)
	start := time.Now()
	_, err = runPlaybook(t, endless, given("dir", dir))
	if err == nil || !strings.Contains(err.Error(), "larger than max_size 64KiB") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("an endless command ran %s: it was not stopped at max_size", d)
	}
}

// TestCaptureDestFromHostIsNotAbsolute: a dest that begins with a value
// read from a host (here a step's output naming an absolute path) is
// refused before anything is written: the host would pick any file on this
// machine. A dest the playbook begins with / or a param stays absolute.
func TestCaptureDestFromHostIsNotAbsolute(t *testing.T) {
	dir := t.TempDir()
	pb := taking("capture", "dir", `steps:
  - id: name
    ssh-exec: {command: "echo ${{ params.dir }}/owned", read_only: true}
  - id: out
    capture: {command: "echo owned", dest: "${{ trim(steps.name.result.stdout) }}"}
`)
	_, err := runPlaybook(t, pb, given("dir", dir))
	if err == nil || !strings.Contains(err.Error(), "is absolute because of the value it begins with") {
		t.Fatalf("err = %v, want the absolute dest refused", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "owned")); err == nil {
		t.Fatal("a host's output chose the file written")
	}
	literal := strings.ReplaceAll(pb, `dest: "${{ trim(steps.name.result.stdout) }}"`, `dest: "`+dir+`/lit/${{ trim(steps.name.result.stdout) }}"`)
	if _, err := runPlaybook(t, literal, given("dir", dir)); err != nil {
		t.Fatalf("a dest the playbook makes absolute: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "lit", dir, "owned")); err != nil {
		t.Fatalf("not saved under the playbook's directory: %v", err)
	}
}

// TestCaptureRelativeDestIsTheRunsDir: a relative dest is resolved
// against the run's directory (Runner.Dir: a resume passes the first
// attempt's), not the working directory of the process, and the result
// says where the file is.
func TestCaptureRelativeDestIsTheRunsDir(t *testing.T) {
	dir := t.TempDir()
	pb := `version: 1
name: capture
steps:
  - id: out
    capture: {command: "echo hi", dest: "diag/${{ host.name }}.txt"}
`
	ev, err := runPlaybook(t, pb, runOpts{dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "diag", "localhost.txt")
	if b, err := os.ReadFile(want); err != nil || string(b) != "hi\n" {
		t.Fatalf("%s: %q %v", want, b, err)
	}
	if got := ev.end("out").Result["dest"]; got != want {
		t.Fatalf("result dest %v, want %s", got, want)
	}
}

// TestCaptureStreamsToTheFile: a capture far larger than a command's
// kept output goes to the file as it arrives: this process allocates a
// small part of its size (it used to hold it whole, ~4 times over).
func TestCaptureStreamsToTheFile(t *testing.T) {
	dir := t.TempDir()
	const size = 64 << 20
	pb := taking("capture", "dir", `steps:
  - id: big
    capture: {command: "head -c 67108864 /dev/zero", dest: "${{ params.dir }}/big", max_size: 128MiB}
    assert: result.bytes == 67108864
`)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := runPlaybook(t, pb, given("dir", dir)); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > size/4 {
		t.Fatalf("allocated %d MiB to save %d MiB: the output was held in memory", got>>20, size>>20)
	}
	if st, err := os.Stat(filepath.Join(dir, "big")); err != nil || st.Size() != size {
		t.Fatalf("saved %v %v", st, err)
	}
}
