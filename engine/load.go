package engine

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/types"
	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/steps"
)

// Loader reads playbooks. It is safe for concurrent use.
type Loader struct {
	Registry *steps.Registry
	// Inside, when set, checks what is inside the playbook's commands
	// and SQL texts: validate sets it (shellcheck, PostgreSQL's parser);
	// a run never looks inside.
	Inside InsideChecker
	// ReadFile reads the vars files playbooks list; nil reads files, and
	// bundled: names from the playbooks bundled in the binary.
	ReadFile func(name string) ([]byte, error)
}

// InsideChecker reads the commands and SQL texts of a playbook in their
// own languages and returns its findings at their positions in the file
// (step.Inside.Pos). Loaders call it from several goroutines at once.
type InsideChecker interface {
	Check(texts []*steps.Inside) []*diag.Diagnostic
}

var topFields = []steps.Field{
	{Name: "version", Kind: steps.Int, Required: true, Doc: "the format version; must be 1", Example: 1},
	{Name: "name", Kind: steps.Literal, Required: true, Doc: "the playbook's name, such as pg-ha/promote-standby", Example: "pg-ha/promote-standby"},
	{Name: "description", Kind: steps.Literal, Doc: "what the playbook does, in a sentence", Example: "Promote the warm standby to be the new primary."},
	{Name: "params", Kind: steps.Object, Doc: "typed parameters, given with -p name=value"},
	{Name: "secrets", Kind: steps.Object, Doc: "secret values (passwords), read from the environment, a file or a prompt; never printed"},
	{Name: "vars_files", Kind: steps.StringList, Doc: "vars files whose params, vars and facts this playbook uses, as if written here; paths relative to the playbook", Example: []string{"../shared/pg-layout.vars.yaml"}},
	{Name: "vars", Kind: steps.StringMap, Doc: "values computed from params when the run starts, available as vars.NAME"},
	{Name: "facts", Kind: steps.Object, Doc: "read-only observations of hosts made after the vars and before the guards, each a probe on a list of hosts; its value (the probe's result, or what value: makes of it) is facts.NAME[HOST] and host.facts.NAME; a fact whose assert is false refuses the run like a guard"},
	{Name: "lock", Kind: steps.String, Doc: "a lock name; two runs holding the same lock never overlap", Example: "pg-cluster"},
	{Name: "require", Kind: steps.ObjectList, Doc: "guards: read-only probes with an assert, all checked before the first step; any failure aborts the run"},
	{Name: "confirm", Kind: steps.Object, Fields: confirmFields, Doc: "ask the operator to type a word after the guards pass and before the first step (--yes answers it; without a terminal or --yes the run is refused before it starts)"},
	{Name: "steps", Kind: steps.ObjectList, Required: true, Doc: "the steps, run in order"},
	{Name: "outputs", Kind: steps.StringMap, Doc: "values this playbook gives back to a playbook that runs it (a step with playbook:), computed after its last step from its params, vars, facts and steps; the includer reads steps.ID.result.NAME (ID: the including step's id), and steps.ID.status (changed when a step of it changed something)"},
	{Name: "outcome", Kind: steps.Object, Fields: outcomeFields, Doc: "what the run reports when it ends, whether its steps went through or not (result.ok, result.error): a text printed on standard output (the step lines go to standard error), a value for --output json, and the exit status (a status view, a monitoring check)"},
}

var paramFields = []steps.Field{
	{Name: "type", Kind: steps.Literal, Doc: "the value's type", Enum: paramTypes, Default: "string"},
	{Name: "description", Kind: steps.Literal, Doc: "what the parameter is for", Example: "the standby node to promote"},
	{Name: "default", Kind: steps.Any, Doc: "the value when none is given", Example: "/var/lib/pgsql/data"},
	{Name: "required", Kind: steps.Bool, Doc: "whether a value must be given; true when there is no default"},
	{Name: "enum", Kind: steps.StringList, Doc: "the allowed values", Example: []string{"rhel", "debian"}},
	{Name: "pattern", Kind: steps.Literal, Doc: "a regular expression (RE2) the whole value must match, checked before the run starts", Example: "[a-z0-9_]{1,63}"},
}

var secretFields = []steps.Field{
	{Name: "env", Kind: steps.Literal, Doc: "environment variable holding the value", Example: "RUNBOOK_REPLICATION_PASSWORD"},
	{Name: "file", Kind: steps.Literal, Doc: "file holding the value (trailing newline removed)", Example: "/etc/runbook/replication.password"},
	{Name: "description", Kind: steps.Literal, Doc: "what the secret is; shown when prompting", Example: "password of the replication user"},
	{Name: "optional", Kind: steps.Bool, Doc: "without a value from env or file the secret is the empty string: not asked for, not an error (an API token only some servers need)"},
}

