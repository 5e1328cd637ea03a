package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/tmpl"
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
	// ref is the path as the playbook lists it.
	ref string
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
		out = append(out, &varsFile{ref: e.Value, d: vd, top: top, src: src})
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
		// The path as listed: the same whichever directory the playbook
		// is run (or resumed) from.
		fmt.Fprintf(&b, "\n# vars file %s\n", vf.ref)
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

// includeFields are the keys of a step that runs another playbook.
var includeFields = []steps.Field{
	{Name: "id", Kind: steps.Literal, Required: true, Doc: "names the included playbook's run: its steps are journaled and shown as ID/STEP", Example: "standby"},
	{Name: "name", Kind: steps.Literal, Doc: "what the included playbook does here, shown in the plan", Example: "Make the node a warm standby"},
	{Name: "playbook", Kind: steps.Literal, Required: true, Doc: "the playbook to run: a bundled name (pg-ha/configure-standby), or a file ending in .yaml or .yml, relative to this playbook; its guards and facts are checked with this playbook's, before anything changes, and its lock is taken once", Example: "pg-ha/configure-standby"},
	{Name: "params", Kind: steps.Object, Doc: "the included playbook's params, each a value or ${{ }} of this playbook's params, vars and secrets (computed when the run starts: not steps' results nor facts); checked against its declarations (names, types, required, enum)"},
	{Name: "when", Kind: steps.Expr, Doc: "run the included playbook only when this holds: decided when the run starts, from this playbook's params, vars and secrets (not steps' results nor facts); when false, none of its steps runs and none of its guards, facts, lock or confirmations is checked or asked", Example: "params.standby != \"\""},
	{Name: "confirm_first", Kind: steps.Bool, Doc: "run the included playbook's steps up to its last confirmation gate (they must all be read-only: what the gate shows is observed, nothing changed) before this playbook's first step that may change anything, so that an operator who declines leaves everything as it was; required when this playbook may change something before the include"},
}

// IncludeFields returns the keys of a step that runs another playbook, for
// the schema.
func IncludeFields() []steps.Field { return includeFields }

// Frame is one inclusion of a playbook in another: a step with playbook:,
// replaced by the included playbook's steps. The steps, guards and facts of
// a frame see its own params, vars, facts and steps (the includer's are
// not theirs), and the run's secrets.
type Frame struct {
	// ID is the including step's id; Path (ID after the parents' paths)
	// names the frame in the journal and in messages.
	ID string
	// Ref is the playbook as the including step names it.
	Ref string
	// Playbook is the included playbook as it loaded alone (its own steps
	// are the frame's in the including playbook's Steps).
	Playbook *Playbook
	// Params are the values the includer gives, in the includer's scope.
	Params map[string]*tmpl.Template
	// Parent is the frame that includes this one; nil for the top
	// playbook.
	Parent *Frame
	// File and Pos are where the including step is.
	File string
	Pos  diag.Pos
	// Early is how many of the included playbook's first steps (up to its
	// last gate, all read-only) run before the includer's first change
	// (confirm_first); 0 runs them all in place.
	Early int
	// confirmFirst says confirm_first: true was written (Early may be 0
	// when it was refused).
	confirmFirst bool
	// When, when set, decides in the includer's scope when the run starts
	// whether the included playbook runs at all.
	When *tmpl.Expr
	// last is the index of its last step in the steps of the whole tree:
	// once it is done, the includer gets its outputs (closeFrame).
	last int
}

// Path returns the frame's ID after its parents': "outer/inner".
func (f *Frame) Path() string {
	if f.Parent == nil {
		return f.ID
	}
	return f.Parent.Path() + "/" + f.ID
}

// isInclude says whether a step node runs another playbook.
func isInclude(n *yaml.Node) bool { return valueOf(n, "playbook") != nil }

// inclusion is a frame waiting to be put in place of its step: at is the
// number of the includer's own steps before it.
type inclusion struct {
	at    int
	frame *Frame
}

