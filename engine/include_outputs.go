package engine

import (
	"fmt"
	"sort"
	"strings"

	"github.com/expr-lang/expr/types"
	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/steps"
)

// Output is a value a playbook gives back to the playbook that runs it
// (outputs: NAME: ${{ expr }}): computed once its last step is done, in
// its own scope (its params, vars, facts and steps), and read by the
// includer as steps.ID.result.NAME after the include step ID.
type Output struct {
	Name  string
	Value *tmpl.Template
	Pos   diag.Pos
}

// decodeOutputs decodes outputs: (n) after the steps, whose results its
// values read. A value that may hold a secret is refused: the includer's
// expressions would carry it unmasked into commands and the journal.
func decodeOutputs(d *steps.Decoder, n *yaml.Node) []*Output {
	if n.Kind != yaml.MappingNode {
		d.Errorf(n, diag.RuleTypeMismatch, "outputs maps names to values (${{ }} of this playbook's params, vars, facts and steps)")
		return nil
	}
	saved := d.Scope.Host
	d.Scope.Host = false
	defer func() { d.Scope.Host = saved }()
	var out []*Output
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !checkIdent(d, k, "output") {
			continue
		}
		if seen[k.Value] {
			continue // the loader's duplicate-key
		}
		seen[k.Value] = true
		if v.Kind != yaml.ScalarNode {
			d.Errorf(v, diag.RuleTypeMismatch, "output %s is one value: a text or ${{ }}", k.Value)
			continue
		}
		t := d.Template(v)
		if d.RefuseSecret(v, t, diag.RuleSecretExposed, "output "+k.Value, "the including playbook reads it as a step's result, unmasked; give the secret to both playbooks instead") {
			continue
		}
		out = append(out, &Output{Name: k.Value, Value: t, Pos: steps.Pos(k)})
	}
	return out
}

// includeEntryType is the type of steps.ID in the includer after the
// include step ID: result holds the included playbook's outputs, by name
// (reading another is an error at validate); status is "changed" when
// one of its steps changed something, "skipped" when its when: was false.
func includeEntryType(child *Playbook) types.Type {
	r := types.Map{}
	for _, o := range child.Outputs {
		r[o.Name] = types.Any
	}
	return tmpl.StepEntry(r)
}

// markLastSteps sets, for each frame of the tree, the index in ss (the
// steps of the whole tree) of its last step, its own or a nested
// include's: where its outputs are computed.
func markLastSteps(ss []*Step) {
	for i, s := range ss {
		for fr := s.Frame; fr != nil; fr = fr.Parent {
			fr.last = i
		}
	}
}

// closeFrames gives the includers of the frames whose last step is
// index i (0-based) their steps.ID: inner frames first, since an outer
// frame's outputs may read an inner one's.
func (x *run) closeFrames(i int) error {
	var done []*Frame
	for _, fr := range x.pb.Frames {
		if fr.last == i {
			done = append(done, fr)
		}
	}
	sort.Slice(done, func(a, b int) bool { return depth(done[a]) > depth(done[b]) })
	for _, fr := range done {
		if err := x.closeFrame(fr); err != nil {
			return err
		}
	}
	return nil
}

func depth(fr *Frame) int {
	n := 0
	for ; fr != nil; fr = fr.Parent {
		n++
	}
	return n
}

// closeFrame computes frame fr's outputs and records them as steps.ID in
// its includer. In a dry run, when a step of fr was not applied (would
// change, unknown) or an output reads what one would have produced, the
// include counts as not applied itself: it records nothing, so a later
// step reading it reports unknown, as after a plain step (noteUnapplied).
func (x *run) closeFrame(fr *Frame) error {
	entry := map[string]any{"status": string(StatusOK), "changed": false, "results": []any{}}
	result := map[string]any{}
	if x.skips(fr) {
		entry["status"] = string(StatusSkipped)
	} else {
		if x.dryRun && x.unappliedWithin(fr) {
			x.unapplied[fr.Path()] = true
			return nil
		}
		failed := false
		for _, e := range x.stepsOf(fr) {
			m, ok := e.(map[string]any)
			if !ok {
				continue
			}
			if m["changed"] == true {
				entry["status"], entry["changed"] = string(StatusChanged), true
			}
			failed = failed || m["status"] == string(StatusFailed)
		}
		// A failure the included playbook tolerated is the include's
		// status, as a plain step's tolerated failure is its own.
		if failed {
			entry["status"] = string(StatusFailed)
		}
		env := x.env(fr)
		for _, o := range fr.Playbook.Outputs {
			v, err := o.Value.Value(env)
			if err != nil && x.dryRun {
				x.unapplied[fr.Path()] = true
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s:%s: output %s of %s: %w", fr.Playbook.File, o.Pos, o.Name, fr.Path(), x.redactor().Error(err))
			}
			result[o.Name] = v
		}
	}
	entry["result"] = result
	x.stepsOf(fr.Parent)[fr.ID] = entry
	return nil
}

// unappliedWithin says whether a dry run left a step of frame fr, or of a
// frame inside it, unapplied.
func (x *run) unappliedWithin(fr *Frame) bool {
	prefix := fr.Path() + "/"
	for k := range x.unapplied {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}