// commonFields are the keys every step has besides its step-type key.
var commonFields = []steps.Field{
	{Name: "id", Kind: steps.Literal, Doc: "identifies the step; its result is steps.ID.result", Example: "promote"},
	{Name: "name", Kind: steps.Literal, Doc: "what the step does, shown while it runs", Example: "Promote the standby"},
	{Name: "host", Kind: steps.String, Doc: "the inventory host the step runs on (default localhost)", Example: "${{ params.standby }}"},
	{Name: "hosts", Kind: steps.StringList, Doc: "run the step on each of these hosts or groups, in parallel", Example: []string{"postgres"}},
	{Name: "parallel", Kind: steps.Int, Doc: "how many hosts of hosts: run at once (default all)", Example: 5},
	{Name: "max_failures", Kind: steps.Int, Doc: "how many hosts of hosts: may fail before the others stop (default 0)", Example: 1},
	{Name: "when", Kind: steps.Expr, Doc: "run the step only when this expression holds", Example: "steps.conf.result.changed"},
	{Name: "timeout", Kind: steps.Duration, Doc: "cancel the step after this long", Example: "60s"},
	{Name: "retries", Kind: steps.Int, Dynamic: true, Doc: "how many times to retry a failed step (an integer or ${{ }})", Example: 3},
	{Name: "retry_delay", Kind: steps.Duration, Doc: "pause between retries (default 1s)", Example: "2s"},
	{Name: "become", Kind: steps.Literal, Doc: "run as this user on the host (sudo -n -u, or runuser as root)", Example: "postgres"},
	{Name: "assert", Kind: steps.Expr, Doc: "verify the step's result; the step fails when this is false", Example: "result.exit_code == 0"},
	{Name: "message", Kind: steps.String, Doc: "what to say when assert fails (one line, for monitoring)", Example: "standby ${{ params.application_name }} is not streaming"},
	{Name: "print", Kind: steps.String, Doc: "text shown under the step's line when it succeeds, and journaled with its outcome; may use result (evidence a decision rests on)", Example: "${{ result.stdout }}"},
	{Name: "for_each", Kind: steps.String, Doc: "run the step once per element of this list (an expression), in order, with the element as item", Example: "${{ steps.envs.result.json.data }}"},
	{Name: "confirm", Kind: steps.Object, Fields: confirmFields, Doc: "ask the operator to type a word just before the step makes its change, never when its plan finds nothing to change (--yes answers it)"},
	{Name: "tolerate", Kind: steps.StringList, Enum: toleranceNames, Doc: "failures on a host that let the run go on: unreachable (no connection to the host could be made: nothing answers, the connection is refused, or its name does not resolve) or failed (any failure); each is recorded and reported at the end, and the run ends partial (exit status 4)", Example: []string{"unreachable"}},
	{Name: "failed_when", Kind: steps.Expr, Doc: "decide from the result whether the step failed, instead of the step type (a command's exit code); a host that cannot be reached still fails", Example: "result.exit_code > 1"},
}

// toleranceNames are the values of tolerate:.
var toleranceNames = []string{"unreachable", "failed"}

// batchFields are the keys of a batch: a sequence of steps run a batch
// of hosts at a time.
var batchFields = []steps.Field{
	{Name: "name", Kind: steps.Literal, Doc: "what the batch does, shown as each batch starts", Example: "Restart each node in turn"},
	{Name: "hosts", Kind: steps.StringList, Required: true, Doc: "the hosts or groups to go through, in this order", Example: []string{"postgres"}},
	{Name: "serial", Kind: steps.Any, Doc: "the size of each batch: a number of hosts, a percentage (\"25%\"), or a list of them for growing batches ([1, \"50%\"]: the last repeats); default 1", Example: 1},
	{Name: "max_failures", Kind: steps.Int, Doc: "how many hosts may fail before the run stops; their failures are reported at the end and the run ends partial (default 0: the first failure stops the run, the hosts after it untouched)", Example: 1},
	{Name: "max_fail_percentage", Kind: steps.Int, Doc: "as max_failures, as a percentage of the hosts", Example: 10},
	{Name: "steps", Kind: steps.ObjectList, Required: true, Doc: "the steps run on each batch, in order; they name no host: each runs on the hosts of the batch, and steps.ID.result is the result on the same host"},
}

// BatchFields returns the keys of a batch, for the schema.
func BatchFields() []steps.Field { return batchFields }

// confirmFields are the keys of a confirmation gate, at the top level and
// on a step.
var confirmFields = []steps.Field{
	{Name: "text", Kind: steps.String, Required: true, Doc: "what the operator confirms, with the evidence it rests on (earlier steps' results on a step); secrets are redacted", Example: "Promote ${{ params.standby }}? Its control data: ${{ steps.evidence.result.stdout }}"},
	{Name: "word", Kind: steps.String, Required: true, Doc: "what the operator must type to go on (one line, no secrets)", Example: "${{ params.standby }}"},
}

var guardFields = []steps.Field{
	{Name: "name", Kind: steps.Literal, Required: true, Doc: "what must hold, shown when the guard fails", Example: "the standby is still in recovery"},
	{Name: "host", Kind: steps.String, Doc: "the host the probe runs on (default localhost)", Example: "${{ params.primary }}"},
	{Name: "hosts", Kind: steps.StringList, Doc: "probe each of these hosts or groups, at once; the guard holds when it holds on every one", Example: []string{"postgres"}},
	{Name: "tolerate", Kind: steps.StringList, Enum: toleranceNames, Doc: "hosts of hosts: where the guard may fail and the run still go on: unreachable (the probe found the host down: result.reachable is false) or failed; each is reported at the end and the run ends partial", Example: []string{"unreachable"}},
	{Name: "become", Kind: steps.Literal, Doc: "run the probe as this user", Example: "postgres"},
	{Name: "service_ports", Kind: steps.StringList, Doc: servicePortsDoc, Example: []any{"5432"}},
	{Name: "assert", Kind: steps.Expr, Required: true, Doc: "the condition on the probe's result; result.reachable is false only when the host is down (nothing answers at its SSH port nor its service_ports); any other failure to reach it is an error", Example: "result.reachable && result.exit_code == 0"},
	{Name: "hint", Kind: steps.String, Doc: "what the operator should do when the guard fails; may use result", Example: "stop PostgreSQL on the old primary first"},
}

// probeFields are the keys of a probe besides its step-type key.
var probeFields = []steps.Field{
	{Name: "host", Kind: steps.String, Doc: "the host the probe runs on (default: the step's host)", Example: "${{ params.standby }}"},
	{Name: "become", Kind: steps.Literal, Doc: "run the probe as this user", Example: "postgres"},
	{Name: "service_ports", Kind: steps.StringList, Doc: servicePortsDoc, Example: []any{"5432"}},
}

const servicePortsDoc = "ports of the host's own services (PostgreSQL, an API): when its SSH port does not answer, the host counts as down (result.reachable == false) only when none of these answers either; one that answers makes the probe an error (the machine is up)"

// CommonFields returns the keys every step has, for the schema.
func CommonFields() []steps.Field { return commonFields }

// GuardFields returns the keys of a guard besides its probe, for the schema.
func GuardFields() []steps.Field { return guardFields }

