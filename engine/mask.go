package engine

import (
	"github.com/runbook-dev/runbook/internal/redact"
	"github.com/runbook-dev/runbook/internal/tmpl"
)

// redactor returns what masks the run's secrets now.
func (x *run) redactor() *redact.Redactor { return x.red.Load() }

// maskInputs adds to the run's redactor the values of the templates ts
// (a step's inputs that may hold a secret) in env: a value computed from a
// secret (upper(secrets.pw), a piece of one, an earlier result that held
// one) is masked from then on like the secret itself. Values shorter than
// redact.MinLength are left out: they would mask ordinary text.
func (x *run) maskInputs(ts []*tmpl.Template, env map[string]any) {
	var vals []string
	for _, t := range ts {
		vals = append(vals, t.TaintedValues(env)...)
	}
	x.mask(vals...)
}

// mask adds values of redact.MinLength bytes or more to the redactor.
func (x *run) mask(vals ...string) {
	long := vals[:0:0]
	for _, v := range vals {
		if len(v) >= redact.MinLength {
			long = append(long, v)
		}
	}
	if len(long) == 0 {
		return
	}
	x.redMu.Lock()
	defer x.redMu.Unlock()
	x.red.Store(x.redactor().With(long...))
}

// leaves returns the text of v's strings and numbers, in maps and lists
// too.
func leaves(v any) []string {
	switch v := v.(type) {
	case map[string]any:
		var out []string
		for _, e := range v {
			out = append(out, leaves(e)...)
		}
		return out
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, leaves(e)...)
		}
		return out
	case nil, bool:
		return nil
	}
	return []string{tmpl.Format(v)}
}
