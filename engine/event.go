package engine

import (
	"time"

	"github.com/runbook-dev/runbook/internal/redact"
	"github.com/runbook-dev/runbook/steps"
)

// Status is the outcome of a guard or a step on one host.
type Status string

// The outcomes.
const (
	StatusOK      Status = "ok"
	StatusChanged Status = "changed"
	StatusSkipped Status = "skipped"
	StatusFailed  Status = "failed"
	// StatusWould is a dry run's outcome of a step that would change things.
	StatusWould Status = "would-change"
	// StatusUnknown is a dry run's outcome of a step whose inputs depend on
	// a step the dry run did not apply.
	StatusUnknown Status = "unknown"
	// StatusInterrupted is a step cancelled by Ctrl-C or a signal.
	StatusInterrupted Status = "interrupted"
	// StatusInDoubt is a step whose connection to its host was lost while
	// it made its change: the change may be made, or still being made by a
	// command that outlived the connection. A resume checks the host again,
	// and waits for such a command, before it acts; the run does not retry
	// it.
	StatusInDoubt Status = "in-doubt"
	// StatusPartial is a run that went through its steps while some
	// failed on some hosts in a way the playbook tolerates.
	StatusPartial Status = "partial"
)

// EventType says what an event reports.
type EventType string

// The event types, in the order a run emits them.
const (
	EventRunStart EventType = "run-start"
	EventGuard    EventType = "guard"
	// EventConfirm is a confirmation gate: answered (status ok or failed,
	// with the answer), or in a dry run shown without asking.
	EventConfirm EventType = "confirm"
	// EventBatch says a batch of hosts starts the steps of a batch: Index
	// is its first step, Name the batch's, Host its hosts, Item and
	// Message which batch of how many. A journal has it on disk before
	// any step of the batch runs (so that a resume knows which hosts the
	// batch reached, whatever else was lost).
	EventBatch        EventType = "batch"
	EventStepStart    EventType = "step-start"
	EventStepProgress EventType = "step-progress"
	// EventStepApply says a step's plan found a change to make and the
	// step is making it now.
	EventStepApply EventType = "step-apply"
	// EventStepProcess gives the process group of the command a step runs
	// on its host to make its change.
	EventStepProcess EventType = "step-process"
	// EventStepDone says a step ended well on all its hosts.
	EventStepDone EventType = "step-done"
	EventStepEnd  EventType = "step-end"
	EventRunEnd   EventType = "run-end"
)

// Event is one thing that happened in a run. Secrets never reach an event:
// the runner redacts every text field before a sink sees it.
type Event struct {
	Time     time.Time `json:"time,omitzero"`
	Type     EventType `json:"type"`
	Playbook string    `json:"playbook,omitempty"`
	Index    int       `json:"index,omitempty"`
	ID       string    `json:"id,omitempty"`
	Name     string    `json:"name,omitempty"`
	Host     string    `json:"host,omitempty"`
	// PID is the process group of a step-process event.
	PID int `json:"pid,omitempty"`
	// Item is the 1-based element of a for_each step; on a batch event,
	// the 1-based batch.
	Item     int           `json:"item,omitempty"`
	Status   Status        `json:"status,omitempty"`
	Duration time.Duration `json:"duration_ns,omitempty"`
	Message  string        `json:"message,omitempty"`
	// Print is a step's print text, rendered with its result (step-end).
	Print string `json:"print,omitempty"`
	Diff  string `json:"diff,omitempty"`
	// Warning, on a step-end, is what the step did not do fully though
	// it did its work (its output cut at max_output).
	Warning string `json:"warning,omitempty"`
	DryRun  bool   `json:"dry_run,omitempty"`
	// Result is a step's result (step-end), with secrets redacted: a
	// resumed run takes it from the journal for the steps it does not run
	// again.
	Result steps.Result `json:"result,omitempty"`
	// Batches, on the batch event of a batch's first hosts, are all its
	// batches: a resume refuses to split its hosts otherwise.
	Batches [][]string `json:"batches,omitempty"`
	// Resumed marks the outcome of a step an earlier attempt finished.
	Resumed bool `json:"resumed,omitempty"`
	// Word is what a confirm event's gate asked the operator to type, and
	// Answer what was typed; Yes says --yes answered it. Operator is who
	// answered (user@machine). The gate's text is the Message.
	Word     string `json:"word,omitempty"`
	Answer   string `json:"answer,omitempty"`
	Yes      bool   `json:"yes,omitempty"`
	Operator string `json:"operator,omitempty"`
	// Report, on run-start, says the playbook has an outcome text: the
	// step lines are details. Output, Value and ExitCode are its outcome
	// (run-end).
	Report   bool         `json:"report,omitempty"`
	Output   string       `json:"output,omitempty"`
	Value    steps.Result `json:"value,omitempty"`
	ExitCode *int         `json:"exit_code,omitempty"`
	// Durable asks a journal to have the event, and every event before it,
	// on disk before the run goes on: the run's end. Before a step changes
	// anything, the runner waits for its mark instead (see Marker).
	Durable bool `json:"-"`
}

// Sink receives events. Emit is called from several goroutines at once
// when a step fans out over hosts: implementations must be safe for
// concurrent use.
type Sink interface {
	Emit(e *Event)
}

// Marker is implemented by a sink that journals the run. Before step N
// makes any change, a durable record must say that steps up to N may be
// making changes, so that a resume after a power cut, which loses what was
// not synced, takes them as in doubt rather than not started. While steps
// make changes, marks are asked for a few steps ahead and sync in the
// background while the steps before them run; AwaitMark(N) before step N
// applies a change then rarely waits (see marks).
type Marker interface {
	// Mark records that steps up to index may make changes, and makes the
	// record durable in the background.
	Mark(index int)
	// AwaitMark returns once a mark of index or more is durable.
	AwaitMark(index int) error
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(*Event)

// Emit implements Sink.
func (f SinkFunc) Emit(e *Event) { f(e) }

// Redacted replaces a secret value.
const Redacted = redact.Mask

// redactingSink passes events on with secrets removed. It does not
// serialise them: sinks are safe for concurrent use, which lets a journal
// share fsyncs between the hosts of a fan-out.
type redactingSink struct {
	next Sink
	// red returns the run's redactor at the time of the event: it grows
	// with the values the run computes from secrets.
	red func() *redact.Redactor
}

func (s *redactingSink) Emit(e *Event) {
	red := s.red()
	e.Message = red.String(e.Message)
	e.Print = red.String(e.Print)
	e.Diff = red.String(e.Diff)
	e.Warning = red.String(e.Warning)
	e.Name = red.String(e.Name)
	e.Host = red.String(e.Host)
	e.Word = red.String(e.Word)
	e.Answer = red.String(e.Answer)
	e.Result = steps.RedactResult(red, e.Result)
	e.Output = red.String(e.Output)
	e.Value = steps.RedactResult(red, e.Value)
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if s.next != nil {
		s.next.Emit(e)
	}
}