// includeRef returns where a playbook: reference is: a file relative to
// the including playbook when it ends in .yaml or .yml, a bundled playbook
// otherwise.
func includeRef(from, ref string) string {
	if strings.HasSuffix(ref, ".yaml") || strings.HasSuffix(ref, ".yml") {
		return resolveRef(from, ref)
	}
	return BundledPrefix + ref + ".yaml"
}

// decodeInclude decodes a step that runs another playbook, loads that
// playbook (stack holds the files being loaded, to find cycles) and checks
// the params given against its declarations. Problems inside the included
// file are reported there; it returns nil when there is one.
func (l *Loader) decodeInclude(d *steps.Decoder, from string, n *yaml.Node, stack []string) *Frame {
	where := "the include step"
	if id := valueOf(n, "id"); id != nil {
		where = fmt.Sprintf("step %q", id.Value)
	}
	f := d.Check(withoutHosts(d, n), includeFields, where)
	id, refNode := f.Get("id"), f.Get("playbook")
	if id == nil || refNode == nil {
		return nil
	}
	if !checkIdent(d, id, "step") {
		return nil
	}
	delete(d.Scope.Later, id.Value)
	ref := refNode.Value
	if strings.Contains(ref, "${{") {
		d.Errorf(refNode, diag.RuleInvalidValue, "playbook: %q: the included playbook is read when this one loads, before any value is known: write it without ${{ }}", ref)
		return nil
	}
	p := includeRef(from, ref)
	if i := slices.Index(stack, p); i >= 0 {
		chain := append(slices.Clone(stack[i:]), p)
		d.Errorf(refNode, diag.RuleInvalidValue, "playbook: %s includes itself (%s): a playbook cannot run itself, directly or through another; remove one of these includes", ref, strings.Join(chain, " → "))
		return nil
	}
	src, err := l.readFile(p)
	if err != nil {
		d.Errorf(refNode, diag.RuleInvalidValue, "playbook: cannot read %s (%s): %v; a name ending in .yaml or .yml is a file relative to this playbook, any other a bundled playbook (runbook list)", ref, p, errors.Unwrap(err))
		return nil
	}
	when := includeWhen(d, f.Get("when"))
	given, taint := includeValues(d, ref, f.Get("params"))
	child, cds, _ := l.loadStack(p, src, append(slices.Clone(stack), p), taint)
	d.Diags.Items = append(d.Diags.Items, cds...)
	// Its result is known from here on, even when it has errors: those
	// are reported in its file, not again where the includer reads it.
	d.Scope.Steps[id.Value] = tmpl.StepEntry(tmpl.AnyMap)
	if child != nil {
		d.Scope.Steps[id.Value] = includeEntryType(child)
	}
	if child == nil || diag.HasErrors(cds) {
		return nil
	}
	fr := &Frame{ID: id.Value, Ref: ref, Playbook: child, Params: map[string]*tmpl.Template{}, File: from, Pos: steps.Pos(n), When: when}
	l.includeParams(d, fr, f.Get("params"), refNode, given)
	if cf := f.Get("confirm_first"); d.Bool(cf) {
		fr.confirmFirst = true
		fr.Early = earlyStepsOf(d, cf, ref, child)
	}
	return fr
}

// earlyStepsOf returns how many of an included playbook's first steps
// confirm_first (at n) runs before the includer's first change: every
// step up to its last gate, each of which must change nothing (a
// read-only step, or one that stands only for its gate) and run on its
// own (not in a batch). 0 with an error when that does not hold.
func earlyStepsOf(d *steps.Decoder, n *yaml.Node, ref string, child *Playbook) int {
	last := -1
	for i, s := range child.Steps {
		if s.Confirm != nil {
			last = i
		}
	}
	if last < 0 {
		d.Errorf(n, diag.RuleInvalidValue, "confirm_first: %s asks for no confirmation in its steps: remove confirm_first", ref)
		return 0
	}
	for _, s := range child.Steps[:last+1] {
		if stepMayChange(s) || s.Batch != nil {
			file, why := child.File, "may change something"
			if s.Frame != nil {
				file = s.Frame.Playbook.File
			}
			if s.Batch != nil {
				why = "stands in a batch"
			}
			d.Errorf(n, diag.RuleInvalidValue, "confirm_first: step %q of %s (%s:%s) comes before its last confirmation gate and %s: only read-only steps can run before this playbook's first change; move the gate, or the change, in %s",
				s.Label(), ref, file, s.Pos, why, ref)
			return 0
		}
	}
	return last + 1
}