// ProbeFields returns the keys of a probe besides its step-type key.
func ProbeFields() []steps.Field { return probeFields }

// TopFields returns the top-level keys of a playbook, for the schema.
func TopFields() []steps.Field { return topFields }

// ParamFields returns the keys of a parameter declaration, for the schema.
func ParamFields() []steps.Field { return paramFields }

// SecretFields returns the keys of a secret declaration, for the schema.
func SecretFields() []steps.Field { return secretFields }

var yamlLine = regexp.MustCompile(`line (\d+)`)

// Load parses and validates a playbook. It reports every problem it finds;
// the playbook is usable only when no diagnostic is an error.
func (l *Loader) Load(file string, src []byte) (*Playbook, []*diag.Diagnostic) {
	pb, ds, _ := l.load(file, src)
	if diag.HasErrors(ds) {
		return nil, ds
	}
	return pb, ds
}

// The checks a playbook with errors may not get (see load's skipped).
const (
	skippedAll       = "every other check (structure, expressions, lint, hosts): the file must be valid YAML first"
	skippedGuardLint = "unguarded-change (a guard or step could not be read, so what guards and verifies the steps is not known)"
	skippedHosts     = "the hosts against the inventory of the steps that could not be read"
)

// load parses and validates a playbook and returns what it could decode
// even when there are errors, with every finding, and the checks that
// could not run because of earlier errors (said, not silently left out).
func (l *Loader) load(file string, src []byte) (*Playbook, []*diag.Diagnostic, []string) {
	return l.loadStack(file, src, []string{file}, nil)
}

