// Package engine loads, validates and runs playbooks: the model, the loader
// that keeps every value's position, the checks, and the runner.
package engine

import (
	"regexp"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/tmpl"
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
	Pos         diag.Pos
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
	// Host names the host; nil runs on localhost.
	Host   *tmpl.Template
	Type   steps.Type
	Probe  steps.Step
	Assert *tmpl.Expr
	// Hint tells the operator what to do when the guard fails.
	Hint   *tmpl.Template
	Become string
	// ServicePorts are tried when the host's SSH port does not answer:
	// the host is down only when none of them answers either.
	ServicePorts []*tmpl.Template
	// Tainted are the probe's templates whose values may hold a secret:
	// the run masks what they give.
	Tainted []*tmpl.Template
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
}

// single reports whether the step runs once: on one host, without
// for_each.
func (s *Step) single() bool {
	return len(s.Hosts) == 0 && s.HostsExpr == nil && s.ForEach == nil
}

// Label returns the name shown for a step.
func (s *Step) Label() string {
	if s.Name != "" {
		return s.Name
	}
	if s.ID != "" {
		return s.ID
	}
	return s.Type.Describe().Name
}
