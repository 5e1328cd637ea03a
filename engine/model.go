// Package engine loads, validates and runs playbooks: the model, the loader
// that keeps every value's position, the checks, and the runner.
package engine

import (
	"regexp"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/internal/transport"
	"github.com/runbook-dev/runbook/steps"
)

// Version is the playbook format version this engine reads.
const Version = 1

// Playbook is a loaded and validated playbook.
type Playbook struct {
	File        string
	Name        string
	Description string
	Params      []*Param
	Secrets     []*Secret
	Vars        []*Var
	// VarsFiles are the vars files the playbook lists (vars_files:).
	VarsFiles []*VarsFile
	// Facts are observed after the vars and before the guards.
	Facts   []*Fact
	Lock    *tmpl.Template
	Require []*Guard
	// Confirm is asked after the guards pass and before the first step.
	Confirm *Confirm
	Steps   []*Step
	// Outcome, when set, is what the run reports when it ends: a text, a
	// value and the exit status (a status view, a monitoring check).
	Outcome *RunOutcome
	// Outputs are what the playbook gives back to one that runs it.
	Outputs []*Output
	// Frames are the playbooks the playbook includes (a step with
	// playbook:), and theirs, parents before their children: their steps,
	// guards and facts are in Steps, Require and Facts, each with its
	// Frame.
	Frames []*Frame
	// Hash is the SHA-256 of the source, to tell whether a playbook changed.
	Hash string
	// Source is the playbook's text: a secret that occurs in it cannot be
	// redacted safely (see CheckSecrets).
	Source []byte
}

// ParamType is the type of a parameter.
type ParamType string

// The parameter types.
const (
	TypeString   ParamType = "string"
	TypeInt      ParamType = "int"
	TypeBool     ParamType = "bool"
	TypeDuration ParamType = "duration"
	TypeHost     ParamType = "host"
	TypeList     ParamType = "list"
)

var paramTypes = []string{"string", "int", "bool", "duration", "host", "list"}

// Param is a declared parameter.
type Param struct {
	Name        string
	Type        ParamType
	Description string
	Default     any
	HasDefault  bool
	Required    bool
	Enum        []string
	// Pattern, when set, is what every value must match (-p and default).
	Pattern *regexp.Regexp
	Pos     diag.Pos
	// File is where the param is declared: the playbook, or a vars file.
	File string
}

// Secret is a declared secret and where its value comes from.
type Secret struct {
	Name        string
	Env         string
	File        string
	Description string
	// Optional secrets are "" when neither env nor file gives a value.
	Optional bool
	Pos      diag.Pos
}

// Var is a value computed from params when the run starts.
type Var struct {
	Name  string
	Value *tmpl.Template
	Pos   diag.Pos
}

// Guard is a read-only probe with an assertion, checked before any step.
type Guard struct {
	Name string
	Pos  diag.Pos
	// Host names the host; nil with no Hosts runs on localhost.
	Host *tmpl.Template
	// Hosts, or HostsExpr (one expression giving a list), probe every
	// host of a group: the guard holds when it holds on each.
	Hosts     []*tmpl.Template
	HostsExpr *tmpl.Template
	// Tolerate says which hosts of Hosts may fail the guard and the run
	// still go on: recorded, and the run ends partial.
	Tolerate Tolerance
	Type     steps.Type
	Probe    steps.Step
	Assert   *tmpl.Expr
	// Hint tells the operator what to do when the guard fails.
	Hint   *tmpl.Template
	Become string
	// ServicePorts are tried when the host's SSH port does not answer:
	// the host is down only when none of them answers either.
	ServicePorts []*tmpl.Template
	// Tainted are the probe's templates whose values may hold a secret:
	// the run masks what they give.
	Tainted []*tmpl.Template
	// Frame is the included playbook the guard belongs to; nil for the
	// playbook's own.
	Frame *Frame
	// Reads says which facts the guard reads: it starts when those are in.
	Reads FactReads
}

// Confirm is a confirmation gate: before an irreversible change the
// operator reads Text (the evidence the decision rests on) and types Word
// to go on, or --yes answers it.
type Confirm struct {
	Text *tmpl.Template
	Word *tmpl.Template
	Pos  diag.Pos
}

// itemKey is where for_each puts the current element in the environment.
const itemKey = "item"

