// Package step is the contract between the engine and the step types: a
// step type decodes its own body (no I/O), and a decoded step probes,
// plans and applies through the host connection the engine hands it. The
// engine never knows a step type's fields; a step type never reaches into
// the engine.
package step

import (
	"context"
	"sort"

	"github.com/expr-lang/expr/types"

	"github.com/runbook-dev/runbook/transport"
)

// Type is a step type: the key that names it in a playbook, its fields and
// a factory that decodes a body into a Step.
type Type interface {
	// Name is the step-type key, such as "ssh-exec".
	Name() string
	// Doc is a one-line description, for the schema and `runbook show`.
	Doc() string
	// Fields describes the body's keys; the decoder rejects any other key.
	Fields() []Field
	// Result is the type of the step's result in expressions.
	Result() types.Map
	// Decode builds a step from its body. It reports problems through d
	// and must not do any I/O.
	Decode(d *Decoder, body Body) Step
}

// Step is a decoded step, ready to run any number of times.
type Step interface {
	// Probe observes the current state and changes nothing. Guards and
	// wait-until probes call it.
	Probe(ctx context.Context, x *Exec) (Result, error)
	// Plan probes the host and says what Apply would change.
	Plan(ctx context.Context, x *Exec) (*Plan, error)
	// Apply makes the change that Plan found. It is only called when the
	// plan has changes.
	Apply(ctx context.Context, x *Exec, p *Plan) (Result, error)
}

// Changer is implemented by a step that can tell, without I/O, whether it
// may change its host (an ssh-exec that is not read_only, a file-patch),
// for the lint that asks for a guard or a verification.
type Changer interface {
	MayChange() bool
}

// Rechecker is implemented by a step that knows whether running it again
// is safe after an attempt whose outcome was lost (the engine was killed
// between starting it and recording how it ended). Rechecks is true when
// Plan finds a change that was already made (a file edit, a unit state),
// when the step changes nothing, or when the author declared it
// idempotent; resume then simply runs the step again. A step that does not
// implement it is assumed unsafe to repeat: resume stops and asks.
type Rechecker interface {
	Rechecks() bool
}

// Located is implemented by a step that acts on a host of its own choosing
// (a wait-until whose probe names its host), so that output shows that
// host rather than the step's.
type Located interface {
	Where(env map[string]any) (string, bool)
}

// Result is what a step observed or did; expressions see it as
// steps.<id>.result and, in probes, as result.
type Result map[string]any

// Plan is what a step would do.
type Plan struct {
	// Changes is false when the host is already in the wanted state; the
	// step then reports ok (or skipped) and Apply is not called.
	Changes bool
	// Skipped says the step decided not to act (creates/unless).
	Skipped bool
	// Summary is one line saying what would happen.
	Summary string
	// Diff is a unified diff of what would change, when there is one.
	Diff string
	// Result is the result when there is nothing to apply.
	Result Result
	// State carries what the probe learnt over to Apply.
	State any
}

// Exec is what a step runs with on one host.
type Exec struct {
	Host Host
	// Env is the expression environment: params, secrets, steps, host.
	Env map[string]any
	// Become is the user the step's commands run as ("" for the
	// connection's own user).
	Become string
	// Progress reports an intermediate observation (wait-until) for live
	// output; it may be nil.
	Progress func(msg string)
	// Connect returns the host's connection, opening it on first use.
	Connect func(ctx context.Context) (transport.Conn, error)
	// ForHost returns an Exec for another host of the inventory, for probes
	// that name their own host.
	ForHost func(ctx context.Context, name string) (*Exec, error)
	// Secrets lists the values of the run's secrets, so that a step can keep
	// them out of what it reports.
	Secrets []string
	// Started, set in Apply, is to be called with the process group of a
	// command that makes the step's change once it runs on the host (see
	// transport.Command.Started); the journal keeps it, so that a resume
	// after a crash waits for a command that outlived the engine.
	Started func(pgid int)
}

// Host is an inventory host as steps see it.
type Host struct {
	Name    string
	Address string
	Vars    map[string]any
}

// Registry is a set of step types by name.
type Registry struct {
	types map[string]Type
}

// NewRegistry returns a registry of the given types. It panics on an empty
// or duplicate name: that is a programming error, not user input.
func NewRegistry(ts ...Type) *Registry {
	r := &Registry{types: map[string]Type{}}
	for _, t := range ts {
		if t.Name() == "" {
			panic("step: type with empty name")
		}
		if _, dup := r.types[t.Name()]; dup {
			panic("step: duplicate type " + t.Name())
		}
		r.types[t.Name()] = t
	}
	return r
}

// Lookup returns the type with the given name.
func (r *Registry) Lookup(name string) (Type, bool) {
	t, ok := r.types[name]
	return t, ok
}

// Names returns the names of all types, sorted.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.types))
	for n := range r.types {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// All returns every type, sorted by name.
func (r *Registry) All() []Type {
	var out []Type
	for _, n := range r.Names() {
		out = append(out, r.types[n])
	}
	return out
}

// RunProbe runs a probe on its host (or x's host when it names none) and
// returns its result with `reachable` set: a host that cannot be connected
// to is an observation, not an error, so that a guard can assert on it.
func RunProbe(ctx context.Context, x *Exec, p *ProbeSpec) (Result, error) {
	target := x
	if p.Host != nil {
		name, err := p.Host.Render(x.Env, nil)
		if err != nil {
			return nil, err
		}
		if target, err = x.ForHost(ctx, name); err != nil {
			return nil, err
		}
	}
	if p.Become != "" {
		t := *target
		t.Become = p.Become
		target = &t
	}
	return Observe(ctx, target, p.Step)
}

// Observe probes s on x's host, turning an unreachable host into a result
// with reachable == false.
func Observe(ctx context.Context, x *Exec, s Step) (Result, error) {
	r, err := s.Probe(ctx, x)
	if err != nil {
		if transport.IsUnreachable(err) {
			return Result{"reachable": false, "error": err.Error()}, nil
		}
		return nil, err
	}
	out := Result{"reachable": true, "error": ""}
	for k, v := range r {
		out[k] = v
	}
	return out, nil
}
