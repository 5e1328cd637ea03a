package engine_test

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/engine"
)

// fourErrors has four basic errors (an undefined param, an unknown key,
// an unknown step type, a type mismatch) beside seven findings of other
// checks: an unused param, two fan-outs without a bound, an idle confirm,
// and three hosts the inventory does not have.
const fourErrors = `version: 1
name: four
params:
  unused: {type: string}
  host: {type: host}
steps:
  - id: a
    hosts: [all]
    ssh-exec: {command: "echo ${{ params.nope }}", tiemout: 3}
  - id: b
    host: ${{ params.host }}
    shell: {command: "true"}
  - id: c
    host: pg7
    ssh-exec: {command: "systemctl restart x"}
    timeout: 3
  - id: d
    hosts: [all]
    confirm: {text: hi, word: "yes"}
    ssh-exec: {command: "true", read_only: true}
`

// TestValidateOnePass: every check that can run on what could be read
// runs, and the ones that cannot are named.
func TestValidateOnePass(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"four.yaml": fourErrors, "y.yaml": "version: 1\nsteps: [\n"})
	inv := mustInventory(t, "hosts: {pg9: {address: 127.0.0.1}}\n")
	four := filepath.Join(dir, "four.yaml")
	rep, err := engine.Validate([]string{four, filepath.Join(dir, "y.yaml")}, engine.ValidateOptions{Inventory: inv})
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for _, d := range rep.Diagnostics {
		if d.File == four {
			rules = append(rules, d.Rule)
		}
	}
	sort.Strings(rules)
	want := "idle-confirm type-mismatch unbounded-fanout unbounded-fanout undefined-reference undefined-reference undefined-reference undefined-reference unknown-key unknown-step-type unused-param"
	if strings.Join(rules, " ") != want {
		t.Fatalf("rules:\n got %s\nwant %s", strings.Join(rules, " "), want)
	}
	if sk := strings.Join(rep.Skipped[four], "; "); !strings.Contains(sk, "unguarded-change") || !strings.Contains(sk, "inventory") {
		t.Fatalf("skipped on four.yaml: %q", sk)
	}
	if sk := strings.Join(rep.Skipped[filepath.Join(dir, "y.yaml")], "; "); !strings.Contains(sk, "must be valid YAML first") {
		t.Fatalf("skipped on y.yaml: %q", sk)
	}
	// Without an inventory, the hosts are not said to be skipped.
	rep, _ = engine.Validate([]string{four}, engine.ValidateOptions{})
	if sk := strings.Join(rep.Skipped[four], "; "); strings.Contains(sk, "inventory") {
		t.Fatalf("skipped without an inventory: %q", sk)
	}
}