// loadStack is load of a playbook that stack (the files being loaded, the
// playbook's last) includes in turn; paramTaint says which of its params
// the includer gives a value that may hold a secret.
func (l *Loader) loadStack(file string, src []byte, stack []string, paramTaint map[string]*tmpl.Taint) (*Playbook, []*diag.Diagnostic, []string) {
	ds := &diag.List{File: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		line := 0
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		msg = yamlLine.ReplaceAllString(msg, "")
		msg = strings.TrimLeft(msg, ": ")
		// yaml.v3 gives parser errors the 0-based line of the construct
		// they are in (scanner errors are 1-based).
		if strings.HasPrefix(msg, "did not find expected") && line > 0 {
			line++
			msg += " (in the block or flow collection that starts on this line)"
		}
		if strings.Contains(msg, "mapping values are not allowed") {
			msg += ": a value that contains \": \" must be quoted"
		}
		// yaml.v3 reports a construct left open at the end of the file
		// on the line after the last: point at the last line instead.
		if n := len(diag.SplitLines(strings.TrimSuffix(string(src), "\n"))); line > n && n > 0 {
			line = n
			msg += " (at the end of the file)"
		}
		ds.Errorf(diag.Pos{Line: line}, diag.RuleYAMLSyntax, "%s", msg)
		return nil, ds.Items, []string{skippedAll}
	}
	duplicateKeys(&doc, ds)
	resolveAliases(&doc, map[*yaml.Node]bool{})
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		ds.Errorf(diag.Pos{Line: 1, Col: 1}, diag.RuleNotAPlaybook, "a playbook is a mapping with version, name and steps")
		return nil, ds.Items, nil
	}
	sum := sha256.Sum256(src)
	pb := &Playbook{File: file, Hash: hex.EncodeToString(sum[:]), Source: src}
	d := &steps.Decoder{
		Diags:  ds,
		Scope:  &tmpl.Scope{Params: types.Map{}, Secrets: types.Map{}, Vars: types.Map{}, Steps: types.Map{}, Later: map[string]bool{}, Used: map[string]bool{}, Tainted: map[string]*tmpl.Taint{}, ParamTaint: paramTaint},
		Source: src,
	}
	d.DecodeProbe = l.decodeProbe
	if l.Inside != nil {
		d.Insides = &[]*steps.Inside{}
	}
	top := d.Check(withoutExtensions(doc.Content[0]), topFields, "the playbook")
	if v := top.Get("version"); v != nil && v.Value != strconv.Itoa(Version) {
		d.Errorf(v, diag.RuleVersion, "unsupported version %s: this runbook reads version %d", v.Value, Version)
	}
	pb.Name = d.Literal(top.Get("name"))
	pb.Description = d.Literal(top.Get("description"))
	var vfs []*varsFile
	if n := top.Get("vars_files"); n != nil {
		vfs = l.readVarsFiles(d, pb, n)
		pb.Source = sourceWith(src, vfs)
		sum := sha256.Sum256(pb.Source)
		pb.Hash = hex.EncodeToString(sum[:])
	}
	// A vars file's declarations come first: the playbook's own may read
	// them, theirs never read the playbook's params or vars.
	seenParams, seenVars := map[string]string{}, map[string]string{}
	for _, vf := range vfs {
		if n := vf.top.Get("params"); n != nil {
			pb.Params = append(pb.Params, decodeParams(vf.d, n, seenParams)...)
		}
	}
	if n := top.Get("params"); n != nil {
		pb.Params = append(pb.Params, decodeParams(d, n, seenParams)...)
	}
	if n := top.Get("secrets"); n != nil {
		pb.Secrets = decodeSecrets(d, n)
	}
	for _, vf := range vfs {
		if n := vf.top.Get("vars"); n != nil {
			pb.Vars = append(pb.Vars, decodeVars(vf.d, n, seenVars)...)
		}
	}
	if n := top.Get("vars"); n != nil {
		pb.Vars = append(pb.Vars, decodeVars(d, n, seenVars)...)
	}
	l.decodeAllFacts(d, pb, top, vfs)
	if n := top.Get("lock"); n != nil {
		pb.Lock = d.Template(n)
		d.RefuseSecret(n, pb.Lock, diag.RuleSecretExposed, "the lock name", "it is written in the lock file, the lock audit log or the shared store's lock table, and shown to every run that waits for it")
	}
	// Every step id is known up front so that a reference to a later step
	// can be told apart from a typo.
	var stepNodes []*yaml.Node
	// batches[i] is the batch node step node i belongs to.
	batches := map[*yaml.Node]*yaml.Node{}
	if n := top.Get("steps"); n != nil {
		stepNodes = flattenBatches(n.Content, batches)
		ids := map[string]*yaml.Node{}
		for _, sn := range stepNodes {
			idn := valueOf(sn, "id")
			if idn == nil || idn.Kind != yaml.ScalarNode {
				continue
			}
			if prev, dup := ids[idn.Value]; dup {
				d.Errorf(idn, diag.RuleDuplicateID, "step id %q is already used at line %d", idn.Value, prev.Line)
				continue
			}
			ids[idn.Value] = idn
			d.Scope.Later[idn.Value] = true
		}
		if len(stepNodes) == 0 {
			d.Errorf(n, diag.RuleMissingField, "the playbook has no steps")
		}
	}
	dropped := false
	if n := top.Get("require"); n != nil {
		for _, gn := range n.Content {
			if g := l.decodeGuard(d, gn); g != nil {
				pb.Require = append(pb.Require, g)
			} else {
				dropped = true
			}
		}
	}
	if n := top.Get("confirm"); n != nil {
		// Before the steps are decoded: it runs before any of them.
		pb.Confirm = decodeConfirm(d, n, "confirm of the playbook")
	}
	var batch *Batch
	var batchNode *yaml.Node
	var incs []inclusion
	for i, sn := range stepNodes {
		if sn.Kind == yaml.MappingNode && isInclude(sn) {
			if batches[sn] != nil {
				d.Errorf(sn, diag.RuleInvalidValue, "a batch cannot run another playbook (its steps say where they run, not the batch): include it outside the batch, give it the hosts as a list param and put the batch inside the included playbook")
			} else if fr := l.decodeInclude(d, file, sn, stack); fr != nil {
				prior := slices.Clone(pb.Steps)
				for _, in := range incs {
					prior = append(prior, in.frame.Playbook.Steps...)
				}
				gateAfterChange(d, valueOf(sn, "playbook"), fr, prior)
				incs = append(incs, inclusion{at: len(pb.Steps), frame: fr})
			}
			stepNodes[i] = nil
			continue
		}
		if bn := batches[sn]; bn != batchNode {
			batchNode, batch = bn, nil
			if bn != nil {
				batch = decodeBatch(d, bn)
			}
		}
		if sn == batchNode {
			continue // a batch without steps, reported
		}
		if batchNode != nil && isBatch(sn) {
			d.Errorf(sn, diag.RuleInvalidValue, "a batch cannot hold another batch: list its steps in the outer one")
			continue
		}
		first := 0
		if d.Insides != nil {
			first = len(*d.Insides)
		}
		s := l.decodeStep(d, sn)
		if s == nil {
			dropped = true
			continue
		}
		if d.Insides != nil {
			for _, in := range (*d.Insides)[first:] {
				in.Step = cmp.Or(s.ID, s.Name)
			}
		}
		pb.Steps = append(pb.Steps, s)
		if batch != nil {
			s.Batch = batch
			if batch.First == 0 {
				batch.First = len(pb.Steps)
			}
			batch.Last = len(pb.Steps)
			refuseInBatch(d, sn)
		}
		warnSharedDest(d, sn, s)
		// A step's YAML tree is not read once it is decoded: dropping it
		// lets the collector free a large playbook's tree (a dozen times
		// the size of its text) as it goes, rather than at the end.
		stepNodes[i] = nil
	}
	if n := top.Get("outputs"); n != nil {
		pb.Outputs = decodeOutputs(d, n)
	}
	if n := top.Get("outcome"); n != nil {
		// After the steps: it reads their results.
		pb.Outcome = decodeOutcome(d, n)
	}
	var skipped []string
	if !diag.HasErrors(ds.Items) {
		lint(pb, d.Scope.Used, ds)
	} else {
		// The rules that judge one step at a time run on the steps that
		// could be read; a param is unused only if its name is nowhere in
		// the text (a step that could not be read may use it).
		lintPartial(pb, d.Scope.Used, src, ds, !dropped)
		if dropped {
			skipped = append(skipped, skippedGuardLint, skippedHosts)
		}
	}
	if l.Inside != nil {
		for _, x := range l.Inside.Check(*d.Insides) {
			x.File = file
			ds.Items = append(ds.Items, x)
		}
	}
	suppress(ds, src)
	l.finishVarsFiles(ds, vfs)
	graft(pb, incs)
	diag.Sort(ds.Items)
	return pb, ds.Items, skipped
}

// withoutExtensions drops top-level keys starting with "x-": a place for
// anchors that steps merge (x-postgres: &pg {host: ..., become: postgres}).
func withoutExtensions(n *yaml.Node) *yaml.Node {
	out := *n
	out.Content = make([]*yaml.Node, 0, len(n.Content))
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !strings.HasPrefix(n.Content[i].Value, "x-") {
			out.Content = append(out.Content, n.Content[i], n.Content[i+1])
		}
	}
	return &out
}

// resolveAliases replaces every alias (*name) by the node it names, so the
// decoder sees plain values. Shared nodes are visited once, so a "billion
// laughs" document costs no more than its size.
func resolveAliases(n *yaml.Node, seen map[*yaml.Node]bool) {
	if seen[n] {
		return
	}
	seen[n] = true
	for i, c := range n.Content {
		for c.Kind == yaml.AliasNode && c.Alias != nil && c.Alias != c {
			c = c.Alias
		}
		n.Content[i] = c
		resolveAliases(c, seen)
	}
	if n.Kind == yaml.MappingNode {
		mergeKeys(n)
	}
}

