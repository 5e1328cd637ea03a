package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/runbook-dev/runbook/schema"
	"github.com/runbook-dev/runbook/steps"
)

// starter is the playbook runbook new writes: every part commented, and
// valid as it is.
const starter = `# yaml-language-server: $schema=%[3]s
# A runbook playbook. Validate it with: runbook validate %[1]s
# See what it would change with:       runbook plan %[1]s -i inventory.yaml -p target=HOST
version: 1
name: %[2]s
description: Say in one sentence what this procedure does.

# Parameters, given with -p name=value. A parameter without a default is required.
params:
  target: {type: host, description: the host to act on}
  path: {type: string, default: /etc/example.conf, description: the file to edit}

# Secrets come from the environment, a file, or a prompt; they never appear in output
# and are refused on command lines (pass them with env: or stdin:).
# secrets:
#   password: {env: EXAMPLE_PASSWORD, description: the service password}

# Guards: read-only probes checked before the first step. If any fails, nothing runs.
require:
  - name: the host is reachable and the file exists
    host: ${{ params.target }}
    ssh-exec:
      command: test -f ${{ params.path }}
    assert: result.reachable && result.exit_code == 0
    hint: create ${{ params.path }} first, or pass -p path=...

# A confirmation gate: once the guards pass, the operator reads the text and types the
# word to go on (--yes answers it, for automation). A step can have one too, asked just
# before it changes anything, whose text can show what earlier steps found.
# confirm:
#   text: Change ${{ params.path }} on ${{ params.target }}?
#   word: ${{ params.target }}

steps:
  - id: setting
    name: Set the example setting
    host: ${{ params.target }}
    file-patch:
      path: ${{ params.path }}
      set:
        example_setting: "on"
  - id: check
    name: Check the setting took
    host: ${{ params.target }}
    ssh-exec:
      command: grep -c '^example_setting' ${{ params.path }}
      read_only: true
    assert: trim(result.stdout) == "1"
    message: example_setting is not set exactly once in ${{ params.path }}
`

func newCmd(e *Env, c *cobra.Command) func([]string) int {
	// Flags are parsed, though new has none, so that --help prints the
	// usage instead of writing --help.yaml.
	c.Use = "new NAME (writes NAME.yaml, a commented starter playbook)"
	return func(pos []string) int { return e.newPlaybook(pos) }
}

// newPlaybook writes the starter playbook pos names.
func (e *Env) newPlaybook(pos []string) int {
	if len(pos) != 1 {
		return e.usageError("new needs one name: runbook new team/procedure (writes team/procedure.yaml)")
	}
	if strings.HasPrefix(pos[0], "-") {
		return e.usageError("new: %q looks like an option, not a name (write ./%s to mean a file)", pos[0], pos[0])
	}
	name := strings.TrimSuffix(pos[0], ".yaml")
	file := name + ".yaml"
	if _, err := os.Stat(file); err == nil {
		return e.failed("%s exists; nothing written", file)
	} else if !errors.Is(err, os.ErrNotExist) {
		return e.failed("%v", err)
	}
	if dir := filepath.Dir(file); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return e.failed("%v", err)
		}
	}
	schemaRef, wrote, err := schemaFor(file)
	if err != nil {
		return e.failed("the schema for editors: %v; nothing written", err)
	}
	if err := os.WriteFile(file, []byte(fmt.Sprintf(starter, file, name, schemaRef)), 0o644); err != nil {
		return e.failed("%v", err)
	}
	fmt.Fprintf(e.Stdout, "wrote %s\n", file)
	if wrote != "" {
		fmt.Fprintf(e.Stdout, "wrote %s (the JSON Schema its first line names, for editors; runbook schema --write %s refreshes it)\n", wrote, filepath.Dir(wrote))
	}
	return ExitOK
}

// schemaFor finds the schema a new playbook's modeline names: the nearest
// schema/playbook.schema.json in the playbook's directory or one above it,
// up to the current directory (a repository's, as this one's playbooks
// use). Without one it writes both schemas into ./schema, or into schema/
// beside a playbook outside the current directory (returned as wrote). The reference is relative to the playbook, so that it holds in
// every clone.
func schemaFor(file string) (ref, wrote string, err error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", "", err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return "", "", err
	}
	dir := filepath.Dir(abs)
	found := ""
	for d := dir; ; d = filepath.Dir(d) {
		if st, err := os.Stat(filepath.Join(d, "schema", playbookSchemaFile)); err == nil && st.Mode().IsRegular() {
			found = filepath.Join(d, "schema", playbookSchemaFile)
			break
		}
		if d == cwd || d == filepath.Dir(d) {
			break
		}
	}
	if found == "" {
		// In ./schema, or beside a playbook written outside the current
		// directory.
		base := cwd
		if rel, err := filepath.Rel(cwd, dir); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			base = dir
		}
		sdir := filepath.Join(base, "schema")
		if err := os.MkdirAll(sdir, 0o755); err != nil {
			return "", "", err
		}
		for name, b := range map[string][]byte{playbookSchemaFile: schema.Playbook(steps.Builtin()), inventorySchemaFile: schema.Inventory()} {
			if err := os.WriteFile(filepath.Join(sdir, name), b, 0o644); err != nil {
				return "", "", err
			}
		}
		found = filepath.Join(sdir, playbookSchemaFile)
		wrote = found
		if rel, err := filepath.Rel(cwd, found); err == nil && !strings.HasPrefix(rel, "..") {
			wrote = rel
		}
	}
	ref, err = filepath.Rel(dir, found)
	if err != nil {
		return "", "", err
	}
	return filepath.ToSlash(ref), wrote, nil
}