// Step is one step of a playbook.
type Step struct {
	ID   string
	Name string
	Pos  diag.Pos
	// Host names the host; nil with no Hosts runs on localhost.
	Host *tmpl.Template
	// Hosts fans the step out: each entry names a host or a group.
	Hosts []*tmpl.Template
	// HostsExpr is a hosts: written as one expression giving a list.
	HostsExpr *tmpl.Template
	// Parallel bounds how many hosts of Hosts run at once.
	Parallel int
	// MaxFailures is how many hosts of Hosts may fail before the others
	// are stopped; 0 stops at the first failure.
	MaxFailures int
	When        *tmpl.Expr
	Timeout     steps.DurationValue
	Retries     steps.IntValue
	RetryDelay  steps.DurationValue
	Become      string
	Type        steps.Type
	Body        steps.Step
	// Assert verifies the step's result after it ran.
	Assert *tmpl.Expr
	// Message replaces the generic text when Assert fails.
	Message *tmpl.Template
	// Print is shown under the step's line when it succeeds, and journaled.
	Print *tmpl.Template
	// ForEach runs the step once per element of a list, as item.
	ForEach *tmpl.Template
	// Confirm is asked before the step makes its change, once for all its
	// hosts and elements, and only when its plan finds a change to make.
	Confirm *Confirm
	// Tainted are the templates of the step's body whose values may hold
	// a secret (tmpl.Taint): the run masks what they give, not only the
	// secrets themselves.
	Tainted []*tmpl.Template
	// Tolerate says which failures of the step on a host let the run go
	// on: recorded, reported at the end, and the run ends partial.
	Tolerate Tolerance
	// FailedWhen, when set, decides whether the step failed from its
	// result instead of the step type (a command's exit code).
	FailedWhen *tmpl.Expr
	// Batch is the batch the step belongs to, nil for a step of its own.
	Batch *Batch
	// Frame is the included playbook the step belongs to; nil for the
	// playbook's own.
	Frame *Frame
}

// Tolerance is which failures of a step or a guard on a host the run
// goes on after.
type Tolerance struct {
	// Unreachable tolerates a host whose SSH port could not be connected
	// to (transport.Unconnected): nothing answers (a timeout, no route),
	// the connection is refused, or its address does not resolve.
	Unreachable bool
	// Failed tolerates every failure, unreachable hosts included.
	Failed bool
}

// Covers says whether the tolerance lets the run go on after err.
func (t Tolerance) Covers(err error) bool {
	return t.Failed || t.Unreachable && transport.Unconnected(err)
}

// Batch runs a sequence of steps on its hosts a batch at a time (one host
// at a time by default): every step on the first batch, then every step
// on the next, as a rolling restart does. The run moves to the next batch
// only when the sequence succeeded on the one before, or its failures are
// within the budget.
type Batch struct {
	Name string
	Pos  diag.Pos
	// Hosts names the hosts and groups; HostsExpr is hosts: written as one
	// expression giving a list.
	Hosts     []*tmpl.Template
	HostsExpr *tmpl.Template
	// Serial are the sizes of the batches in order, the last one repeated.
	Serial []BatchSize
	// MaxFailures is how many hosts may fail before the run stops;
	// MaxFailPercent, when >= 0, the percentage of the hosts instead.
	MaxFailures    int
	MaxFailPercent int
	// First and Last are the 1-based indices of its steps in the
	// playbook's steps.
	First, Last int
}

// BatchSize is the size of one batch: N hosts, or N percent of them.
type BatchSize struct {
	N       int
	Percent bool
}

// single reports whether the step runs once: on one host, without
// for_each.
func (s *Step) single() bool {
	return s.Batch == nil && len(s.Hosts) == 0 && s.HostsExpr == nil && s.ForEach == nil
}

// Label returns the name shown for a step; a step of an included
// playbook is prefixed with its frame's path ("standby: Take a base
// backup").
func (s *Step) Label() string {
	l := s.Type.Describe().Name
	switch {
	case s.Name != "":
		l = s.Name
	case s.ID != "":
		l = s.ID
	}
	if s.Frame != nil {
		return s.Frame.Path() + ": " + l
	}
	return l
}

// Key returns the step's id as the journal records it: its id, after its
// frame's path for a step of an included playbook ("standby/basebackup").
func (s *Step) Key() string {
	if s.Frame == nil {
		return s.ID
	}
	return s.Frame.Path() + "/" + s.ID
}