// mergeKeys expands YAML merge keys (<<: *defaults): the merged mapping's
// pairs are added where the mapping does not set the key itself.
func mergeKeys(n *yaml.Node) {
	var merged []*yaml.Node
	has := false
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Tag == "!!merge" {
			has = true
			break
		}
	}
	if !has {
		return
	}
	own := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Tag != "!!merge" {
			own[n.Content[i].Value] = true
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag != "!!merge" {
			merged = append(merged, k, v)
			continue
		}
		sources := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			sources = v.Content
		}
		for _, src := range sources {
			if src.Kind != yaml.MappingNode {
				merged = append(merged, k, v) // reported as an unknown key
				continue
			}
			for j := 0; j+1 < len(src.Content); j += 2 {
				if !own[src.Content[j].Value] {
					own[src.Content[j].Value] = true
					merged = append(merged, src.Content[j], src.Content[j+1])
				}
			}
		}
	}
	n.Content = merged
}

func valueOf(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func checkIdent(d *steps.Decoder, n *yaml.Node, what string) bool {
	if !identRe.MatchString(n.Value) {
		d.Errorf(n, diag.RuleInvalidValue, "%s name %q must be letters, digits and _ (it is used as %s.%s in expressions)", what, n.Value, what+"s", strings.ReplaceAll(n.Value, "-", "_"))
		return false
	}
	return true
}

// decodeNamed decodes with decode each entry of the mapping n whose key
// is a valid name for a what (param, secret, var) and, where seen keeps
// the names declared so far, not one declared before.
func decodeNamed[T any](d *steps.Decoder, n *yaml.Node, what string, seen map[string]string, decode func(k, v *yaml.Node) T) []T {
	var out []T
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !checkIdent(d, k, what) || seen != nil && !checkDuplicate(d, k, what, seen) {
			continue
		}
		out = append(out, decode(k, v))
	}
	return out
}

func decodeParams(d *steps.Decoder, n *yaml.Node, seen map[string]string) []*Param {
	return decodeNamed(d, n, "param", seen, func(k, v *yaml.Node) *Param {
		f := d.Check(v, paramFields, "param "+k.Value)
		p := &Param{Name: k.Value, Type: TypeString, Pos: steps.Pos(k), File: d.Diags.File}
		if t := f.Get("type"); t != nil {
			p.Type = ParamType(t.Value)
		}
		p.Description = d.Literal(f.Get("description"))
		if e := f.Get("enum"); e != nil {
			for _, x := range e.Content {
				p.Enum = append(p.Enum, x.Value)
			}
		}
		if pat := f.Get("pattern"); pat != nil {
			// Checked alone first, so that an error quotes what was written.
			if _, err := regexp.Compile(pat.Value); err != nil {
				d.Errorf(pat, diag.RuleInvalidValue, "pattern of param %s: %v", p.Name, err)
			} else {
				p.Pattern = regexp.MustCompile(`^(?:` + pat.Value + `)$`)
			}
		}
		if def := f.Get("default"); def != nil {
			val, err := p.parseNode(def)
			if err != nil {
				d.Errorf(def, diag.RuleTypeMismatch, "default of param %s: %v", p.Name, err)
			} else {
				p.Default, p.HasDefault = val, true
			}
		}
		p.Required = !p.HasDefault
		if r := f.Get("required"); r != nil {
			p.Required = d.Bool(r)
			if p.Required && p.HasDefault {
				d.Diags.Warnf(steps.Pos(r), diag.RuleInvalidValue, "param %s is required and has a default; the default is never used", p.Name)
			}
		}
		d.Scope.Params[p.Name] = p.exprType()
		return p
	})
}

func (p *Param) exprType() types.Type {
	switch p.Type {
	case TypeInt:
		return types.Int
	case TypeBool:
		return types.Bool
	case TypeDuration:
		return types.TypeOf(time.Duration(0))
	case TypeList:
		return types.Array(types.Any)
	}
	return types.String
}

// parseNode reads a param value written in YAML.
func (p *Param) parseNode(n *yaml.Node) (any, error) {
	if p.Type == TypeList {
		if n.Kind != yaml.SequenceNode {
			return nil, errors.New("a list param needs a YAML list")
		}
		var out []any
		for _, e := range n.Content {
			out = append(out, e.Value)
		}
		return out, nil
	}
	if n.Kind != yaml.ScalarNode {
		return nil, fmt.Errorf("want a %s value, not a %s", p.Type, map[yaml.Kind]string{yaml.MappingNode: "mapping", yaml.SequenceNode: "list"}[n.Kind])
	}
	return p.Parse(n.Value)
}

// Parse reads a param value given as text (-p name=value).
func (p *Param) Parse(s string) (any, error) {
	var v any
	var err error
	switch p.Type {
	case TypeInt:
		v, err = parseAs(s, strconv.Atoi, "an integer")
	case TypeBool:
		v, err = parseAs(s, strconv.ParseBool, "true or false")
	case TypeDuration:
		v, err = parseAs(s, time.ParseDuration, "a duration such as 30s")
	case TypeList:
		var out []any
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				out = append(out, e)
			}
		}
		v = out
	default:
		v = s
	}
	if err != nil {
		return nil, err
	}
	if p.Pattern != nil && !p.Pattern.MatchString(s) {
		return nil, fmt.Errorf("%q does not match the pattern %s", s, p.Pattern)
	}
	if len(p.Enum) > 0 {
		for _, e := range p.Enum {
			if e == s {
				return v, nil
			}
		}
		return nil, fmt.Errorf("%q is not one of %s", s, strings.Join(p.Enum, ", "))
	}
	return v, nil
}

// parseAs reads s with parse; what it is not is said as what it should
// be (want).
func parseAs[T any](s string, parse func(string) (T, error), want string) (any, error) {
	v, err := parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not %s", s, want)
	}
	return v, nil
}

func decodeSecrets(d *steps.Decoder, n *yaml.Node) []*Secret {
	return decodeNamed(d, n, "secret", nil, func(k, v *yaml.Node) *Secret {
		f := d.Check(v, secretFields, "secret "+k.Value)
		s := &Secret{Name: k.Value, Env: d.Literal(f.Get("env")), File: d.Literal(f.Get("file")), Description: d.Literal(f.Get("description")), Optional: d.Bool(f.Get("optional")), Pos: steps.Pos(k)}
		d.Scope.Secrets[s.Name] = types.String
		return s
	})
}

