// This file is the contract between the engine and the step types: a
// step type decodes its own body (no I/O), and a decoded step probes,
// plans and applies through the host connection the engine hands it. The
// engine never knows a step type's fields; a step type never reaches into
// the engine.

package steps

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr/types"

	"github.com/runbook-dev/runbook/internal/redact"
	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/internal/transport"
)

// Type is a step type: what it is (Describe) and a factory that decodes a
// body into a Step.
type Type interface {
	// Describe says what the type is, the same each time. The loader calls
	// it for every step it decodes: return a package-level value.
	Describe() Descriptor
	// Decode builds a step from its body. It reports problems through d
	// and must not do any I/O.
	Decode(d *Decoder, body Body) Step
}

// Descriptor is what a step type is, for the registry, the loader, the
// schema generator, the docs and lint: one value per type, so that a type
// cannot say one thing to the loader and another to the schema.
type Descriptor struct {
	// Name is the step-type key, such as "ssh-exec": not empty, unique in
	// a registry.
	Name string
	// Doc is a one-line description, for the schema and `runbook show`.
	Doc string
	// Fields describes the body's keys; the decoder rejects any other key.
	Fields []Field
	// Result is the type of the step's result in expressions. It is shared:
	// callers must not modify it.
	Result types.Map
	// Waits says the type waits for a condition to hold over time
	// (wait-until): it is no body for a guard or a probe, which look once,
	// and lint counts it as verifying what the steps before it did.
	Waits bool
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

// The optional interfaces below are capabilities a decoded step may have.
// Each step type states the ones it implements with compile-time guards
// (var _ Changer = (*sshExec)(nil)) beside its methods: a misspelt or
// removed method then breaks the build instead of silently changing how
// resume or lint treat the step.

// Changer is implemented by a step that can tell, without I/O, whether it
// may change its host (an ssh-exec that is not read_only, a file-patch),
// for the lint that asks for a guard or a verification. A step that does
// not implement it is taken as changing nothing.
type Changer interface {
	MayChange() bool
}

// Idler is implemented by a step that can tell, without I/O, that it does
// nothing at all (an ssh-exec whose command is `true`): it stands only to
// carry a confirmation gate whose text shows what earlier steps observed,
// and may run wherever a read-only step may.
type Idler interface {
	Idle() bool
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
	// Where returns the name of that host rendered in env, and false when
	// the step names none or its name cannot be rendered.
	Where(env map[string]any) (string, bool)
}

// Settler is implemented by a step type whose change can go on on the host
// after the engine lost track of it, beyond a process group the engine
// journals (an SQL statement still running in its server). Before a resume
// checks an in-doubt step again, Settle waits up to wait until no work of
// an earlier attempt (found by x.Tag) still runs, or returns an error
// saying what still runs.
type Settler interface {
	Settle(ctx context.Context, x *Exec, wait time.Duration) error
}

// ResultError is a failure that comes with the step's result: the step
// type judged a result a failure (a command's exit code), and a
// playbook's failed_when may judge it otherwise. A failure to reach the
// host or to run the step at all has no result and is no ResultError.
type ResultError interface {
	error
	Observed() Result
}

// Result is what a step observed or did; expressions see it as
// steps.<id>.result and, in probes, as result.
type Result map[string]any

// RedactResult returns a copy of r with secrets masked in every value and
// key; nil stays nil.
func RedactResult(red *redact.Redactor, r Result) Result {
	if r == nil {
		return nil
	}
	return Result(red.Value(map[string]any(r)).(map[string]any))
}

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
	// Warn reports what the operator must be told about a step that did
	// its work (its output cut at its limit): the engine shows and
	// journals it with the step's outcome. It may be nil.
	Warn func(msg string)
	// Connect returns the host's connection, opening it on first use.
	Connect func(ctx context.Context) (transport.Conn, error)
	// LocalDir is the directory a relative path on this machine (capture's
	// dest) is resolved against: the working directory of the run's first
	// attempt, so that a resume started elsewhere writes beside what the
	// run wrote. Empty: the process's working directory.
	LocalDir string
	// ForHost returns an Exec for another host of the inventory, for probes
	// that name their own host.
	ForHost func(ctx context.Context, name string) (*Exec, error)
	// Redact masks the run's secrets. A step redacts what it observed
	// before it cuts, trims, joins or quotes it into a message (an error, a
	// plan's summary, a diff): a piece of a secret left by a cut matches no
	// form of it afterwards. Nil masks nothing.
	Redact *redact.Redactor
	// Tag names this step of this run on this host ("runbook RUNID step
	// N[.ITEM] HOST", at most 63 bytes, PostgreSQL's limit for application_name):
	// the same in every attempt of the run, so that work an attempt left
	// running on the host can be found by a resume. Empty outside a run.
	Tag string
	// ServicePorts are the ports of the host's own services (PostgreSQL's,
	// an API's) that a probe tries when the host's SSH port does not
	// answer: the host counts as down only when none of them answers
	// either (see Observe).
	ServicePorts []int
	// Sightings are the run's observations of hosts that are down, shared
	// by its probes (see Sightings); nil shares none.
	Sightings *Sightings
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
		name := t.Describe().Name
		if name == "" {
			panic("step: type with empty name")
		}
		if _, dup := r.types[name]; dup {
			panic("step: duplicate type " + name)
		}
		r.types[name] = t
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
// returns its result with `reachable` set: a host that is down is an
// observation, not an error, so that a guard can assert on it.
func RunProbe(ctx context.Context, x *Exec, p *ProbeSpec) (Result, error) {
	target := x
	if p.Host != nil {
		name, err := p.Host.Render(x.Env)
		if err != nil {
			return nil, err
		}
		if target, err = x.ForHost(ctx, name); err != nil {
			return nil, err
		}
	}
	if p.Become != "" || p.ServicePorts != nil {
		ports, err := RenderPorts(p.ServicePorts, x.Env)
		if err != nil {
			return nil, err
		}
		t := *target
		if p.Become != "" {
			t.Become = p.Become
		}
		t.ServicePorts = ports
		target = &t
	}
	return Observe(ctx, target, p.Step)
}

// RenderPorts renders a list of templated port numbers.
func RenderPorts(ts []*tmpl.Template, env map[string]any) ([]int, error) {
	var out []int
	for _, t := range ts {
		s, err := t.Render(env)
		if err != nil {
			return nil, err
		}
		p, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("service_ports: %q is not a port number", s)
		}
		out = append(out, p)
	}
	return out, nil
}

