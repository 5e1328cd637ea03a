package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/testsshd"
	"github.com/runbook-dev/runbook/internal/transport"
)

// makerPlaybook makes a file on a host once and reads it back: what it
// found and whether it made it are its outputs.
const makerPlaybook = `version: 1
name: t/maker
params:
  node: {type: host}
  path: {type: string}
steps:
  - id: make
    host: ${{ params.node }}
    ssh-exec:
      command: echo made-on-$(hostname -s 2>/dev/null || echo host) > ${{ params.path }}
      creates: ${{ params.path }}
  - id: read
    host: ${{ params.node }}
    ssh-exec: {command: "cat ${{ params.path }}", read_only: true}
outputs:
  made: ${{ steps.make.status == "changed" }}
  content: ${{ trim(steps.read.result.stdout) }}
`

// userPlaybook runs the maker, then uses what it gave back: its content
// on a command line, whether it made the file in a when:.
const userPlaybook = `version: 1
name: t/user
params:
  node: {type: host}
  dir: {type: string}
  make: {type: bool, default: true}
steps:
  - id: part
    playbook: lib/maker.yaml
    when: params.make
    params:
      node: ${{ params.node }}
      path: ${{ params.dir }}/made
  - id: use
    host: ${{ params.node }}
    ssh-exec:
      command: echo "${{ steps.part.status }} ${{ steps.part.result.content ?? "none" }}" >> ${{ params.dir }}/log
  - id: first_time
    host: ${{ params.node }}
    when: steps.part.result.made ?? false
    ssh-exec:
      command: echo first time >> ${{ params.dir }}/log
`

// TestIncludeOutputs: an included playbook's outputs, computed from its
// own steps' results over SSH, are the including step's result: read
// after it on a command line and in a when:, "changed" as its status when
// a step of it changed something; a rerun (nothing to make) gives the
// same content and made false; an include whose when: is false is
// skipped with no outputs.
func TestIncludeOutputs(t *testing.T) {
	s := testsshd.Start(t)
	dir := t.TempDir()
	t.Chdir(dir)
	writeTree(t, dir, map[string]string{"user.yaml": userPlaybook, "lib/maker.yaml": makerPlaybook})
	pb := loadFile(t, "user.yaml")
	inv := mustInventory(t, s.Inventory("n1"))
	work := t.TempDir()
	connect := func(r *engine.Runner) {
		r.Inventory = inv
		r.Connect = func(ctx context.Context, h *engine.HostSpec) (transport.Conn, error) {
			return transport.DialSSH(ctx, transport.SSHConfig{Name: h.Name, Address: h.Address, Port: h.Port, User: h.User, IdentityFiles: []string{h.IdentityFile}, KnownHosts: []string{h.KnownHosts}})
		}
	}
	made, err := os.ReadFile(filepath.Join(work, "made"))
	if err == nil {
		t.Fatalf("made exists before the run: %s", made)
	}
	for _, p := range []map[string]string{{"make": "true"}, {"make": "true"}, {"make": "false"}} {
		p["node"], p["dir"] = "n1", work
		if _, err := run(t, pb, p, nil, connect); err != nil {
			t.Fatal(err)
		}
	}
	made, err = os.ReadFile(filepath.Join(work, "made"))
	if err != nil {
		t.Fatal(err)
	}
	content := strings.TrimSpace(string(made))
	log, _ := os.ReadFile(filepath.Join(work, "log"))
	want := []string{"changed " + content, "first time", "ok " + content, "skipped none"}
	if got := strings.Split(strings.TrimSpace(string(log)), "\n"); !slices.Equal(got, want) {
		t.Errorf("log: %q, want %q", got, want)
	}
}

// TestIncludeOutputsValidate: reading an output the included playbook
// does not declare, or declaring one that may hold a secret, is one
// positioned error.
func TestIncludeOutputsValidate(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	secretOut := strings.Replace(makerPlaybook, "  path: {type: string}\n", "  path: {type: string}\nsecrets:\n  pw: {env: PW}\n", 1) + "  pw: ${{ secrets.pw }}\n"
	writeTree(t, dir, map[string]string{
		"lib/maker.yaml":  makerPlaybook,
		"lib/secret.yaml": secretOut,
		"typo.yaml":       strings.Replace(userPlaybook, "steps.part.result.made ??", "steps.part.result.mad ??", 1),
		"secret.yaml":     strings.Replace(userPlaybook, "lib/maker.yaml", "lib/secret.yaml", 1),
	})
	wantOnlyDiagnostic(t, "typo.yaml", `typo.yaml:20:29: unknown field mad [expr-type]`, diag.Error)
	wantOnlyDiagnostic(t, "secret.yaml", `lib/secret.yaml:20:7: output pw may hold secrets.pw: the including playbook reads it as a step's result, unmasked; give the secret to both playbooks instead [secret-exposed]`, diag.Error)
}

// TestBundledFindingOnce: validating the bundle's own files by path (the
// repository's playbooks/), a finding in a piece that a checked playbook
// also includes by its bundled name is reported once, at the path.
func TestBundledFindingOnce(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeTree(t, dir, map[string]string{
		"playbooks/t/user.yaml":  "version: 1\nname: t/user\nsteps:\n  - id: part\n    playbook: t/piece\n",
		"playbooks/t/piece.yaml": "version: 1\nname: t/piece\nsteps:\n  - id: change\n    ssh-exec: {command: \"touch x\"}\n",
	})
	l := loader()
	l.ReadFile = func(name string) ([]byte, error) {
		if rest, ok := strings.CutPrefix(name, engine.BundledPrefix); ok {
			return os.ReadFile(filepath.Join(dir, "playbooks", rest))
		}
		return os.ReadFile(name)
	}
	rep, err := engine.Validate([]string{"playbooks"}, engine.ValidateOptions{Loader: l})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range rep.Diagnostics {
		got = append(got, d.String())
	}
	want := []string{`playbooks/t/piece.yaml:4:5: warning: step "change" changes its host with no guard (require:) before it and no verification (assert or wait-until) from it on [unguarded-change]`}
	if !slices.Equal(got, want) {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
