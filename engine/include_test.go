package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/diag"
)

// innerPlaybook is a playbook others include: typed params, a guard that
// a file can make fail, a lock, and steps that log what they ran with.
const innerPlaybook = `version: 1
name: t/inner
params:
  greet: {type: string}
  n: {type: int, default: 1}
  mode: {type: string, default: a, enum: [a, b]}
  token: {type: string, default: ""}
lock: ${{ "inner-" + params.mode }}
require:
  - name: nothing refuses the inner part
    ssh-exec: {command: "test ! -f refuse", read_only: true}
    assert: result.exit_code == 0
steps:
  - id: first
    ssh-exec:
      command: echo inner ${{ params.greet }} ${{ params.n }} ${{ params.mode }} >> log; printf '%s\n' "$TOKEN"
      env: {TOKEN: "${{ params.token }}"}
  - id: after
    ssh-exec:
      command: echo "after $FIRST" >> log
      env: {FIRST: "${{ trim(steps.first.result.stdout) }}"}
`

const outerPlaybook = `version: 1
name: t/outer
params:
  who: {type: string}
secrets:
  token: {env: TOKEN}
lock: outer
steps:
  - id: first
    ssh-exec: {command: "echo outer first >> log"}
  - id: inner
    name: the inner part
    playbook: lib/inner.yaml
    params:
      greet: hello ${{ params.who }}
      n: 3
      mode: b
      token: ${{ secrets.token }}
  - id: last
    ssh-exec: {command: "echo outer last ${{ steps.first.status }} >> log"}
`

// TestIncludeRunsTheTree: the included playbook's steps run in place of
// the step that includes it, with the params the includer computed (a
// secret among them masked in every event), its own steps' results, and
// its step keys in the journal's events (inner/first); each lock of the
// tree is taken once.
func TestIncludeRunsTheTree(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeTree(t, dir, map[string]string{"outer.yaml": outerPlaybook, "lib/inner.yaml": innerPlaybook})
	pb := loadFile(t, "outer.yaml")
	var mu sync.Mutex
	var locks []string
	lock := func(r *engine.Runner) {
		r.Lock = func(_ context.Context, name string) (func(), error) {
			mu.Lock()
			defer mu.Unlock()
			locks = append(locks, name)
			return func() {}, nil
		}
	}
	const secret = "s3cret-token-value"
	rec, err := run(t, pb, map[string]string{"who": "bob"}, map[string]string{"token": secret}, lock)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := os.ReadFile("log")
	want := "outer first\ninner hello bob 3 b\nafter " + secret + "\nouter last changed\n"
	if string(log) != want {
		t.Errorf("log:\n%s\nwant:\n%s", log, want)
	}
	if !reflect.DeepEqual(locks, []string{"inner-b", "outer"}) {
		t.Errorf("locks taken: %q, want inner-b and outer once each", locks)
	}
	var ids []string
	for _, e := range rec.events {
		if e.Type == engine.EventStepEnd {
			ids = append(ids, e.ID)
		}
		for _, s := range []string{e.Message, e.Name, e.Print, e.Diff, fmt.Sprint(e.Result)} {
			if strings.Contains(s, secret) {
				t.Errorf("the secret given as a param is in an event: %+v", e)
			}
		}
	}
	if want := []string{"first", "inner/first", "inner/after", "last"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("step keys: %q, want %q", ids, want)
	}
}

// TestIncludedGuardsBeforeAnyChange: a guard of the included playbook is
// checked with the includer's, before the includer's first step: when it
// fails, nothing ran.
func TestIncludedGuardsBeforeAnyChange(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeTree(t, dir, map[string]string{"outer.yaml": outerPlaybook, "lib/inner.yaml": innerPlaybook, "refuse": ""})
	pb := loadFile(t, "outer.yaml")
	rec, err := run(t, pb, map[string]string{"who": "bob"}, map[string]string{"token": "a-long-enough-token"})
	var ge *engine.GuardError
	if !errors.As(err, &ge) || !strings.Contains(ge.Error(), "inner: nothing refuses the inner part") {
		t.Fatalf("run: %v, want the inner guard's refusal", err)
	}
	if _, err := os.Stat("log"); !os.IsNotExist(err) {
		t.Errorf("a step ran before the included guard refused the run (log: %v)", err)
	}
	for _, e := range rec.events {
		if e.Type == engine.EventStepStart {
			t.Errorf("a step started: %+v", e)
		}
	}
}

