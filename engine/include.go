package engine

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/playbooks"
	"github.com/runbook-dev/runbook/steps"
)

// varsFileFields are the keys of a vars file: values shared by several
// playbooks (vars_files:). A vars file is a part of the playbooks that list
// it: its params, vars and facts are theirs, checked with them.
var varsFileFields = []steps.Field{
	{Name: "description", Kind: steps.Literal, Doc: "what the values are for", Example: "PostgreSQL's layouts: where each packaging puts its binaries, data, configuration and unit"},
	{Name: "params", Kind: steps.Object, Doc: "parameters the values read, declared once for every playbook that lists the file"},
	{Name: "vars", Kind: steps.StringMap, Doc: "values computed from params when the run starts, available as vars.NAME; evaluated before the playbook's own vars"},
	{Name: "facts", Kind: steps.Object, Doc: "read-only observations of hosts, made before the guards (see facts: of a playbook)"},
}

// VarsFileFields returns the keys of a vars file, for the schema.
func VarsFileFields() []steps.Field { return varsFileFields }

// BundledPrefix starts the file name of a bundled playbook or vars file.
const BundledPrefix = "bundled:"

// VarsFile is a vars file a playbook lists.
type VarsFile struct {
	// Ref is the path as the playbook writes it; Path is where it was read.
	Ref, Path   string
	Description string
	Pos         diag.Pos
}

// varsFile is a vars file being decoded: its own decoder (its file name and
// source for positions) over the playbook's scope.
type varsFile struct {
	d   *steps.Decoder
	top steps.Body
	src []byte
}

// resolveRef returns where a path listed in from is: relative to from's
// directory, in the bundle for a bundled playbook.
func resolveRef(from, ref string) string {
	if rest, ok := strings.CutPrefix(from, BundledPrefix); ok {
		return BundledPrefix + path.Join(path.Dir(rest), ref)
	}
	if filepath.IsAbs(ref) {
		return ref
	}
	return filepath.Join(filepath.Dir(from), ref)
}

func (l *Loader) readFile(name string) ([]byte, error) {
	if l.ReadFile != nil {
		return l.ReadFile(name)
	}
	if rest, ok := strings.CutPrefix(name, BundledPrefix); ok {
		return playbooks.ReadFile(rest)
	}
	return os.ReadFile(name)
}

// readVarsFiles reads the files of vars_files: (n) and checks their keys.
// Problems are reported where the playbook lists the file, or in the file
// at their place.
func (l *Loader) readVarsFiles(d *steps.Decoder, pb *Playbook, n *yaml.Node) []*varsFile {
	var out []*varsFile
	seen := map[string]bool{}
	for _, e := range n.Content {
		if e.Kind != yaml.ScalarNode || e.Value == "" {
			d.Errorf(e, diag.RuleTypeMismatch, "vars_files lists paths of vars files, relative to the playbook")
			continue
		}
		if strings.Contains(e.Value, "${{") {
			d.Errorf(e, diag.RuleInvalidValue, "vars_files: %q: a path is read when the playbook loads, before any value is known: write it without ${{ }}", e.Value)
			continue
		}
		p := resolveRef(pb.File, e.Value)
		if seen[p] {
			d.Errorf(e, diag.RuleInvalidValue, "vars_files: %s is listed twice", e.Value)
			continue
		}
		seen[p] = true
		src, err := l.readFile(p)
		if err != nil {
			d.Errorf(e, diag.RuleInvalidValue, "vars_files: cannot read %s (%s): %v; paths are relative to the playbook", e.Value, p, err)
			continue
		}
		vd := &steps.Decoder{Diags: &diag.List{File: p}, Scope: d.Scope, Source: src, DecodeProbe: d.DecodeProbe}
		if d.Insides != nil {
			vd.Insides = &[]*steps.Inside{}
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(src, &doc); err != nil {
			d.Errorf(e, diag.RuleYAMLSyntax, "vars_files: %s: %s", e.Value, strings.TrimPrefix(err.Error(), "yaml: "))
			continue
		}
		resolveAliases(&doc, map[*yaml.Node]bool{})
		if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
			d.Errorf(e, diag.RuleNotAPlaybook, "vars_files: %s is not a mapping of params, vars and facts", e.Value)
			continue
		}
		top := vd.Check(withoutExtensions(doc.Content[0]), varsFileFields, "the vars file")
		pb.VarsFiles = append(pb.VarsFiles, &VarsFile{Ref: e.Value, Path: p, Description: vd.Literal(top.Get("description")), Pos: steps.Pos(e)})
		out = append(out, &varsFile{d: vd, top: top, src: src})
	}
	return out
}

// finishVarsFiles adds the vars files' diagnostics and what their texts
// hold to the playbook's.
func (l *Loader) finishVarsFiles(ds *diag.List, vfs []*varsFile) {
	for _, vf := range vfs {
		if l.Inside != nil && vf.d.Insides != nil {
			for _, x := range l.Inside.Check(*vf.d.Insides) {
				x.File = vf.d.Diags.File
				vf.d.Diags.Items = append(vf.d.Diags.Items, x)
			}
		}
		suppress(vf.d.Diags, vf.src)
		ds.Items = append(ds.Items, vf.d.Diags.Items...)
	}
}

// sourceWith is the playbook's text followed by its vars files': what its
// hash covers (a resume refuses a changed playbook, vars files included)
// and what a secret must not occur in.
func sourceWith(src []byte, vfs []*varsFile) []byte {
	if len(vfs) == 0 {
		return src
	}
	var b bytes.Buffer
	b.Write(src)
	for _, vf := range vfs {
		fmt.Fprintf(&b, "\n# vars file %s\n", vf.d.Diags.File)
		b.Write(vf.src)
	}
	return b.Bytes()
}

// checkDuplicate reports a name declared in a vars file and again later
// (in another vars file or the playbook); a name written twice in one
// mapping is the loader's duplicate-key.
func checkDuplicate(d *steps.Decoder, k *yaml.Node, what string, seen map[string]string) bool {
	if prev, ok := seen[k.Value]; ok {
		if !strings.HasPrefix(prev, d.Diags.File+":") {
			d.Errorf(k, diag.RuleInvalidValue, "%s %s is already declared at %s: declare it once", what, k.Value, prev)
		}
		return false
	}
	seen[k.Value] = fmt.Sprintf("%s:%d:%d", d.Diags.File, k.Line, k.Column)
	return true
}
