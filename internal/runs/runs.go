// Package runs keeps the journals of durable runs, in the local state
// directory or in a shared PostgreSQL, and reads a journal back into what
// a resume needs: which steps finished, with their results, and which were
// started and never reported.
package runs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/journal"
)

// Record kinds of a run's journal.
const (
	KindRun     = "run"       // the header, first record
	KindResume  = "resume"    // a resume continues the run from here
	KindGuard   = "guard"     // a guard's result
	KindConfirm = "confirm"   // the operator's answer at a confirmation gate
	KindIntent  = "intent"    // a step is about to run on a host
	KindApply   = "apply"     // its plan found a change and it is making it
	KindProcess = "process"   // the process group of the command making it
	KindMark    = "mark"      // steps up to an index may make changes from now on
	KindDone    = "step-done" // a step ended on all its hosts
	KindOutcome = "outcome"   // how it ended
	KindEnd     = "end"       // the run (or one attempt of it) ended
)

// Header is the first record of a run's journal. Secrets appear by name
// only.
type Header struct {
	RunID    string `json:"run_id"`
	Playbook string `json:"playbook"`
	File     string `json:"file"`
	// Path is the playbook file's absolute path, for a resume started
	// from another directory; empty for a bundled playbook.
	Path   string         `json:"path,omitempty"`
	Hash   string         `json:"hash"`
	Params map[string]any `json:"params"`
	// Given are the parameters as given on the command line, which a
	// resume parses again.
	Given     map[string]string `json:"given,omitempty"`
	Secrets   []string          `json:"secrets"`
	Inventory string            `json:"inventory,omitempty"`
	Operator  string            `json:"operator"`
	Host      string            `json:"host"`
	PID       int               `json:"pid"`
	Started   time.Time         `json:"started"`
	// BootID is the boot of the machine that wrote the journal: a resume on
	// the same boot knows the kernel kept every record written.
	BootID string `json:"boot_id,omitempty"`
	// Yes says the run was started with --yes: its confirmation gates are
	// answered without asking (each answer is a confirm record).
	Yes bool `json:"yes,omitempty"`
}

// Attempt is the record a resume writes before it runs anything.
type Attempt struct {
	Operator string    `json:"operator"`
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Started  time.Time `json:"started"`
	// Flags are the resume's options that change what runs.
	Flags []string `json:"flags,omitempty"`
	// Hash is the playbook's hash at the resume, when it changed.
	Hash   string `json:"hash,omitempty"`
	BootID string `json:"boot_id,omitempty"`
	// Watermark is the step up to which the resume found the journal may
	// have lost records (engine.Resume.Watermark), 0 if it is complete.
	Watermark int `json:"watermark,omitempty"`
}

// Journal is a run's journal open for writing.
type Journal interface {
	// Append writes a record and returns once it is durable, with every
	// record written before it.
	Append(kind string, data any) error
	// Write writes a record that the next Append or Sync makes durable.
	Write(kind string, data any) error
	// Stage keeps a record for the next Write, Append or Sync to write,
	// in order: a record that may be lost with everything after it if the
	// process dies, because nothing has acted on it yet.
	Stage(kind string, data any) error
	// Sync makes every record written or staged so far durable.
	Sync() error
	Close() error
}

// Store keeps the journals of runs.
type Store interface {
	// Create starts the journal of a new run with its header.
	Create(h Header) (Journal, error)
	// Continue opens a run's journal to resume the run and returns its
	// records. It fails with a *BusyError while the run, or a resume of
	// it, still writes the journal.
	Continue(runID string) (Journal, []journal.Record, error)
	// Read returns the records of a run that can be trusted and, if the
	// journal is damaged or torn, the problem.
	Read(runID string) ([]journal.Record, *journal.Problem, error)
	// List returns the ids of the runs, oldest first.
	List() ([]string, error)
	// Running reports whether a run's journal is held by a live writer.
	Running(runID string) bool
	Close() error
}

// BusyError is a resume refused because the run is still going.
type BusyError struct {
	Header Header
}

func (e *BusyError) Error() string {
	h := e.Header
	return fmt.Sprintf("run %s is still running (pid %d on %s, operator %s): stop it first, or wait for it to end", h.RunID, h.PID, h.Host, h.Operator)
}

// ErrEmpty is a journal with no record: the machine stopped before the
// run's first sync, which comes before any change.
var ErrEmpty = errors.New("the journal is empty: the machine stopped before the run changed anything (nothing of the run reached the disk); run the playbook again")

// ErrNoRun is a run id that no journal has.
var ErrNoRun = errors.New("no such run")

// State is what a run's journal says about it.
type State struct {
	Header Header
	// Status is the status of the last attempt's end: ok, failed or
	// interrupted; "crashed" when the last attempt has no end record.
	Status string
	// Message is the last end record's message.
	Message string
	// Attempts counts the run and its resumes.
	Attempts int
	// Done and InDoubt are what a resume needs (engine.Resume).
	Done     map[engine.StepKey]engine.Outcome
	InDoubt  map[engine.StepKey]string
	Applying map[engine.StepKey]bool
	// Processes are the commands in-doubt steps started on their hosts.
	Processes map[engine.StepKey]engine.Leftover
	// Watermark is the highest step index the journal says may have made
	// changes (engine.Resume.Watermark), StepsDone the steps that ended
	// on all their hosts.
	Watermark int
	StepsDone map[int]bool
	// LostWatermark is the highest watermark an earlier resume took the
	// journal to have lost records up to: it holds for every later resume.
	LostWatermark int
	// Confirmed are the confirmation gates passed and acted on
	// (engine.Resume.Confirmed): a confirm record, then an apply record
	// of the gate's step (of any step, for the playbook's gate, index 0).
	Confirmed map[int]bool
	// Writer is the machine (host name, boot id) of the last attempt.
	WriterHost, WriterBoot string
}