// TestIncludeValidate: validate follows includes; a wrong param, a
// missing file and a cycle through another file are one positioned error
// each, in the file where the mistake is.
func TestIncludeValidate(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	inc := func(body string) string {
		return "version: 1\nname: t/x\nsteps:\n  - id: part\n" + body
	}
	writeTree(t, dir, map[string]string{
		"lib/inner.yaml": innerPlaybook,
		"param.yaml":     inc("    playbook: lib/inner.yaml\n    params:\n      greet: hi\n      mdoe: b\n"),
		"type.yaml":      inc("    playbook: lib/inner.yaml\n    params:\n      greet: hi\n      n: three\n"),
		"enum.yaml":      inc("    playbook: lib/inner.yaml\n    params:\n      greet: hi\n      mode: c\n"),
		"required.yaml":  inc("    playbook: lib/inner.yaml\n    params:\n      n: 2\n"),
		"missing.yaml":   inc("    playbook: lib/nowhere.yaml\n"),
		"lib/echo.yaml":  "version: 1\nname: t/echo\nparams:\n  word: {type: string}\nsteps:\n  - ssh-exec: {command: \"echo ${{ params.word }}\", read_only: true}\n",
		"secret.yaml":    "version: 1\nname: t/x\nsecrets:\n  pw: {env: PW}\nsteps:\n  - id: part\n    playbook: lib/echo.yaml\n    params:\n      word: ${{ secrets.pw }}\n",
		"steps.yaml":     "version: 1\nname: t/x\nsteps:\n  - id: a\n    ssh-exec: {command: \"true\", read_only: true}\n  - id: part\n    playbook: lib/inner.yaml\n    params:\n      greet: ${{ steps.a.result.stdout }}\n",
		"facts.yaml":     "version: 1\nname: t/x\nfacts:\n  f: {hosts: [localhost], ssh-exec: {command: \"true\", read_only: true}}\nsteps:\n  - id: part\n    playbook: lib/inner.yaml\n    params:\n      greet: ${{ string(facts.f) }}\n",
		"bundled.yaml":   inc("    playbook: pg-ha/no-such-playbook\n"),
		"when.yaml":      "version: 1\nname: t/x\nsteps:\n  - id: a\n    ssh-exec: {command: \"true\", read_only: true}\n  - id: part\n    playbook: lib/echo.yaml\n    when: steps.a.result.exit_code == 0\n    params: {word: hi}\n",
		"hosts.yaml":     inc("    playbook: lib/echo.yaml\n    hosts: [a, b]\n    params: {word: hi}\n"),
		"a.yaml":         inc("    playbook: b.yaml\n"),
		"b.yaml": "version: 1\nname: t/b\nsteps:\n  - ssh-exec: {command: \"true\", read_only: true}\n" +
			"  - id: back\n    playbook: a.yaml\n",
	})
	for _, c := range []struct {
		file string
		want string
	}{
		{"param.yaml", `param.yaml:8:7: lib/inner.yaml declares no param "mdoe" (did you mean "mode"?); its params are: greet, n, mode, token [unknown-key]`},
		{"type.yaml", `type.yaml:8:10: param n of lib/inner.yaml (int): "three" is not an integer [type-mismatch]`},
		{"enum.yaml", `enum.yaml:8:13: param mode of lib/inner.yaml (string): "c" is not one of a, b [type-mismatch]`},
		{"required.yaml", `required.yaml:7:7: lib/inner.yaml requires param(s) greet: add them under params: [missing-field]`},
		{"steps.yaml", `steps.yaml:9:14: param greet of lib/inner.yaml reads steps.a: an included playbook's params are computed when the run starts, before any step; give params, vars or secrets [invalid-value]`},
		{"facts.yaml", `facts.yaml:9:25: unknown name facts; available here: params, secrets, vars, steps, inventory (did you mean "vars"?) [undefined-reference]`},
		{"secret.yaml", `lib/echo.yaml:6:31: command may hold secrets.pw through params.word: on a command line the host's process list shows it; pass it with env: or stdin: [secret-in-command]`},
		{"when.yaml", `when.yaml:8:11: when of an include reads steps.a: whether an included playbook runs is decided when the run starts (its guards are checked before any step); give params, vars or secrets, or put the when on the included playbook's steps [invalid-value]`},
		{"hosts.yaml", `hosts.yaml:6:5: hosts: an included playbook's steps run where they say (their own host: and hosts:); pass the host(s) as one of its params, and put a batch inside it to go through them in turn [invalid-value]`},
		{"missing.yaml", `missing.yaml:5:15: playbook: cannot read lib/nowhere.yaml (lib/nowhere.yaml): no such file or directory; a name ending in .yaml or .yml is a file relative to this playbook, any other a bundled playbook (runbook list) [invalid-value]`},
		{"bundled.yaml", `bundled.yaml:5:15: playbook: cannot read pg-ha/no-such-playbook (bundled:pg-ha/no-such-playbook.yaml): file does not exist; a name ending in .yaml or .yml is a file relative to this playbook, any other a bundled playbook (runbook list) [invalid-value]`},
		{"a.yaml", `b.yaml:6:15: playbook: a.yaml includes itself (a.yaml → b.yaml → a.yaml): a playbook cannot run itself, directly or through another; remove one of these includes [invalid-value]`},
	} {
		t.Run(c.file, func(t *testing.T) { wantOnlyDiagnostic(t, c.file, c.want, "") })
	}
}

