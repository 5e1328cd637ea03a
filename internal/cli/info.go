package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/playbooks"
	"github.com/runbook-dev/runbook/schema"
	"github.com/runbook-dev/runbook/steps"
)

func listCmd(e *Env, c *cobra.Command) func([]string) int {
	all := c.Flags().Bool("all", false, "also list the shared pieces (shared/*) that the procedures include")
	return func(args []string) int { return e.list(args, *all) }
}

// list prints the bundled procedures and what each does. The shared pieces
// (shared/*) are parts of procedures, included by them: an operator looking
// for what to run does not want them among the procedures, so they are
// counted under the list, and listed apart with all.
func (e *Env) list(args []string, all bool) int {
	if len(args) > 0 {
		return e.usageError("list takes no arguments")
	}
	l := newLoader()
	line := func(name string) {
		src, _ := playbooks.Lookup(name)
		pb, _ := l.Load(playbooks.Path(name), src)
		desc := "(invalid: runbook validate " + name + ")"
		if pb != nil {
			desc = pb.Description
		}
		fmt.Fprintf(e.Stdout, "%-34s %s\n", name, firstLine(desc))
	}
	var pieces []string
	for _, name := range playbooks.Names() {
		if playbooks.Shared(name) {
			pieces = append(pieces, name)
			continue
		}
		line(name)
	}
	if len(pieces) == 0 {
		return ExitOK
	}
	if !all {
		fmt.Fprintf(e.Stdout, "\n(%d shared pieces that these procedures include are not listed: runbook list --all)\n", len(pieces))
		return ExitOK
	}
	fmt.Fprintf(e.Stdout, "\nShared pieces, included by the procedures above (not meant to be run on their own):\n")
	for _, name := range pieces {
		line(name)
	}
	return ExitOK
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func showCmd(e *Env, c *cobra.Command) func([]string) int {
	c.ValidArgsFunction = bundledNames
	return e.show
}

// show prints the bundled playbook args names, with its vars files, then
// each playbook it includes (and theirs), under a line naming the step
// that includes it: the whole tree a run of it runs.
func (e *Env) show(args []string) int {
	if len(args) != 1 {
		return e.usageError("show needs one bundled playbook name (runbook list shows them)")
	}
	src, ok := playbooks.Lookup(args[0])
	if !ok {
		return e.failed("no bundled playbook %q; runbook list shows them", args[0])
	}
	_, _ = e.Stdout.Write(src)
	pb, _ := newLoader().Load(playbooks.Path(args[0]), src)
	if pb == nil {
		return ExitOK
	}
	// The vars files it lists are part of it; one listed by several
	// playbooks of the tree is printed once.
	shown := map[string]bool{}
	e.showVarsFiles(pb, shown)
	for _, fr := range pb.Frames {
		fmt.Fprintf(e.Stdout, "\n# --- included playbook %s (step %s of %s, line %d): %s ---\n",
			fr.Path(), fr.ID, strings.TrimPrefix(fr.File, engine.BundledPrefix), fr.Pos.Line, fr.Playbook.Name)
		b, err := playbooks.ReadFile(strings.TrimPrefix(fr.Playbook.File, engine.BundledPrefix))
		if err != nil {
			fmt.Fprintf(e.Stdout, "# (cannot read %s: %v)\n", fr.Playbook.File, err)
			continue
		}
		_, _ = e.Stdout.Write(b)
		e.showVarsFiles(fr.Playbook, shown)
	}
	return ExitOK
}

// showVarsFiles prints the vars files pb lists, but those shown already.
func (e *Env) showVarsFiles(pb *engine.Playbook, shown map[string]bool) {
	for _, vf := range pb.VarsFiles {
		if shown[vf.Path] {
			fmt.Fprintf(e.Stdout, "\n# --- vars file %s (vars_files: %s of %s): shown above ---\n", vf.Path, vf.Ref, pb.Name)
			continue
		}
		shown[vf.Path] = true
		b, err := playbooks.ReadFile(strings.TrimPrefix(vf.Path, engine.BundledPrefix))
		if err != nil {
			continue
		}
		fmt.Fprintf(e.Stdout, "\n# --- vars file %s (vars_files: %s of %s) ---\n", vf.Path, vf.Ref, pb.Name)
		_, _ = e.Stdout.Write(b)
	}
}

func schemaCmd(e *Env, c *cobra.Command) func([]string) int {
	c.Use = "schema [playbook|inventory] [--write DIR]"
	c.ValidArgsFunction = fixedValues("playbook", "inventory")
	dir := c.Flags().String("write", "", "write playbook.schema.json and inventory.schema.json into DIR (created if missing), for editors")
	_ = c.MarkFlagDirname("write")
	return func(args []string) int {
		if *dir != "" {
			if len(args) > 0 {
				return e.usageError("schema --write DIR writes both schemas: give no argument")
			}
			return e.writeSchemas(*dir)
		}
		return e.schema(args)
	}
}

// Schema files, as runbook schema --write and runbook new write them.
const (
	playbookSchemaFile  = "playbook.schema.json"
	inventorySchemaFile = "inventory.schema.json"
)

// writeSchemas writes both schemas into dir.
func (e *Env) writeSchemas(dir string) int {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return e.failed("%v", err)
	}
	for name, b := range map[string][]byte{playbookSchemaFile: schema.Playbook(steps.Builtin()), inventorySchemaFile: schema.Inventory()} {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, b, 0o644); err != nil {
			return e.failed("%v", err)
		}
	}
	fmt.Fprintf(e.Stdout, "wrote %s and %s\n", filepath.Join(dir, playbookSchemaFile), filepath.Join(dir, inventorySchemaFile))
	return ExitOK
}

// schema prints the JSON Schema args names.
func (e *Env) schema(args []string) int {
	which := "playbook"
	if len(args) > 1 {
		return e.usageError("schema takes at most one argument: playbook or inventory")
	}
	if len(args) == 1 {
		which = args[0]
	}
	var b []byte
	switch which {
	case "playbook":
		b = schema.Playbook(steps.Builtin())
	case "inventory":
		b = schema.Inventory()
	default:
		return e.usageError("schema: unknown format %q (playbook or inventory)", which)
	}
	_, _ = e.Stdout.Write(b)
	return ExitOK
}