// ServicePortTimeout bounds the attempt to reach a service port of a host
// whose SSH port did not answer.
const ServicePortTimeout = 3 * time.Second

// DownError is a host whose SSH port does not answer while one of its
// service ports does: the machine is up, so a guard must not treat it as
// down.
type DownError struct {
	Host string
	// Answered is the host:port that answered.
	Answered string
	SSH      error
}

func (e *DownError) Error() string {
	return fmt.Sprintf("host %s: its SSH port does not answer (%v), but %s does: the machine is up, not down; fix SSH to it (or power it off) and try again", e.Host, e.SSH, e.Answered)
}

// DownResulter is implemented by a step whose result, when its host is
// down, says more than reachable == false: the values its own fields take
// when nothing answers (sql: answered == false), so that an assert reads
// them whether the host was probed or a recent sighting was reused.
type DownResulter interface {
	DownResult() Result
}

// withDown adds s's DownResult, when it has one, to r.
func withDown(s Step, r Result) Result {
	if d, ok := s.(DownResulter); ok {
		for k, v := range d.DownResult() {
			if _, set := r[k]; !set {
				r[k] = v
			}
		}
	}
	return r
}

// Observe probes s on x's host. A host is down, and the result has
// reachable == false, only when nothing answers at its SSH port
// (transport.UnreachableError) and nothing answers at any of
// x.ServicePorts on the same address within ServicePortTimeout. Any other
// failure to reach the host (refused, a handshake or authentication that
// fails, a host key mismatch, a service port that answers) is an error:
// the machine is up. The service ports are tried while the probe runs, so
// that a host that is down costs one timeout, not two.
func Observe(ctx context.Context, x *Exec, s Step) (Result, error) {
	share := shares(x, s)
	if share {
		if r := x.Sightings.recent(x.Host.Name, x.Host.Address, x.ServicePorts); r != nil {
			return withDown(s, r), nil
		}
	}
	var early <-chan string
	if len(x.ServicePorts) > 0 && x.Host.Address != "" {
		pctx, cancel := context.WithCancel(ctx)
		defer cancel()
		early = answering(pctx, x.Host.Address, x.ServicePorts)
	}
	r, err := s.Probe(ctx, x)
	if err != nil {
		var u *transport.UnreachableError
		if !errors.As(err, &u) {
			return nil, err
		}
		if err := confirmDown(ctx, x, u, early); err != nil {
			return nil, err
		}
		if share {
			x.Sightings.record(x.Host.Name, x.Host.Address, x.ServicePorts, u)
		}
		return withDown(s, Result{"reachable": false, "error": err.Error()}), nil
	}
	// Reached: the host's findings go. A probe of an address of its own
	// that found nothing answering there (sql's answered == false) has
	// not reached the host, and says nothing of its address: a guard's
	// such look ending after a fact's finding must not drop it.
	if share || r["answered"] != false {
		x.Sightings.forget(x.Host.Name)
	}
	out := Result{"reachable": true, "error": ""}
	for k, v := range r {
		out[k] = v
	}
	return out, nil
}

