// Package durable is the one home of durable runs: the records of a run's
// journal (their kinds, and their format both ways: events encoded into
// records, records decoded back), the stores that keep journals (a local
// state directory, a shared PostgreSQL), the sink that turns a run's
// events into records and decides how far each goes before the run goes
// on, the fold of a journal into what a resume needs, the resume policy,
// and the locks (lock:) that keep two runs apart. The line format under
// the records (checksums, torn and damaged lines) is internal/journal's.
package durable

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/journal"
)

// Record kinds of a run's journal. The data of a run record is a Header,
// of a resume record an Attempt, of mark and step-done records
// {"index": N}, and of every other kind the event it records, as
// json.Marshal encodes an engine.Event (appendEvent writes those bytes,
// decodeEvent reads them back). Which event makes which record, and how
// far each is written before the run goes on: recordFor.
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
	KindBatch   = "batch"     // a batch of hosts starts the steps of a batch (the first: with the split)
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
	Path string `json:"path,omitempty"`
	// Dir is the working directory of the run's first attempt, against
	// which its relative local paths (capture's dest) are resolved, by
	// every resume too (engine.Runner.Dir).
	Dir    string         `json:"dir,omitempty"`
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
	// BatchRecords says the run journals each batch of hosts (a batch
	// record, on disk) before any step of the batch runs on them: a
	// resume then knows which hosts a batch reached, whatever records
	// after the last sync were lost (engine.Resume.Reached).
	BatchRecords bool `json:"batch_records,omitempty"`
}

// NewHeader is the header of a run of pb starting now in this process on
// this machine. h gives what the caller knows (RunID, Params, Given,
// Inventory, Operator, Yes); the playbook's name, file, path and hash, the
// names of its secrets, the machine, pid, boot id and start are filled in,
// and the inventory's path made absolute: a resume may start from another
// directory.
func NewHeader(pb *engine.Playbook, h Header) Header {
	h.Playbook, h.File, h.Hash = pb.Name, pb.File, pb.Hash
	h.PID, h.Started, h.BootID = os.Getpid(), time.Now(), BootID()
	h.BatchRecords = true
	h.Host, _ = os.Hostname()
	h.Dir, _ = os.Getwd()
	if h.Inventory != "" {
		h.Inventory, _ = filepath.Abs(h.Inventory)
	}
	if !strings.HasPrefix(pb.File, "bundled:") {
		h.Path, _ = filepath.Abs(pb.File)
	}
	for _, s := range pb.Secrets {
		h.Secrets = append(h.Secrets, s.Name)
	}
	return h
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
	// Remove deletes a run's journal. It fails with a *BusyError while
	// the run, or a resume of it, still writes the journal.
	Remove(runID string) error
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