// stepMayChange says whether a step may change anything when it runs: as
// ReadOnly judges, and a step that stands only for its gate (ssh-exec
// true) does not.
func stepMayChange(s *Step) bool {
	if s.Type.Describe().Name == "capture" {
		return true
	}
	if i, ok := s.Body.(steps.Idler); ok && i.Idle() {
		return false
	}
	c, ok := s.Body.(steps.Changer)
	return !ok || c.MayChange()
}

// withoutHosts reports host: and hosts: on an include step, and returns
// the step without them: where the included playbook's steps run is for
// it to say, from the params it is given.
func withoutHosts(d *steps.Decoder, n *yaml.Node) *yaml.Node {
	out := *n
	out.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Value == "host" || k.Value == "hosts" {
			d.Errorf(k, diag.RuleInvalidValue, "%s: an included playbook's steps run where they say (their own host: and hosts:); pass the host(s) as one of its params, and put a batch inside it to go through them in turn", k.Value)
			continue
		}
		out.Content = append(out.Content, k, n.Content[i+1])
	}
	return &out
}

// includeWhen decodes an include step's when: in the includer's scope as
// the run starts (its guards and facts are checked before any step, so
// whether they count must be known then): no facts, no steps.
func includeWhen(d *steps.Decoder, n *yaml.Node) *tmpl.Expr {
	if n == nil {
		return nil
	}
	facts := d.Scope.Facts
	d.Scope.Facts = nil
	e := d.Expr(n, nil)
	d.Scope.Facts = facts
	if e != nil && len(e.Steps) > 0 {
		d.Errorf(n, diag.RuleInvalidValue, "when of an include reads steps.%s: whether an included playbook runs is decided when the run starts (its guards are checked before any step); give params, vars or secrets, or put the when on the included playbook's steps", e.Steps[0])
		return nil
	}
	return e
}

// includeValues decodes the values an include step gives its playbook's
// params, in the includer's scope, by name (nil for one refused), and says
// which may hold a secret: the included playbook is checked knowing it
// (such a value never on a command line, in a host name, ...).
func includeValues(d *steps.Decoder, ref string, n *yaml.Node) (map[string]*tmpl.Template, map[string]*tmpl.Taint) {
	given := map[string]*tmpl.Template{}
	taint := map[string]*tmpl.Taint{}
	if n == nil {
		return given, taint
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		given[k.Value] = nil
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			d.Errorf(v, diag.RuleTypeMismatch, "param %s of %s is one value or ${{ }}, not %s", k.Value, ref, v.ShortTag())
			continue
		}
		// Computed before the facts are observed: they cannot read
		// them (nor steps, below).
		facts := d.Scope.Facts
		d.Scope.Facts = nil
		t := d.Template(v)
		d.Scope.Facts = facts
		if t == nil {
			continue
		}
		if len(t.Steps()) > 0 {
			d.Errorf(v, diag.RuleInvalidValue, "param %s of %s reads steps.%s: an included playbook's params are computed when the run starts, before any step; give params, vars or secrets", k.Value, ref, t.Steps()[0])
			continue
		}
		given[k.Value] = t
		if tt, _ := t.Taint(); tt != nil {
			taint[k.Value] = tt.Through("params." + k.Value)
		}
	}
	return given, taint
}