// confirmDown checks that none of the service ports of a host whose SSH
// port is silent answers, on the address SSH was tried at. early, when not
// nil, gives what trying the inventory address found.
func confirmDown(ctx context.Context, x *Exec, u *transport.UnreachableError, early <-chan string) error {
	if len(x.ServicePorts) == 0 {
		return nil
	}
	if u.Via != "" {
		return fmt.Errorf("host %s: %v; its service ports %v cannot be tried from here through the jump host %s, so it cannot be judged down", x.Host.Name, u, x.ServicePorts, u.Via)
	}
	// Silent both where SSH was tried and at the inventory's address: a
	// wrong HostName in ssh_config must not make a live host look down.
	host := x.Host.Address
	if h, _, err := net.SplitHostPort(u.Addr); err == nil {
		host = h
	}
	checks := []<-chan string{early}
	if early == nil {
		checks[0] = answering(ctx, host, x.ServicePorts)
	} else if host != x.Host.Address {
		if _, err := net.DefaultResolver.LookupHost(ctx, x.Host.Address); err != nil {
			// An ssh_config alias that only ssh knows: its HostName is
			// the address.
			checks = checks[:0]
		}
		checks = append(checks, answering(ctx, host, x.ServicePorts))
	}
	for _, c := range checks {
		if addr := <-c; addr != "" {
			return &DownError{Host: x.Host.Name, Answered: addr, SSH: u.Err}
		}
	}
	return nil
}

// answering tries every port of host at once and sends the first host:port
// that answers, or "" when none does within ServicePortTimeout.
func answering(ctx context.Context, host string, ports []int) <-chan string {
	out := make(chan string, 1)
	go func() {
		answered := make([]bool, len(ports))
		var wg sync.WaitGroup
		for i, p := range ports {
			wg.Go(func() {
				answered[i] = transport.Answers(ctx, net.JoinHostPort(host, strconv.Itoa(p)), ServicePortTimeout)
			})
		}
		wg.Wait()
		for i, a := range answered {
			if a {
				out <- net.JoinHostPort(host, strconv.Itoa(ports[i]))
				return
			}
		}
		out <- ""
	}()
	return out
}