func decodeVars(d *steps.Decoder, n *yaml.Node, seen map[string]string) []*Var {
	return decodeNamed(d, n, "var", seen, func(k, v *yaml.Node) *Var {
		t := d.Template(v)
		d.RefuseSecret(v, t, diag.RuleSecretExposed, "var "+k.Value, "vars must not read secrets; use secrets.NAME where the secret is needed")
		varLang(d, k, v, t)
		d.Scope.Vars[k.Value] = types.Any
		return &Var{Name: k.Value, Value: t, Pos: steps.Pos(k)}
	})
}

// ShellVarTag marks a var whose value is shell text (vars: {f: !shell |
// ...}): a snippet a command runs from the environment (eval "$F"). A
// command quotes every value it interpolates, so a var reaches a shell as
// code only that way, where validate cannot follow it; the tag says what
// the text is. Validate shellchecks it at its own place (in a vars file:
// that file's line), and its ${{ }} are quoted for the shell as a
// command's are.
const ShellVarTag = "!shell"

// varLang reads the tag of the value v of var k: ShellVarTag binds the
// template t to the shell and gives its text to validate's shellcheck;
// YAML's own tags (!!str) change nothing; any other is refused.
func varLang(d *steps.Decoder, k, v *yaml.Node, t *tmpl.Template) {
	switch {
	case v.Tag == ShellVarTag:
		if v.Kind != yaml.ScalarNode {
			d.Errorf(v, diag.RuleTypeMismatch, "var %s: %s marks shell text, a string", k.Value, ShellVarTag)
			return
		}
		for _, e := range t.In(tmpl.Shell) {
			d.Diags.Errorf(d.PosIn(v, e.Offset), e.Rule, "%s", e.Msg)
		}
		d.Inside("var "+k.Value, v, t, tmpl.Shell)
	case strings.HasPrefix(v.Tag, "!") && !strings.HasPrefix(v.Tag, "!!"):
		d.Errorf(v, diag.RuleInvalidValue, "var %s: unknown tag %s: the one a var may carry is %s (its value is shell text, shellchecked by validate)", k.Value, v.Tag, ShellVarTag)
	}
}

// decodeConfirm decodes a confirmation gate in the scope of where it
// stands. The word is shown in the prompt and journaled: it must not read
// a secret, and it is one line.
func decodeConfirm(d *steps.Decoder, n *yaml.Node, where string) *Confirm {
	f := d.Check(n, confirmFields, where)
	c := &Confirm{Pos: steps.Pos(n), Text: d.Template(f.Get("text")), Word: d.Template(f.Get("word"))}
	refuseDerivedSecret(d, f.Get("text"), c.Text, where+": text")
	if w := f.Get("word"); w != nil && c.Word != nil {
		switch {
		case d.RefuseSecret(w, c.Word, diag.RuleSecretExposed, where+": the word", "it is shown to the operator and journaled"):
		case strings.TrimSpace(w.Value) == "" || strings.ContainsAny(strings.TrimSpace(w.Value), "\n\r"):
			d.Errorf(w, diag.RuleInvalidValue, "%s: the word is one line the operator types, not %q", where, w.Value)
		}
	}
	if c.Text == nil || c.Word == nil {
		return nil
	}
	return c
}

// splitType finds the step-type key of a step mapping among its other keys.
// It reports a step with no type key or more than one.
func (l *Loader) splitType(d *steps.Decoder, n *yaml.Node, common []steps.Field, where string) (steps.Type, *yaml.Node, *yaml.Node) {
	rest := &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column, Content: make([]*yaml.Node, 0, len(n.Content))}
	var typ steps.Type
	var body, typeKey *yaml.Node
	var unknown []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if t, ok := l.Registry.Lookup(k.Value); ok {
			if typ != nil {
				d.Errorf(k, diag.RuleStepTypeCount, "%s has two step types, %s (line %d) and %s: split it into two steps", where, typ.Describe().Name, typeKey.Line, k.Value)
				continue
			}
			typ, body, typeKey = t, v, k
			continue
		}
		if isField(common, k.Value) {
			rest.Content = append(rest.Content, k, v)
			continue
		}
		unknown = append(unknown, k)
	}
	var known []string
	if len(unknown) > 0 {
		for _, f := range common {
			known = append(known, f.Name)
		}
	}
	for _, k := range unknown {
		if typ == nil && diag.Closest(k.Value, l.Registry.Names()) != "" || typ == nil && len(unknown) == 1 {
			d.Errorf(k, diag.RuleUnknownStepType, "unknown step type %q%s; the step types are: %s", k.Value, diag.DidYouMean(k.Value, l.Registry.Names()), strings.Join(l.Registry.Names(), ", "))
			typ = nil
			continue
		}
		d.Errorf(k, diag.RuleUnknownKey, "unknown key %q in %s%s; expected a step type (%s) or one of: %s", k.Value, where, diag.DidYouMean(k.Value, append(known, l.Registry.Names()...)), strings.Join(l.Registry.Names(), ", "), strings.Join(known, ", "))
	}
	if typ == nil && len(unknown) == 0 {
		d.Errorf(n, diag.RuleStepTypeCount, "%s has no step type: add one of %s", where, strings.Join(l.Registry.Names(), ", "))
	}
	return typ, body, rest
}

func isField(fields []steps.Field, name string) bool {
	for i := range fields {
		if fields[i].Name == name {
			return true
		}
	}
	return false
}

func (l *Loader) decodeBody(d *steps.Decoder, typ steps.Type, body *yaml.Node) steps.Step {
	desc := typ.Describe()
	b := d.Check(body, desc.Fields, desc.Name)
	return typ.Decode(d, b)
}

