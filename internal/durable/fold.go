package durable

import (
	"errors"
	"fmt"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/journal"
)

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
	// Failed are the executions whose last outcome was a failure
	// (engine.Resume.Failed).
	Failed map[engine.StepKey]bool
	// Leftovers are the commands in-doubt steps started on their hosts
	// (a process record each), which may still run (engine.Resume.Leftovers).
	Leftovers map[engine.StepKey]engine.Leftover
	// Watermark is the highest step index the journal says may have made
	// changes (engine.Resume.Watermark), StepsDone the steps that ended
	// on all their hosts.
	Watermark int
	StepsDone map[int]bool
	// LostWatermark is the highest watermark an earlier resume took the
	// journal to have lost records up to: it holds for every later resume.
	LostWatermark int
	// Confirmed are the confirmation gates passed and acted on
	// (engine.Resume.Confirmed), by what was asked: a confirm record, then
	// an apply record of the gate's step on the host that asked (of any
	// step, for the playbook's gate, index 0). A refusal undoes it.
	Confirmed map[engine.GateKey]bool
	// Batches are the batches of each batch of steps as the run first
	// split its hosts (engine.Resume.Batches).
	Batches map[int][][]string
	// Reached are the hosts each batch of steps started on
	// (engine.Resume.Reached).
	Reached map[int]map[string]bool
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
		Failed:    map[engine.StepKey]bool{},
		Leftovers: map[engine.StepKey]engine.Leftover{}, StepsDone: map[int]bool{}, Confirmed: map[engine.GateKey]bool{},
		Batches: map[int][][]string{}, Reached: map[int]map[string]bool{}, Status: StatusCrashed, Attempts: 1}
	// The gates confirmed whose change has not started yet, with the host
	// that asked.
	pending := map[engine.GateKey]string{}
	head, err := Decode(recs[0])
	if err != nil {
		return nil, fmt.Errorf("run header: %w", err)
	}
	st.Header = *head.Header
	st.WriterHost, st.WriterBoot = st.Header.Host, st.Header.BootID
	for _, r := range recs[1:] {
		switch r.Kind {
		case KindResume:
			st.Attempts++
			st.Status, st.Message = StatusCrashed, ""
			// A gate counts only if its own attempt acted on it.
			clear(pending)
			if e, err := Decode(r); err == nil {
				st.WriterHost, st.WriterBoot = e.Attempt.Host, e.Attempt.BootID
				st.LostWatermark = max(st.LostWatermark, e.Attempt.Watermark)
			}
		case KindMark, KindDone:
			e, err := Decode(r)
			if err != nil {
				return nil, fmt.Errorf("record %d: %w", r.Seq, err)
			}
			if r.Kind == KindMark && e.Index > st.Watermark {
				st.Watermark = e.Index
			}
			if r.Kind == KindDone {
				st.StepsDone[e.Index] = true
			}
		case KindConfirm:
			e, err := Decode(r)
			if err != nil {
				return nil, fmt.Errorf("record %d: %w", r.Seq, err)
			}
			ev := e.Event
			k := engine.GateKey{Index: ev.Index, Word: ev.Word, Text: ev.Message}
			if ev.Status == engine.StatusOK {
				pending[k] = ev.Host
			} else {
				// Refused: never an approval, whatever came before.
				delete(pending, k)
				delete(st.Confirmed, k)
			}
		case KindBatch:
			e, err := Decode(r)
			if err != nil {
				return nil, fmt.Errorf("record %d: %w", r.Seq, err)
			}
			// The first split stands: a resume refused any other.
			ev := e.Event
			if _, ok := st.Batches[ev.Index]; !ok && len(ev.Batches) > 0 {
				st.Batches[ev.Index] = ev.Batches
			}
			if split := st.Batches[ev.Index]; ev.Item >= 1 && ev.Item <= len(split) {
				if st.Reached[ev.Index] == nil {
					st.Reached[ev.Index] = map[string]bool{}
				}
				for _, h := range split[ev.Item-1] {
					st.Reached[ev.Index][h] = true
				}
			}
		case KindEnd:
			e, err := Decode(r)
			if err != nil {
				return nil, fmt.Errorf("record %d: %w", r.Seq, err)
			}
			st.Status, st.Message = string(e.Event.Status), e.Event.Message
		case KindIntent, KindApply, KindProcess, KindOutcome:
			e, err := Decode(r)
			if err != nil {
				return nil, fmt.Errorf("record %d: %w", r.Seq, err)
			}
			ev := e.Event
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
				for g, host := range pending {
					if g.Index == 0 || g.Index == k.Index && host == k.Host {
						st.Confirmed[g] = true
						delete(pending, g)
					}
				}
				continue
			case KindProcess:
				st.Leftovers[k] = engine.Leftover{PID: ev.PID, Since: r.Time}
				continue
			}
			if ev.Status != engine.StatusInterrupted && ev.Status != engine.StatusInDoubt {
				// Ended: its command ended with it. (An interrupted one was
				// killed, unless the connection was lost first: kept.)
				delete(st.Leftovers, k)
				delete(st.Applying, k)
			}
			switch ev.Status {
			case engine.StatusOK, engine.StatusChanged, engine.StatusSkipped:
				delete(st.InDoubt, k)
				delete(st.Failed, k)
				st.Done[k] = engine.Outcome{Status: ev.Status, Result: ev.Result, ID: ev.ID}
			case engine.StatusFailed:
				// It ended, badly: nothing is in doubt, and it runs again.
				delete(st.InDoubt, k)
				delete(st.Done, k)
				st.Failed[k] = true
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

// ReadState reads a run's journal from store and folds it: the state the
// records that can be trusted say, and the problem of a journal damaged or
// torn after them (nil if none).
func ReadState(store Store, runID string) (*State, *journal.Problem, error) {
	recs, prob, err := store.Read(runID)
	if err != nil {
		return nil, nil, err
	}
	st, err := Fold(recs)
	return st, prob, err
}
