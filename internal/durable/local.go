package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/runbook-dev/runbook/internal/journal"
	"github.com/runbook-dev/runbook/internal/statedir"
)

// Local keeps journals as files in a state directory: DIR/runs/ID.journal.
// The directory must be this user's alone, and a journal is opened in it
// without following links (internal/statedir): a resume trusts no journal
// that someone else could have written.
type Local struct {
	Dir string

	mu   sync.Mutex
	runs *statedir.Dir
}

// runsDir opens DIR/runs, creating it when create is set; a missing one
// is an error matching fs.ErrNotExist.
func (l *Local) runsDir(create bool) (*statedir.Dir, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.runs != nil {
		return l.runs, nil
	}
	d, err := statedir.Open(l.Dir, create)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if l.runs, err = d.Sub("runs", create); err != nil {
		return nil, err
	}
	return l.runs, nil
}

func fileName(runID string) string { return runID + ".journal" }

// validID keeps a run id from naming a file outside the runs directory.
func validID(id string) bool {
	return id != "" && !strings.ContainsAny(id, "/\\\x00") && id != "." && id != ".."
}

// open opens the journal of a run in the runs directory.
func (l *Local) open(runID string, flag int) (*os.File, error) {
	d, err := l.runsDir(false)
	if err != nil {
		return nil, err
	}
	return d.OpenFile(fileName(runID), flag, 0o600)
}

type localJournal struct{ w *journal.Writer }

func (j localJournal) Append(kind string, data any) error {
	_, err := j.w.Append(kind, data)
	return err
}

func (j localJournal) Write(kind string, data any) error {
	_, err := j.w.Write(kind, data)
	return err
}

func (j localJournal) Stage(kind string, data any) error {
	_, err := j.w.Stage(kind, data)
	return err
}

func (j localJournal) Sync() error { return j.w.Sync() }

func (j localJournal) Close() error { return j.w.Close() }

// Create implements Store.
func (l *Local) Create(h Header) (Journal, error) {
	if !validID(h.RunID) {
		return nil, fmt.Errorf("run id %q: not a file name", h.RunID)
	}
	d, err := l.runsDir(true)
	if err != nil {
		return nil, err
	}
	f, err := d.OpenFile(fileName(h.RunID), os.O_CREATE|os.O_EXCL|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	w, err := journal.Create(f, d.Sync)
	if err != nil {
		return nil, err
	}
	// Written, not synced: the header reaches the disk with the run's first
	// mark, which every change waits for. A power cut before it loses a
	// run that had changed nothing.
	if _, err := w.Write(KindRun, h); err != nil {
		w.Close()
		return nil, err
	}
	return localJournal{w}, nil
}

// Continue implements Store.
func (l *Local) Continue(runID string) (Journal, []journal.Record, error) {
	if !validID(runID) {
		return nil, nil, ErrNoRun
	}
	f, err := l.open(runID, os.O_RDWR|os.O_APPEND)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, ErrNoRun
	}
	if err != nil {
		return nil, nil, err
	}
	w, recs, err := journal.Open(f)
	switch {
	case errors.Is(err, journal.ErrBusy):
		b := &BusyError{Header: Header{RunID: runID}}
		if recs, _, err := l.Read(runID); err == nil {
			if st, err := Fold(recs); err == nil {
				b.Header = st.Header
			}
		}
		return nil, nil, b
	case err != nil:
		return nil, nil, err
	}
	// Removed (runs prune --force) between the open and the lock: a
	// resume must not write a journal nobody can read.
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err == nil && st.Nlink == 0 {
		w.Close()
		return nil, nil, ErrNoRun
	}
	return localJournal{w}, recs, nil
}

// Read implements Store.
func (l *Local) Read(runID string) ([]journal.Record, *journal.Problem, error) {
	if !validID(runID) {
		return nil, nil, ErrNoRun
	}
	f, err := l.open(runID, os.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, ErrNoRun
	}
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return journal.Read(f)
}

// List implements Store.
func (l *Local) List() ([]string, error) {
	d, err := l.runsDir(false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names, err := d.Names()
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, n := range names {
		if id, ok := strings.CutSuffix(n, ".journal"); ok && validID(id) {
			ids = append(ids, id)
		}
	}
	// Run ids start with their UTC start time.
	sort.Strings(ids)
	return ids, nil
}

// Running implements Store.
func (l *Local) Running(runID string) bool {
	if !validID(runID) {
		return false
	}
	f, err := l.open(runID, os.O_RDONLY)
	if err != nil {
		return false
	}
	defer f.Close()
	return journal.Busy(f)
}

// Remove implements Store: under the writers' lock, so that no run or
// resume writes the journal as it goes.
func (l *Local) Remove(runID string) error {
	if !validID(runID) {
		return ErrNoRun
	}
	f, err := l.open(runID, os.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNoRun
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return &BusyError{Header: Header{RunID: runID}}
	}
	d, err := l.runsDir(false)
	if err != nil {
		return err
	}
	if err := d.Remove(fileName(runID)); err != nil {
		return err
	}
	return d.Sync()
}

// Close implements Store.
func (l *Local) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.runs.Close()
	l.runs = nil
	return err
}
