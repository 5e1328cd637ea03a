package engine

import (
	"fmt"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/steps"
)

// lint adds the warnings of a playbook that loaded without errors: things
// that are allowed but that a reviewer of a dangerous procedure would
// question.
func lint(pb *Playbook, used map[string]bool, ds *diag.List) {
	for _, p := range pb.Params {
		if !used["params."+p.Name] {
			at := &diag.List{File: p.File}
			at.Warnf(p.Pos, diag.RuleUnusedParam, "param %s is never used: remove it, or use it as ${{ params.%s }}", p.Name, p.Name)
			ds.Items = append(ds.Items, at.Items...)
		}
	}
	for _, s := range pb.Secrets {
		if !used["secrets."+s.Name] {
			ds.Warnf(s.Pos, diag.RuleUnusedParam, "secret %s is never used: remove it, or use it as ${{ secrets.%s }}", s.Name, s.Name)
		}
	}
	// verified[i]: a step from i on checks an outcome (one pass from the
	// end, so that linting stays linear in the number of steps).
	verified := make([]bool, len(pb.Steps)+1)
	for i := len(pb.Steps) - 1; i >= 0; i-- {
		s := pb.Steps[i]
		verified[i] = verified[i+1] || s.Assert != nil || s.Type.Describe().Waits
	}
	for i, s := range pb.Steps {
		if (len(s.Hosts) > 0 || s.HostsExpr != nil) && s.Parallel == 0 {
			ds.Warnf(s.Pos, diag.RuleUnboundedFanout, "step %q runs on every host at once: bound it with parallel: N", s.Label())
		}
		c, ok := s.Body.(steps.Changer)
		if ok && !c.MayChange() && s.Confirm != nil {
			ds.Warnf(s.Confirm.Pos, diag.RuleIdleConfirm, "step %q never changes anything, so its confirm is never asked: put it on the step that makes the change", s.Label())
		}
		if !ok || !c.MayChange() || len(pb.Require) > 0 || verified[i] {
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