// includeParams checks the params an include step gives (given, by name,
// nil for a value refused already) against the included playbook's
// declarations: known names, values of the declared type and in the
// declared enum, every required param given.
func (l *Loader) includeParams(d *steps.Decoder, fr *Frame, n, refNode *yaml.Node, given map[string]*tmpl.Template) {
	decl := map[string]*Param{}
	var names []string
	for _, p := range fr.Playbook.Params {
		decl[p.Name] = p
		names = append(names, p.Name)
	}
	if n != nil {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p, ok := decl[k.Value]
			if !ok {
				d.Errorf(k, diag.RuleUnknownKey, "%s declares no param %q%s; its params are: %s", fr.Ref, k.Value, diag.DidYouMean(k.Value, names), strings.Join(names, ", "))
				continue
			}
			if t := given[k.Value]; t != nil {
				checkParamValue(d, fr.Ref, p, v, t)
				fr.Params[p.Name] = t
			}
		}
	}
	var missing []string
	for _, p := range fr.Playbook.Params {
		if _, ok := given[p.Name]; !ok && p.Required {
			missing = append(missing, p.Name)
		}
	}
	if len(missing) > 0 {
		at := refNode
		if n != nil {
			at = n
		}
		d.Errorf(at, diag.RuleMissingField, "%s requires param(s) %s: add them under params:", fr.Ref, strings.Join(missing, ", "))
	}
}

// checkParamValue checks a value given to a declared param: a literal as
// -p would be read, an expression by its type where validation knows it.
func checkParamValue(d *steps.Decoder, ref string, p *Param, v *yaml.Node, t *tmpl.Template) {
	if t.IsLiteral() {
		if _, err := p.Parse(v.Value); err != nil {
			d.Errorf(v, diag.RuleTypeMismatch, "param %s of %s (%s): %v", p.Name, ref, p.Type, err)
		}
		return
	}
	typ := t.Type()
	if typ == nil || typ.Kind() == reflect.Interface {
		return
	}
	ok := true
	switch p.Type {
	case TypeInt:
		ok = typ.Kind() >= reflect.Int && typ.Kind() <= reflect.Uint64 || typ.Kind() == reflect.String
	case TypeBool:
		ok = typ.Kind() == reflect.Bool || typ.Kind() == reflect.String
	case TypeDuration:
		ok = typ == reflect.TypeOf(time.Duration(0)) || typ.Kind() == reflect.String
	case TypeList:
		ok = typ.Kind() == reflect.Slice || typ.Kind() == reflect.String
	default:
		ok = typ.Kind() == reflect.String
	}
	if !ok {
		d.Errorf(v, diag.RuleExprType, "param %s of %s is a %s, and %s is %s here", p.Name, ref, p.Type, strings.TrimSpace(v.Value), typ)
	}
}

// graft puts each included playbook's steps in place of the step that
// includes it, and its guards and facts after the includer's: the run
// sees one playbook, every step of the tree in order. Its source and hash
// cover every file of the tree (a resume refuses when one changed).
func graft(pb *Playbook, incs []inclusion) {
	if len(incs) == 0 {
		return
	}
	var out []*Step
	next := 0
	var src bytes.Buffer
	src.Write(pb.Source)
	declared := map[string]bool{}
	for _, s := range pb.Secrets {
		declared[s.Name] = true
	}
	for _, in := range incs {
		out = append(out, pb.Steps[next:in.at]...)
		next = in.at
		fr := in.frame
		child := fr.Playbook
		for _, s := range child.Steps {
			if s.Frame == nil {
				s.Frame = fr
			}
		}
		at := firstChange(out)
		early := slices.Clone(child.Steps[:fr.Early])
		out = append(out[:at], append(early, out[at:]...)...)
		out = append(out, child.Steps[fr.Early:]...)
		for _, f := range child.Frames {
			if f.Parent == nil {
				f.Parent = fr
			}
		}
		pb.Frames = append(append(pb.Frames, fr), child.Frames...)
		for _, g := range child.Require {
			if g.Frame == nil {
				g.Frame = fr
			}
		}
		pb.Require = append(pb.Require, child.Require...)
		for _, f := range child.Facts {
			if f.Frame == nil {
				f.Frame = fr
			}
		}
		pb.Facts = append(pb.Facts, child.Facts...)
		// A secret is the run's: the same name is the same value in every
		// playbook of the tree.
		for _, s := range child.Secrets {
			if !declared[s.Name] {
				declared[s.Name] = true
				pb.Secrets = append(pb.Secrets, s)
			}
		}
		fmt.Fprintf(&src, "\n# included playbook %s (%s)\n", fr.Path(), fr.Ref)
		src.Write(child.Source)
	}
	out = append(out, pb.Steps[next:]...)
	// A batch's First and Last are indices in the whole tree now.
	seen := map[*Batch]bool{}
	for i, s := range out {
		if b := s.Batch; b != nil {
			if !seen[b] {
				seen[b] = true
				b.First = i + 1
			}
			b.Last = i + 1
		}
	}
	pb.Steps = out
	markLastSteps(out)
	pb.Source = src.Bytes()
	sum := sha256.Sum256(pb.Source)
	pb.Hash = hex.EncodeToString(sum[:])
}