func (l *Loader) decodeGuard(d *steps.Decoder, n *yaml.Node) *Guard {
	if n.Kind != yaml.MappingNode {
		d.Errorf(n, diag.RuleTypeMismatch, "a guard must be a mapping with name, a probe and assert")
		return nil
	}
	where := "guard"
	if nm := valueOf(n, "name"); nm != nil {
		where = fmt.Sprintf("guard %q", nm.Value)
	}
	typ, body, rest := l.splitType(d, n, guardFields, where)
	f := d.Check(rest, guardFields, where)
	g := &Guard{Name: d.Literal(f.Get("name")), Pos: steps.Pos(n), Become: d.Literal(f.Get("become"))}
	d.Scope.Host = false
	g.Host, g.Hosts, g.HostsExpr = decodeHostOrHosts(d, f, where)
	g.Tolerate = decodeTolerance(d, f.Get("tolerate"))
	g.ServicePorts = servicePorts(d, f.Get("service_ports"))
	if !looksOnce(d, typ, body, "a guard checks the state once; use a probe step type, not %s") {
		return nil
	}
	d.Scope.Host = true
	g.Type = typ
	d.Tainted = nil
	g.Probe = l.decodeBody(d, typ, body)
	g.Tainted = d.Tainted
	if h := f.Get("hint"); h != nil {
		g.Hint = templateOn(d, h, steps.ProbeResult(typ))
		refuseDerivedSecret(d, h, g.Hint, "hint")
	}
	g.Assert = d.Expr(f.Get("assert"), steps.ProbeResult(typ))
	d.Scope.Host = false
	g.Reads = guardFactReads(n)
	return g
}

func (l *Loader) decodeProbe(d *steps.Decoder, n *yaml.Node) *steps.ProbeSpec {
	typ, body, rest := l.splitType(d, n, probeFields, "probe")
	f := d.Check(rest, probeFields, "probe")
	p := &steps.ProbeSpec{Pos: steps.Pos(n), Become: d.Literal(f.Get("become"))}
	if h := f.Get("host"); h != nil {
		p.Host = d.Template(h)
		refuseSecretHost(d, h, p.Host)
	}
	p.ServicePorts = servicePorts(d, f.Get("service_ports"))
	if !looksOnce(d, typ, body, "a probe cannot be a %s") {
		return nil
	}
	p.Type = typ
	p.Step = l.decodeBody(d, typ, body)
	return p
}

// looksOnce reports whether the check of a guard or a probe has a type
// (typ is nil when none was read) that looks at the state once; one that
// waits is refused at body with refusal, which names the type (%s).
func looksOnce(d *steps.Decoder, typ steps.Type, body *yaml.Node, refusal string) bool {
	if typ == nil {
		return false
	}
	if desc := typ.Describe(); desc.Waits {
		d.Errorf(body, diag.RuleInvalidValue, refusal, desc.Name)
		return false
	}
	return true
}

// decodeHostOrHosts decodes where a guard or a step runs: host: (one
// name) or hosts: (names and groups, or one expression giving them), not
// both.
func decodeHostOrHosts(d *steps.Decoder, f steps.Body, where string) (host *tmpl.Template, hosts []*tmpl.Template, hostsExpr *tmpl.Template) {
	if h := f.Get("host"); h != nil {
		host = d.Template(h)
		refuseSecretHost(d, h, host)
	}
	if h := f.Get("hosts"); h != nil {
		if f.Get("host") != nil {
			d.Errorf(h, diag.RuleInvalidValue, "%s has both host and hosts: use one", where)
		}
		hosts, hostsExpr = decodeHosts(d, h)
	}
	return host, hosts, hostsExpr
}

// templateOn compiles a template that may read result, of the type given.
func templateOn(d *steps.Decoder, n *yaml.Node, result types.Type) *tmpl.Template {
	saved := d.Scope.Result
	d.Scope.Result = result
	defer func() { d.Scope.Result = saved }()
	return d.Template(n)
}

// batchKeys are the keys of a batch of steps, which a plain step does not
// take.
var batchKeys = map[string]bool{"serial": true, "max_fail_percentage": true}

var didYouMean = regexp.MustCompile(` \(did you mean "[^"]*"\?\)`)

// pointToBatches adds, to an unknown key of a step (among the diagnostics
// from index seen) that a batch of steps takes, where it belongs: a
// did-you-mean to another step key would lead the author astray.
func pointToBatches(d *steps.Decoder, seen int) {
	for _, x := range d.Diags.Items[seen:] {
		if x.Rule != diag.RuleUnknownKey {
			continue
		}
		for k := range batchKeys {
			if strings.HasPrefix(x.Message, fmt.Sprintf("unknown key %q", k)) {
				msg := didYouMean.ReplaceAllString(x.Message, "")
				x.Message = fmt.Sprintf("%s; %s belongs to a batch of steps: a name, hosts:, %s and the steps to run on each batch under steps: (docs/authoring.md, Batches)", msg, k, k)
			}
		}
	}
}

// warnSharedDest warns of a capture that may run on several hosts (hosts:,
// a batch) with a dest that names none of them: every host would write
// the one file, which the run refuses only when the second host comes.
func warnSharedDest(d *steps.Decoder, sn *yaml.Node, s *Step) {
	if s.Type == nil || s.Type.Describe().Name != "capture" || len(s.Hosts) == 0 && s.HostsExpr == nil && s.Batch == nil {
		return
	}
	body := valueOf(sn, "capture")
	if body == nil {
		return
	}
	dest := valueOf(body, "dest")
	if dest == nil || strings.Contains(dest.Value, "host") || s.ForEach != nil && strings.Contains(dest.Value, "item") {
		return
	}
	d.Diags.Warnf(steps.Pos(dest), diag.RuleInvalidValue, "dest %q names no host, and the step may run on several: each would write this one file (the run refuses the second); put ${{ host.name }} in it", dest.Value)
}

