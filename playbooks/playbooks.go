// Package playbooks holds the playbooks bundled in the binary.
package playbooks

import (
	"embed"
	"io/fs"
	"sort"
	"strings"
)

//go:embed */*.yaml
var files embed.FS

// Names returns the names of the bundled playbooks, such as
// pg-ha/promote-standby, sorted.
func Names() []string {
	var out []string
	_ = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".yaml") && !strings.HasSuffix(p, VarsSuffix) {
			out = append(out, strings.TrimSuffix(p, ".yaml"))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// SharedDir holds the bundled pieces that procedures include (a step with
// playbook:), not procedures of their own.
const SharedDir = "shared/"

// Shared reports whether the bundled playbook name is a shared piece.
func Shared(name string) bool { return strings.HasPrefix(name, SharedDir) }

// Lookup returns the source of a bundled playbook.
func Lookup(name string) ([]byte, bool) {
	b, err := files.ReadFile(strings.TrimSuffix(name, ".yaml") + ".yaml")
	return b, err == nil
}

// Path is the file name diagnostics use for a bundled playbook.
func Path(name string) string { return "bundled:" + strings.TrimSuffix(name, ".yaml") + ".yaml" }

// ReadFile returns any file bundled beside the playbooks, such as the vars
// files they share (shared/pg-layout.vars.yaml), by its path under the
// bundle.
func ReadFile(name string) ([]byte, error) { return files.ReadFile(name) }

// VarsSuffix ends the name of a vars file: values shared by playbooks
// (vars_files:), not a playbook.
const VarsSuffix = ".vars.yaml"