// Complete reports whether the journal holds every record the run wrote:
// its last attempt ended and said so, or it was written by this machine
// since it last booted, whose kernel kept every write of a killed process.
// Otherwise (a power cut, a reboot, a store that buffers in the process)
// the records after the last sync may be lost, and a resume must take the
// steps up to the watermark as in doubt.
func (st *State) Complete(local bool, host, boot string) bool {
	if st.Status != StatusCrashed {
		return true
	}
	return local && boot != "" && st.WriterBoot == boot && st.WriterHost == host
}

// StatusCrashed is a run whose last attempt ended without a word.
const StatusCrashed = "crashed"

// Fold reads a run's records into its state. A step's outcome ok, changed
// or skipped makes it done; failed undoes that (it runs again); a step
// started and never reported, or interrupted while it ran, is in doubt.
func Fold(recs []journal.Record) (*State, error) {
	if len(recs) == 0 {
		return nil, ErrEmpty
	}
	if recs[0].Kind != KindRun {
		return nil, errors.New("the journal has no run header")
	}
	st := &State{Done: map[engine.StepKey]engine.Outcome{}, InDoubt: map[engine.StepKey]string{}, Applying: map[engine.StepKey]bool{},
		Processes: map[engine.StepKey]engine.Leftover{}, StepsDone: map[int]bool{}, Confirmed: map[int]bool{},
		Status: StatusCrashed, Attempts: 1}
	// The gates confirmed whose change has not started yet.
	pending := map[int]bool{}
	if err := json.Unmarshal(recs[0].Data, &st.Header); err != nil {
		return nil, fmt.Errorf("run header: %w", err)
	}
	st.WriterHost, st.WriterBoot = st.Header.Host, st.Header.BootID
	for _, r := range recs[1:] {
		switch r.Kind {
		case KindResume:
			st.Attempts++
			st.Status, st.Message = StatusCrashed, ""
			// A gate counts only if its own attempt acted on it.
			clear(pending)
			var a Attempt
			if err := json.Unmarshal(r.Data, &a); err == nil {
				st.WriterHost, st.WriterBoot = a.Host, a.BootID
				st.LostWatermark = max(st.LostWatermark, a.Watermark)
			}
		case KindMark, KindDone:
			var m struct {
				Index int `json:"index"`
			}
			if err := json.Unmarshal(r.Data, &m); err != nil {
				return nil, fmt.Errorf("record %d: %w", r.Seq, err)
			}
			if r.Kind == KindMark && m.Index > st.Watermark {
				st.Watermark = m.Index
			}
			if r.Kind == KindDone {
				st.StepsDone[m.Index] = true
			}
		case KindConfirm:
			var ev engine.Event
			if err := json.Unmarshal(r.Data, &ev); err != nil {
				return nil, fmt.Errorf("record %d: %w", r.Seq, err)
			}
			pending[ev.Index] = ev.Status == engine.StatusOK
		case KindEnd:
			var ev engine.Event
			if err := json.Unmarshal(r.Data, &ev); err != nil {
				return nil, fmt.Errorf("record %d: %w", r.Seq, err)
			}
			st.Status, st.Message = string(ev.Status), ev.Message
		case KindIntent, KindApply, KindProcess, KindOutcome:
			ev, err := decodeEvent(r.Data)
			if err != nil {
				return nil, fmt.Errorf("record %d: %w", r.Seq, err)
			}
			k := engine.StepKey{Index: ev.Index, Host: ev.Host, Item: ev.Item}
			switch r.Kind {
			case KindIntent:
				delete(st.Done, k)
				// A lost attempt that was applying, followed by one that
				// started again, keeps the mark: the change may be made.
				st.InDoubt[k] = ev.Name
				continue
			case KindApply:
				st.Applying[k] = true
				for _, i := range []int{0, k.Index} {
					if pending[i] {
						st.Confirmed[i] = true
					}
				}
				continue
			case KindProcess:
				st.Processes[k] = engine.Leftover{PID: ev.PID, Since: r.Time}
				continue
			}
			if ev.Status != engine.StatusInterrupted && ev.Status != engine.StatusInDoubt {
				// Ended: its command ended with it. (An interrupted one was
				// killed, unless the connection was lost first: kept.)
				delete(st.Processes, k)
				delete(st.Applying, k)
			}
			switch ev.Status {
			case engine.StatusOK, engine.StatusChanged, engine.StatusSkipped:
				delete(st.InDoubt, k)
				st.Done[k] = engine.Outcome{Status: ev.Status, Result: ev.Result, ID: ev.ID}
			case engine.StatusFailed:
				// It ended, badly: nothing is in doubt, and it runs again.
				delete(st.InDoubt, k)
				delete(st.Done, k)
			case engine.StatusInterrupted, engine.StatusInDoubt:
				// Cancelled while it ran, or its connection lost: its change
				// may be half made, or still being made.
				if _, started := st.InDoubt[k]; !started {
					delete(st.Done, k)
				}
			}
		}
	}
	return st, nil
}

// decodeEvent reads an event with its result's numbers as int where they
// are whole, as the step types produce them, so that expressions of a
// resumed run compare them as before.
func decodeEvent(data []byte) (*engine.Event, error) {
	var ev engine.Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, err
	}
	if ev.Result != nil {
		var raw struct {
			Result map[string]any `json:"result"`
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		ev.Result = numbers(raw.Result).(map[string]any)
	}
	return &ev, nil
}

func numbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return int(i)
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		for k, e := range v {
			v[k] = numbers(e)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = numbers(e)
		}
		return v
	default:
		return v
	}
}