// refuseDerivedSecret reports a text shown and journaled (a print, an
// assert's message, a hint) with a value computed from a secret: the
// secret's own value is masked wherever it appears, a value made from it
// (upper(secrets.pw), a slice of it) is not.
func refuseDerivedSecret(d *steps.Decoder, n *yaml.Node, t *tmpl.Template, what string) {
	taint, off := t.DerivedTaint()
	if taint == nil || n == nil {
		return
	}
	d.Diags.Errorf(d.PosIn(n, off), diag.RuleSecretExposed,
		"%s computes a value from %s: it is shown and journaled, and only a secret's own value is masked there, never a value made from it: show the value as it is (masked), or leave it out",
		what, taint)
}

// refuseSecretHost reports a host name that may hold a secret.
func refuseSecretHost(d *steps.Decoder, n *yaml.Node, t *tmpl.Template) {
	d.RefuseSecret(n, t, diag.RuleSecretExposed, "the host", "a host's name is shown with every step and journaled, and SSH connects to it")
}

// servicePorts decodes a list of port numbers, each literal or templated;
// a literal that is not a port is an error here, a templated one when it
// is rendered.
func servicePorts(d *steps.Decoder, n *yaml.Node) []*tmpl.Template {
	if n == nil {
		return nil
	}
	ts := d.TemplateList(n, "service_ports")
	for i, t := range ts {
		if t != nil && t.IsLiteral() && i < len(n.Content) {
			if p, err := strconv.Atoi(t.Source); err != nil || p < 1 || p > 65535 {
				d.Errorf(n.Content[i], diag.RuleInvalidValue, "service_ports: %q is not a port number (1-65535)", t.Source)
			}
		}
	}
	return ts
}

func (l *Loader) decodeStep(d *steps.Decoder, n *yaml.Node) *Step {
	if n.Kind != yaml.MappingNode {
		d.Errorf(n, diag.RuleTypeMismatch, "a step must be a mapping with one step type, not %s", n.ShortTag())
		return nil
	}
	where := "step"
	if id := valueOf(n, "id"); id != nil {
		where = fmt.Sprintf("step %q", id.Value)
	} else if nm := valueOf(n, "name"); nm != nil {
		where = fmt.Sprintf("step %q", nm.Value)
	}
	seen := len(d.Diags.Items)
	typ, body, rest := l.splitType(d, n, commonFields, where)
	f := d.Check(rest, commonFields, where)
	pointToBatches(d, seen)
	s := &Step{Pos: steps.Pos(n), ID: d.Literal(f.Get("id")), Name: d.Literal(f.Get("name")), Become: d.Literal(f.Get("become"))}
	if s.ID != "" {
		checkIdent(d, f.Get("id"), "step")
		delete(d.Scope.Later, s.ID)
	}
	d.Scope.Host = false
	s.Host, s.Hosts, s.HostsExpr = decodeHostOrHosts(d, f, where)
	s.Parallel = d.Int(f.Get("parallel"), 0)
	s.MaxFailures = d.Int(f.Get("max_failures"), 0)
	if f.Get("parallel") != nil && f.Get("hosts") == nil {
		d.Errorf(f.Get("parallel"), diag.RuleInvalidValue, "parallel only applies to a step with hosts:")
	}
	s.Timeout = d.Duration(f.Get("timeout"), 0)
	// Past a thousand attempts a step is a loop, which wait-until is.
	s.Retries = d.IntValueIn(f.Get("retries"), 0, 0, 1000)
	s.RetryDelay = d.Duration(f.Get("retry_delay"), time.Second)
	d.Scope.Host = true
	if fe := f.Get("for_each"); fe != nil {
		s.ForEach = d.Template(fe)
		if s.ForEach != nil && (len(s.ForEach.Exprs()) != 1 || strings.TrimSpace(fe.Value) != fe.Value) {
			d.Errorf(fe, diag.RuleInvalidValue, "for_each is one expression giving a list: ${{ ... }}")
		}
		if len(s.Hosts) > 0 || s.HostsExpr != nil {
			d.Errorf(fe, diag.RuleInvalidValue, "for_each cannot be combined with hosts:")
		}
		d.Scope.Item = types.Any
		if taint, _ := s.ForEach.Taint(); taint != nil {
			d.Scope.ItemTaint = taint.Through("item")
		}
	}
	if w := f.Get("when"); w != nil {
		s.When = d.Expr(w, nil)
	}
	if c := f.Get("confirm"); c != nil {
		s.Confirm = decodeConfirm(d, c, "confirm of "+where)
	}
	s.Tolerate = decodeTolerance(d, f.Get("tolerate"))
	if typ != nil {
		s.Type = typ
		// A step whose inputs read a secret may give it back in its
		// result (a command echoing its stdin, a server its request):
		// expressions that read the result are tainted in turn.
		d.Taint, d.Tainted = nil, nil
		s.Body = l.decodeBody(d, typ, body)
		s.Tainted = d.Tainted
		if d.Taint != nil && s.ID != "" {
			d.Scope.Tainted[s.ID] = d.Taint.Through("steps." + s.ID + ".result")
		}
		if a := f.Get("assert"); a != nil {
			s.Assert = d.Expr(a, steps.ResultType(typ))
		}
		if fw := f.Get("failed_when"); fw != nil {
			s.FailedWhen = d.Expr(fw, steps.ResultType(typ))
		}
		if m := f.Get("message"); m != nil {
			if f.Get("assert") == nil {
				d.Errorf(m, diag.RuleInvalidValue, "message is what a failed assert says: add assert")
			}
			s.Message = templateOn(d, m, steps.ResultType(typ))
			refuseDerivedSecret(d, m, s.Message, "message")
		}
		if p := f.Get("print"); p != nil {
			s.Print = templateOn(d, p, steps.ResultType(typ))
			refuseDerivedSecret(d, p, s.Print, "print")
		}
	}
	d.Scope.Host = false
	d.Scope.Item, d.Scope.ItemTaint = nil, nil
	if s.ID != "" && typ != nil {
		d.Scope.Steps[s.ID] = steps.StepEntryType(typ)
	}
	if typ == nil {
		return nil
	}
	return s
}
