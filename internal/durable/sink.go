package durable

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/runbook-dev/runbook/engine"
)

// Sink writes a run's events to its journal, then passes them on. Events
// reach it redacted (engine.Runner redacts before any sink): secrets
// never land in the journal. It is an engine.Marker: the marks it writes
// are synced in the background.
type Sink struct {
	mu     sync.Mutex
	j      Journal
	next   engine.Sink
	warn   io.Writer
	failed bool

	// Marks (engine.Marker): the highest durable one, a sync's failure,
	// and the syncs still running.
	marked   int
	wanted   int
	syncing  bool
	markErr  error
	markDone *sync.Cond
	syncs    sync.WaitGroup
}

// NewSink returns a sink that journals events to j and passes them to
// next. A journal that fails to write is said once on warn, and the run
// goes on without it.
func NewSink(j Journal, next engine.Sink, warn io.Writer) *Sink {
	s := &Sink{j: j, next: next, warn: warn}
	s.markDone = sync.NewCond(&s.mu)
	return s
}

// Mark implements engine.Marker. One sync runs at a time in the
// background; marks written while it runs are covered by the next one.
func (s *Sink) Mark(index int) {
	err := s.j.Write(KindMark, struct {
		Index int `json:"index"`
	}{index})
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.markErr == nil {
			s.markErr = err
		}
		s.markDone.Broadcast()
		return
	}
	if index > s.wanted {
		s.wanted = index
	}
	if !s.syncing {
		s.syncing = true
		s.syncs.Add(1)
		go s.syncMarks()
	}
}

// syncMarks syncs the journal until every mark written is durable.
func (s *Sink) syncMarks() {
	defer s.syncs.Done()
	s.mu.Lock()
	for s.wanted > s.marked && s.markErr == nil {
		target := s.wanted
		s.mu.Unlock()
		err := s.j.Sync()
		s.mu.Lock()
		if err != nil {
			s.markErr = err
		} else {
			s.marked = target
		}
		s.markDone.Broadcast()
	}
	s.syncing = false
	s.mu.Unlock()
}

// AwaitMark implements engine.Marker.
func (s *Sink) AwaitMark(index int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.marked < index && s.markErr == nil {
		s.markDone.Wait()
	}
	if s.marked >= index {
		return nil
	}
	return s.markErr
}

// Wait returns once the syncs of marks have ended: call it before the
// journal is closed.
func (s *Sink) Wait() { s.syncs.Wait() }

func (s *Sink) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.failed {
		s.failed = true
		fmt.Fprintf(s.warn, "runbook: journal: %v; the run goes on without it\n", err)
	}
}

// Emit implements engine.Sink: the event's record, if it makes one, is
// staged, written or synced (see recordFor) before the event goes on.
func (s *Sink) Emit(ev *engine.Event) {
	if kind, how := recordFor(ev); kind != "" {
		// The record has its own time: the event's is left out while it
		// is written (each event is emitted once, by one goroutine).
		at := ev.Time
		ev.Time = time.Time{}
		var err error
		switch how {
		case recordStage:
			err = s.j.Stage(kind, eventData{ev})
		case recordWrite:
			err = s.j.Write(kind, eventData{ev})
		case recordSync:
			err = s.j.Append(kind, eventData{ev})
		}
		ev.Time = at
		if err != nil {
			s.fail(err)
		}
	}
	s.next.Emit(ev)
}

// Flush passes a flush on to the next sink (the terminal's output).
func (s *Sink) Flush() {
	if f, ok := s.next.(interface{ Flush() }); ok {
		f.Flush()
	}
}

// How a record reaches the journal.
const (
	// recordStage keeps it in the process until the next record written:
	// a process killed loses it, with the records after it, and nothing
	// was changed since (a change, and the command making it, are written
	// before they start), so the resume finds the host as the record left it.
	recordStage = iota + 1
	// recordWrite hands it to the kernel at once: a process killed loses
	// none of it; a power cut loses what came after the last sync, which
	// the marks (engine.Marker) make a resume take as in doubt.
	recordWrite
	// recordSync has it, and everything before it, on disk before the run
	// goes on: the run's end.
	recordSync
)

// record is the kind of record an event makes and how it is written.
type record struct {
	kind string
	how  int
}

// recordOfType holds the events whose record, and how it is written, the
// event's type alone decides.
var recordOfType = map[engine.EventType]record{
	// A step that changes anything writes its apply record first.
	engine.EventStepStart:   {KindIntent, recordStage},
	engine.EventStepApply:   {KindApply, recordWrite},
	engine.EventStepProcess: {KindProcess, recordWrite},
	engine.EventStepDone:    {KindDone, recordStage},
	engine.EventGuard:       {KindGuard, recordStage},
	// The operator's word: kept even if the process dies next.
	engine.EventConfirm: {KindConfirm, recordWrite},
}

// recordFor says which record an event makes, if any, and how it is
// written.
func recordFor(ev *engine.Event) (kind string, how int) {
	switch ev.Type {
	case engine.EventStepEnd:
		if ev.Status == engine.StatusOK || ev.Status == engine.StatusSkipped {
			// Found nothing to change: lost, the step runs again and finds
			// the same.
			return KindOutcome, recordStage
		}
		// A change made: written, so that a resume knows it without
		// asking.
		return KindOutcome, recordWrite
	case engine.EventBatch:
		if ev.DryRun {
			return "", 0
		}
		// Before any step runs on the batch's hosts: on disk, so that a
		// resume knows which hosts the batch reached (and, from the
		// first, how it split them), whatever was lost after. One sync
		// per batch of hosts: each waits for a restart and a health check.
		return KindBatch, recordSync
	case engine.EventRunEnd:
		if ev.Durable {
			return KindEnd, recordSync
		}
		return KindEnd, recordWrite
	}
	r := recordOfType[ev.Type]
	return r.kind, r.how
}

var (
	_ engine.Sink   = (*Sink)(nil)
	_ engine.Marker = (*Sink)(nil)
)