// firstChange returns the index of the first step that may change
// anything (the start of its batch when it stands in one), len(ss) when
// none may: where the early steps of an include with confirm_first go.
func firstChange(ss []*Step) int {
	for i, s := range ss {
		if !stepMayChange(s) {
			continue
		}
		for i > 0 && s.Batch != nil && ss[i-1].Batch == s.Batch {
			i--
		}
		return i
	}
	return len(ss)
}

// gateAfterChange reports an include (at n) whose playbook asks a step's
// confirmation after a step before the include (prior, the includer's
// steps so far and those of its earlier includes) may have changed
// something: declining would leave that change made.
func gateAfterChange(d *steps.Decoder, n *yaml.Node, fr *Frame, prior []*Step) {
	if fr.confirmFirst {
		return
	}
	var gate *Step
	for _, s := range fr.Playbook.Steps {
		if s.Confirm != nil {
			gate = s
			break
		}
	}
	if gate == nil {
		return
	}
	for _, s := range prior {
		if stepMayChange(s) {
			d.Errorf(n, diag.RuleInvalidValue, "%s asks for a confirmation (step %s) after step %s may have changed something: an operator who declines would leave that change made; add confirm_first: true (its steps up to the gate then run before %s), or include it before %s",
				fr.Ref, stepName(gate), stepName(s), stepName(s), stepName(s))
			return
		}
	}
}

// stepName names a step in a message: its key, or its label.
func stepName(s *Step) string {
	if s.ID != "" {
		return s.Key()
	}
	return strconv.Quote(s.Label())
}

// Label returns the name shown for a guard, after its frame's path for a
// guard of an included playbook ("standby: the primary is reachable").
func (g *Guard) Label() string {
	if g.Frame != nil {
		return g.Frame.Path() + ": " + g.Name
	}
	return g.Name
}

// Label returns the fact's name, after its frame's path for a fact of an
// included playbook ("standby: pg").
func (f *Fact) Label() string {
	if f.Frame != nil {
		return f.Frame.Path() + ": " + f.Name
	}
	return f.Name
}

// onceByPath drops each finding in a bundled file (bundled:REL) that is
// also reported in a file checked by its path holding the same text
// (playbooks/REL, or a vars file it lists, when the repository's own
// playbooks are validated): the same finding once, where it can be
// opened.
func onceByPath(ds []*diag.Diagnostic, l *Loader) []*diag.Diagnostic {
	at := map[string]bool{}
	var paths []string
	for _, d := range ds {
		if strings.HasPrefix(d.File, BundledPrefix) {
			continue
		}
		if !slices.Contains(paths, d.File) {
			paths = append(paths, d.File)
		}
		at[d.File+"\x00"+strings.TrimPrefix(d.String(), d.File)] = true
	}
	same := map[string]string{}
	pathOf := func(bundled string) string {
		if p, ok := same[bundled]; ok {
			return p
		}
		same[bundled] = ""
		rel := "/" + strings.TrimPrefix(bundled, BundledPrefix)
		for _, p := range paths {
			if !strings.HasSuffix(filepath.ToSlash(p), rel) {
				continue
			}
			a, errA := l.readFile(bundled)
			b, errB := l.readFile(p)
			if errA == nil && errB == nil && bytes.Equal(a, b) {
				same[bundled] = p
				break
			}
		}
		return same[bundled]
	}
	out := ds[:0]
	for _, d := range ds {
		if strings.HasPrefix(d.File, BundledPrefix) {
			if p := pathOf(d.File); p != "" && at[p+"\x00"+strings.TrimPrefix(d.String(), d.File)] {
				continue
			}
		}
		out = append(out, d)
	}
	return out
}
