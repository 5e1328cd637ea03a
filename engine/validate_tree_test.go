package engine_test

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/testkit"
)

// writeTree writes files (path: content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	testkit.WriteTree(t, dir, files)
}

const warnPlaybook = `version: 1
name: warn
params:
  unused: {type: string, default: x}
steps:
  - hosts: [a, b]
    ssh-exec: {command: "true", read_only: true}
`

// TestValidateTree: a directory is searched for the playbooks and
// inventories in it (not other YAML, not dot directories), standard input
// and a bundled playbook are checked beside it, and findings are dropped
// by a comment next to them and by path in the config file.
func TestValidateTree(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeTree(t, dir, map[string]string{
		"a.yaml": `version: 1
name: a
params:
  unused: {type: string, default: x}  # runbook:ignore unused-param
steps:
  - hosts: [a, b]
    ssh-exec: {command: "true", read_only: true}
`,
		"legacy/warn.yaml": warnPlaybook,
		"sub/bad.yml":      "version: 1\nname: bad\nsteps:\n- [\n",
		"inv.yaml":         "hosts:\n  pg1: {address: 10.0.0.1}\n",
		"compose.yml":      "services:\n  db: {image: postgres}\n",
		".hidden/x.yaml":   "version: 2\n",
		"notes.txt":        "version: 2\n",
		".runbook.yaml":    "ignore:\n  - path: legacy/\n    rules: [unused-param]\n",
	})
	stdin := "version: 1\nname: piped\nsteps:\n  - ssh-exec: {command: \"true\", read_only: true}\n    tiemout: 5s\n"
	rep, err := engine.Validate([]string{".", "-", "pg-ha/check"}, engine.ValidateOptions{
		Stdin: strings.NewReader(stdin), StdinName: "piped.yaml", Config: engine.ConfigFile})
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []string{"a.yaml", "inv.yaml", "legacy/warn.yaml", "sub/bad.yml", "piped.yaml", "bundled:pg-ha/check.yaml"}
	if !reflect.DeepEqual(rep.Files, wantFiles) {
		t.Errorf("files checked: %q, want %q", rep.Files, wantFiles)
	}
	if rep.ConfigErr != nil {
		t.Errorf("config: %v", rep.ConfigErr)
	}
	got := printed(rep.Diagnostics)
	want := []string{
		`a.yaml:6:5: warning: step "ssh-exec" runs on every host at once: bound it with parallel: N [unbounded-fanout]`,
		`legacy/warn.yaml:6:5: warning: step "ssh-exec" runs on every host at once: bound it with parallel: N [unbounded-fanout]`,
		`piped.yaml:5:5: unknown key "tiemout" in step (did you mean "timeout"?); expected a step type (capture, file-patch, http, pg-settings, sql, ssh-exec, systemd, wait-until) or one of: id, name, host, hosts, parallel, max_failures, when, timeout, retries, retry_delay, become, assert, message, print, for_each, confirm, tolerate, failed_when [unknown-key]`,
		`sub/bad.yml:4:0: did not find expected node content (in the block or flow collection that starts on this line) (at the end of the file) [yaml-syntax]`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The lines of the files with findings, for the reports that show them.
	if lines := rep.Sources["piped.yaml"]; len(lines) < 5 || lines[4] != "    tiemout: 5s" {
		t.Errorf("source of piped.yaml: %q", lines)
	}
	if _, ok := rep.Sources["inv.yaml"]; ok {
		t.Error("the source of a file without findings is kept")
	}

	// A broken config file is reported and not applied at all.
	writeTree(t, dir, map[string]string{".runbook.yaml": "ignore:\n  - path: legacy/\n    rulez: [unused-param]\n"})
	rep, err = engine.Validate([]string{"legacy"}, engine.ValidateOptions{Config: engine.ConfigFile})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ConfigErr == nil || !strings.Contains(rep.ConfigErr.Error(), ".runbook.yaml: yaml: unmarshal errors:\n  line 3: field rulez not found") {
		t.Errorf("broken config: %v", rep.ConfigErr)
	}
	if len(rep.Diagnostics) != 2 || rep.Diagnostics[0].Rule != diag.RuleUnusedParam || rep.Diagnostics[1].Rule != diag.RuleUnboundedFanout {
		t.Errorf("with a broken config: %v", rep.Diagnostics)
	}

	// A path that is neither a file, a directory nor a bundled playbook.
	if _, err := engine.Validate([]string{"a.yaml", "missing.yaml"}, engine.ValidateOptions{}); err == nil || err.Error() != "missing.yaml: no such file or directory" {
		t.Errorf("a missing path: %v", err)
	}
}

// TestValidateHostsAgainstInventory: with an inventory, a playbook's host
// that the inventory lacks is an error at the host's position; a file
// named on the command line is checked even when it does not look like a
// playbook.
func TestValidateHostsAgainstInventory(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"hosts.yaml": "version: 1\nname: hosts\nsteps:\n  - id: a\n    host: pg9\n    ssh-exec: {command: \"true\", read_only: true}\n",
		"other.yml":  "services: {}\n",
	})
	inv := mustInventory(t, "hosts:\n  pg1: {address: 10.0.0.1}\n")
	hosts, other := filepath.Join(dir, "hosts.yaml"), filepath.Join(dir, "other.yml")
	rep, err := engine.Validate([]string{hosts, other}, engine.ValidateOptions{Inventory: inv})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range rep.Diagnostics {
		got = append(got, strings.TrimPrefix(d.String(), dir+"/"))
	}
	want := []string{
		`hosts.yaml:4:5: unknown host "pg9": not in inventory inv.yaml (did you mean "pg1"?) [undefined-reference]`,
		`other.yml:1:1: the playbook needs "name": the playbook's name, such as pg-ha/promote-standby [missing-field]`,
		`other.yml:1:1: the playbook needs "steps": the steps, run in order [missing-field]`,
		`other.yml:1:1: unknown key "services" in the playbook (did you mean "version"?); expected one of: version, name, description, params, secrets, vars_files, vars, facts, lock, require, confirm, steps, outputs, outcome [unknown-key]`,
	}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(rep.Files, []string{hosts, other}) {
		t.Errorf("diagnostics:\n%s\nwant:\n%s\nfiles %q", strings.Join(got, "\n"), strings.Join(want, "\n"), rep.Files)
	}
}

// TestInventoryDuplicateKeys: a host written twice in an inventory (two
// addresses, one of them silently lost) is an error at the second, as is
// a key written twice in a host; the inventory is not used.
func TestInventoryDuplicateKeys(t *testing.T) {
	src := "hosts:\n  pg1: {address: 10.0.0.1, port: 22, port: 2222}\n  pg2: {address: 10.0.0.2}\n  pg1: {address: 10.0.0.9}\n"
	inv, ds := engine.ParseInventory("inv.yaml", []byte(src))
	got := printed(ds)
	want := []string{
		`inv.yaml:2:38: key "port" is written twice in this mapping (first at line 2, column 28): YAML keeps only one of the values; remove one [duplicate-key]`,
		`inv.yaml:4:3: key "pg1" is written twice in this mapping (first at line 2, column 3): YAML keeps only one of the values; remove one [duplicate-key]`,
	}
	if inv != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("inventory %v, diagnostics:\n%s\nwant:\n%s", inv, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
