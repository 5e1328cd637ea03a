package engine

import (
	"bytes"
	"fmt"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/steps"
)

// lint adds the warnings of a playbook that loaded without errors: things
// that are allowed but that a reviewer of a dangerous procedure would
// question.
func lint(pb *Playbook, used map[string]bool, ds *diag.List) {
	lintUnused(pb, used, nil, ds)
	lintSteps(pb, ds, true)
}

// lintPartial lints a playbook with errors: what its steps and guards that
// could be read allow. A param or secret is unused only when its name is
// nowhere in src; unguarded-change runs only when every guard and step
// could be read (complete).
func lintPartial(pb *Playbook, used map[string]bool, src []byte, ds *diag.List, complete bool) {
	lintUnused(pb, used, src, ds)
	lintSteps(pb, ds, complete)
}

// lintUnused warns of params and secrets nothing uses. With src, a name
// found in the text counts as used.
func lintUnused(pb *Playbook, used map[string]bool, src []byte, ds *diag.List) {
	inText := func(ref string) bool { return src != nil && bytes.Contains(src, []byte(ref)) }
	for _, p := range pb.Params {
		if !used["params."+p.Name] && !inText("params."+p.Name) {
			at := &diag.List{File: p.File}
			at.Warnf(p.Pos, diag.RuleUnusedParam, "param %s is never used: remove it, or use it as ${{ params.%s }}", p.Name, p.Name)
			ds.Items = append(ds.Items, at.Items...)
		}
	}
	for _, s := range pb.Secrets {
		if !used["secrets."+s.Name] && !inText("secrets."+s.Name) {
			ds.Warnf(s.Pos, diag.RuleUnusedParam, "secret %s is never used: remove it, or use it as ${{ secrets.%s }}", s.Name, s.Name)
		}
	}
}

// lintSteps warns of steps a reviewer would question; unguarded-change
// only when guarded says the guards and steps are all known.
func lintSteps(pb *Playbook, ds *diag.List, guarded bool) {
	// verified[i]: a step from i on checks an outcome (one pass from the
	// end, so that linting stays linear in the number of steps).
	verified := make([]bool, len(pb.Steps)+1)
	for i := len(pb.Steps) - 1; i >= 0; i-- {
		s := pb.Steps[i]
		verified[i] = verified[i+1] || s.Assert != nil || s.Type.Describe().Waits
	}
	for _, g := range pb.Require {
		if g.Tolerate.Failed {
			ds.Warnf(g.Pos, diag.RuleGuardNeverRefuses, "guard %q tolerates failed: it never refuses the run; a host it fails on is only kept from the run's changes (not changed: ... not checked by guard): drop failed, or use tolerate: [unreachable]", g.Label())
		}
	}
	for i, s := range pb.Steps {
		if (len(s.Hosts) > 0 || s.HostsExpr != nil) && s.Parallel == 0 {
			ds.Warnf(s.Pos, diag.RuleUnboundedFanout, "step %q runs on every host at once: bound it with parallel: N", s.Label())
		}
		c, ok := s.Body.(steps.Changer)
		if ok && !c.MayChange() && s.Confirm != nil {
			ds.Warnf(s.Confirm.Pos, diag.RuleIdleConfirm, "step %q never changes anything, so its confirm is never asked: put it on the step that makes the change", s.Label())
		}
		if !guarded || !ok || !c.MayChange() || len(pb.Require) > 0 || verified[i] {
			continue
		}
		ds.Warnf(s.Pos, diag.RuleUnguardedChange, "step %q changes %s with no guard (require:) before it and no verification (assert or wait-until) from it on", s.Label(), hostWord(s))
	}
}

func hostWord(s *Step) string {
	if s.Host != nil {
		return fmt.Sprintf("host %s", s.Host.Source)
	}
	return "its host"
}