// wantOnlyDiagnostic validates file and wants want as its one diagnostic
// of severity sev (of any severity when sev is empty).
func wantOnlyDiagnostic(t *testing.T, file, want string, sev diag.Severity) {
	t.Helper()
	rep, err := engine.Validate([]string{file}, engine.ValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range rep.Diagnostics {
		if sev == "" || d.Severity == sev {
			got = append(got, d.String())
		}
	}
	if !slices.Equal(got, []string{want}) {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
}

// TestIncludeHashCoversTheTree: the hash a resume compares changes when an
// included file changes, and not with the directory it is loaded from.
func TestIncludeHashCoversTheTree(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeTree(t, dir, map[string]string{"outer.yaml": outerPlaybook, "lib/inner.yaml": innerPlaybook})
	h1 := loadFile(t, "outer.yaml").Hash
	if h := loadFile(t, filepath.Join(dir, "outer.yaml")).Hash; h != h1 {
		t.Errorf("the hash depends on the path the playbook was loaded by")
	}
	writeTree(t, dir, map[string]string{"lib/inner.yaml": innerPlaybook + "# edited\n"})
	if loadFile(t, "outer.yaml").Hash == h1 {
		t.Errorf("the hash did not change with the included file")
	}
}

func loadFile(t *testing.T, name string) *engine.Playbook {
	t.Helper()
	src, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	pb, ds := loader().Load(name, src)
	if pb == nil {
		t.Fatalf("%s did not load: %v", name, ds)
	}
	return pb
}

// TestIncludedConfirmAskedBeforeAnyStep: an included playbook's own
// confirmation gate is asked with the includer's, after the guards and
// before the first step of the whole run.
func TestIncludedConfirmAskedBeforeAnyStep(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	inner := strings.Replace(innerPlaybook, "steps:\n", "confirm: {text: \"inner part for ${{ params.greet }}\", word: yes-inner}\nsteps:\n", 1)
	outer := strings.Replace(outerPlaybook, "steps:\n", "confirm: {text: outer, word: yes-outer}\nsteps:\n", 1)
	writeTree(t, dir, map[string]string{"outer.yaml": outer, "lib/inner.yaml": inner})
	pb := loadFile(t, "outer.yaml")
	var asked []string
	confirm := func(r *engine.Runner) {
		r.Confirm = func(_ context.Context, g *engine.Gate) (engine.Answer, error) {
			_, err := os.Stat("log")
			asked = append(asked, fmt.Sprintf("%s: %s (log exists: %v)", g.Step, g.Text, err == nil))
			return engine.Answer{Typed: g.Word}, nil
		}
	}
	if _, err := run(t, pb, map[string]string{"who": "bob"}, map[string]string{"token": "a-long-enough-token"}, confirm); err != nil {
		t.Fatal(err)
	}
	want := []string{"t/outer: outer (log exists: false)", "t/inner: inner part for hello bob (log exists: false)"}
	if !slices.Equal(asked, want) {
		t.Errorf("gates asked: %q, want %q", asked, want)
	}
}

// gatedInner is an included playbook whose step gate shows what a
// read-only step observed, before its own change.
const gatedInner = `version: 1
name: t/gated
steps:
  - id: look
    ssh-exec: {command: "echo observed-before-any-change", read_only: true}
  - id: decision
    confirm: {text: "go on? ${{ trim(steps.look.result.stdout) }}", word: yes-inner}
    ssh-exec: {command: "true"}
  - id: change
    ssh-exec: {command: "echo inner change >> log"}
`

const gatedOuter = `version: 1
name: t/gated-outer
steps:
  - id: probe
    ssh-exec: {command: "echo probe", read_only: true}
  - id: stop
    ssh-exec: {command: "echo outer stop >> log"}
  - id: inner
    playbook: lib/gated.yaml
    confirm_first: true
`

// TestIncludedGateAskedBeforeTheIncludersChange: with confirm_first, an
// included playbook's step gate (and the read-only steps whose results it
// shows) comes before the includer's first change: declining changes
// nothing anywhere in the tree, confirming runs the includer's change and
// then the included one, in that order.
func TestIncludedGateAskedBeforeTheIncludersChange(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeTree(t, dir, map[string]string{"outer.yaml": gatedOuter, "lib/gated.yaml": gatedInner})
	pb := loadFile(t, "outer.yaml")
	var texts []string
	answer := func(word string) func(*engine.Runner) {
		return func(r *engine.Runner) {
			r.Confirm = func(_ context.Context, g *engine.Gate) (engine.Answer, error) {
				texts = append(texts, g.Text)
				return engine.Answer{Typed: word}, nil
			}
		}
	}
	_, err := run(t, pb, nil, nil, answer("no"))
	var ce *engine.ConfirmError
	if !errors.As(err, &ce) {
		t.Fatalf("run: %v, want the gate refused", err)
	}
	if _, err := os.Stat("log"); !os.IsNotExist(err) {
		b, _ := os.ReadFile("log")
		t.Fatalf("declining the included gate left changes made:\n%s", b)
	}
	if !slices.Equal(texts, []string{"go on? observed-before-any-change"}) {
		t.Errorf("gate texts: %q, want the observation of the step before it", texts)
	}
	rec, err := run(t, pb, nil, nil, answer("yes-inner"))
	if err != nil {
		t.Fatal(err)
	}
	if log, _ := os.ReadFile("log"); string(log) != "outer stop\ninner change\n" {
		t.Errorf("log:\n%s\nwant the includer's change, then the included one", log)
	}
	var ids []string
	for _, e := range rec.events {
		if e.Type == engine.EventStepEnd {
			ids = append(ids, e.ID)
		}
	}
	if want := []string{"probe", "inner/look", "inner/decision", "stop", "inner/change"}; !slices.Equal(ids, want) {
		t.Errorf("steps ran: %q, want %q", ids, want)
	}
}

// TestIncludedGateAfterAChangeRefused: validate refuses an include whose
// step gate would be asked after the includer changed something, and a
// confirm_first whose steps before the gate may change something.
func TestIncludedGateAfterAChangeRefused(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeTree(t, dir, map[string]string{
		"late.yaml":      strings.Replace(gatedOuter, "    confirm_first: true\n", "", 1),
		"early.yaml":     strings.Replace(gatedOuter, "gated.yaml", "changing.yaml", 1),
		"lib/gated.yaml": gatedInner,
		"lib/changing.yaml": strings.Replace(gatedInner, `"echo observed-before-any-change", read_only: true`,
			`"echo observed-before-any-change >> log"`, 1),
	})
	// Errors only: the bare test steps draw lint warnings, beside the point.
	for _, c := range []struct{ file, want string }{
		{"late.yaml", `late.yaml:9:15: lib/gated.yaml asks for a confirmation (step decision) after step stop may have changed something: an operator who declines would leave that change made; add confirm_first: true (its steps up to the gate then run before stop), or include it before stop [invalid-value]`},
		{"early.yaml", `early.yaml:10:20: confirm_first: step "look" of lib/changing.yaml (lib/changing.yaml:4:5) comes before its last confirmation gate and may change something: only read-only steps can run before this playbook's first change; move the gate, or the change, in lib/changing.yaml [invalid-value]`},
	} {
		t.Run(c.file, func(t *testing.T) { wantOnlyDiagnostic(t, c.file, c.want, diag.Error) })
	}
}

// TestIncludeWhen: an include whose when is false runs none of the
// included playbook's steps and checks none of its guards (a guard that
// would refuse does not block the run), takes none of its locks, and
// reports its steps skipped; true, it runs as any include.
func TestIncludeWhen(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	outer := strings.Replace(outerPlaybook, "    playbook: lib/inner.yaml\n", "    playbook: lib/inner.yaml\n    when: params.who != \"nobody\"\n", 1)
	writeTree(t, dir, map[string]string{"outer.yaml": outer, "lib/inner.yaml": innerPlaybook, "refuse": ""})
	pb := loadFile(t, "outer.yaml")
	var locks []string
	lock := func(r *engine.Runner) {
		r.Lock = func(_ context.Context, name string) (func(), error) {
			locks = append(locks, name)
			return func() {}, nil
		}
	}
	rec, err := run(t, pb, map[string]string{"who": "nobody"}, map[string]string{"token": "a-long-enough-token"}, lock)
	if err != nil {
		t.Fatalf("run with the include's when false: %v (its guard must not count)", err)
	}
	if log, _ := os.ReadFile("log"); string(log) != "outer first\nouter last changed\n" {
		t.Errorf("log:\n%s\nwant the includer's steps only", log)
	}
	if !slices.Equal(locks, []string{"outer"}) {
		t.Errorf("locks taken: %q, want the includer's only", locks)
	}
	var skipped []string
	for _, e := range rec.events {
		if e.Type == engine.EventStepEnd && e.Status == engine.StatusSkipped {
			skipped = append(skipped, e.ID+": "+e.Message)
		}
		if e.Type == engine.EventGuard && strings.Contains(e.Name, "inner") {
			t.Errorf("a guard of the skipped include was checked: %+v", e)
		}
	}
	want := []string{`inner/first: when of inner is false: params.who != "nobody"`, `inner/after: when of inner is false: params.who != "nobody"`}
	if !slices.Equal(skipped, want) {
		t.Errorf("skipped: %q, want %q", skipped, want)
	}
	// True: the include runs, and its guard refuses the run.
	os.Remove("log")
	_, err = run(t, pb, map[string]string{"who": "bob"}, map[string]string{"token": "a-long-enough-token"})
	var ge *engine.GuardError
	if !errors.As(err, &ge) {
		t.Fatalf("run with the include's when true: %v, want its guard's refusal", err)
	}
	os.Remove("refuse")
	if _, err := run(t, pb, map[string]string{"who": "bob"}, map[string]string{"token": "a-long-enough-token"}); err != nil {
		t.Fatal(err)
	}
	if log, _ := os.ReadFile("log"); !strings.Contains(string(log), "inner hello bob 3 b\n") {
		t.Errorf("log:\n%s\nwant the included steps", log)
	}
}
