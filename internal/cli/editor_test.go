package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/cli"
)

// validateYAML validates a YAML file against the JSON Schema in the file
// schemaFile, read from disk as an editor would.
func validateYAML(t *testing.T, schemaFile, file string) error {
	t.Helper()
	sch, err := jsonschema.NewCompiler().Compile(schemaFile)
	if err != nil {
		t.Fatalf("the schema %s does not load: %v", schemaFile, err)
	}
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return sch.Validate(doc)
}

var modeline = regexp.MustCompile(`^# yaml-language-server: \$schema=(\S+)\n`)

// newPlaybook runs runbook new in the current directory and returns the
// file written and the schema its modeline names (resolved as the
// yaml-language-server does: from the playbook's directory).
func newPlaybook(t *testing.T, name string) (file, schemaFile, out string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := cli.Main([]string{"runbook", "new", name}, nil, &stdout, &stderr); code != cli.ExitOK {
		t.Fatalf("runbook new %s: exit %d\n%s", name, code, stderr.String())
	}
	file = name + ".yaml"
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m := modeline.FindSubmatch(src)
	if m == nil {
		t.Fatalf("%s has no schema modeline on its first line:\n%s", file, src)
	}
	ref := string(m[1])
	if strings.Contains(ref, "://") || filepath.IsAbs(ref) {
		t.Errorf("the modeline names %s: want a path relative to the playbook, which holds in every clone", ref)
	}
	return file, filepath.Join(filepath.Dir(file), filepath.FromSlash(ref)), stdout.String()
}

// TestNewModelineResolves: a playbook made by runbook new validates
// against the schema file its modeline names, which exists: written into
// ./schema when there is none, the nearest schema/ above it otherwise.
func TestNewModelineResolves(t *testing.T) {
	t.Chdir(t.TempDir())
	file, sch, out := newPlaybook(t, "team/failover")
	if sch != filepath.Join("schema", "playbook.schema.json") || !strings.Contains(out, "wrote schema/playbook.schema.json") {
		t.Errorf("the modeline names %s (output %q); want schema/playbook.schema.json, written", sch, out)
	}
	if err := validateYAML(t, sch, file); err != nil {
		t.Errorf("%s does not pass the schema its modeline names: %v", file, err)
	}
	// A second one finds the same schema, and writes none.
	file, sch2, out := newPlaybook(t, "team/deep/rejoin")
	if sch2 != filepath.Join("team", "deep", "..", "..", "schema", "playbook.schema.json") || strings.Contains(out, "schema.json") {
		t.Errorf("the second playbook's modeline names %s (output %q)", sch2, out)
	}
	if err := validateYAML(t, sch2, file); err != nil {
		t.Errorf("%s does not pass the schema its modeline names: %v", file, err)
	}
	// The schema rejects what runbook rejects, so the check can fail.
	bad := filepath.Join("team", "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nname: x\nsteps:\n  - ssh-exec: {comand: x}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := validateYAML(t, sch, bad); err == nil {
		t.Error("the schema accepts an unknown key of ssh-exec")
	}
}

// TestREADMESchemaSetting: the README's VS Code setting works as written
// once runbook schema --write schema has written the files it names.
func TestREADMESchemaSetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^\{ "yaml.schemas": .*\}$`).Find(readme)
	if line == nil {
		t.Fatal("the README has no yaml.schemas setting")
	}
	var setting map[string]map[string][]string
	if err := json.Unmarshal(line, &setting); err != nil {
		t.Fatalf("the README's setting is not JSON: %v\n%s", err, line)
	}
	t.Chdir(t.TempDir())
	var out, errb bytes.Buffer
	if code := cli.Main([]string{"runbook", "schema", "--write", "schema"}, nil, &out, &errb); code != cli.ExitOK {
		t.Fatalf("runbook schema --write schema: exit %d\n%s", code, errb.String())
	}
	pb, _, _ := newPlaybook(t, "playbooks/team/failover")
	inv := "inventory.yaml"
	if err := os.WriteFile(inv, []byte("hosts:\n  pg1: {address: 10.0.0.11}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for schemaFile, globs := range setting["yaml.schemas"] {
		for _, g := range globs {
			for _, f := range []string{pb, inv} {
				// ** as the extension reads it: any directories.
				re := "^" + strings.NewReplacer("**/", "(.*/)?", "*", "[^/]*", ".", `\.`).Replace(g) + "$"
				if !regexp.MustCompile(re).MatchString(filepath.ToSlash(f)) {
					continue
				}
				checked++
				if err := validateYAML(t, schemaFile, f); err != nil {
					t.Errorf("%s (matched by %s) does not pass %s: %v", f, g, schemaFile, err)
				}
			}
		}
	}
	if checked != 2 {
		t.Errorf("the setting's patterns matched %d of the playbook and the inventory, want each once: %s", checked, line)
	}
}
