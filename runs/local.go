package runs

import (
	"errors"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"github.com/runbook-dev/runbook/journal"
)

// Local keeps journals as files in a state directory: DIR/runs/ID.journal.
type Local struct {
	Dir string
}

func (l *Local) path(runID string) string {
	return filepath.Join(l.Dir, "runs", runID+".journal")
}

// validID keeps a run id from naming a file outside the runs directory.
func validID(id string) bool {
	return id != "" && !strings.ContainsAny(id, "/\\") && id != "." && id != ".."
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
	w, err := journal.Create(l.path(h.RunID))
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
	w, recs, err := journal.Open(l.path(runID))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, ErrNoRun
	case errors.Is(err, journal.ErrBusy):
		b := &BusyError{Header: Header{RunID: runID}}
		if recs, _, err := journal.Read(l.path(runID)); err == nil {
			if st, err := Fold(recs); err == nil {
				b.Header = st.Header
			}
		}
		return nil, nil, b
	case err != nil:
		return nil, nil, err
	}
	return localJournal{w}, recs, nil
}

// Read implements Store.
func (l *Local) Read(runID string) ([]journal.Record, *journal.Problem, error) {
	if !validID(runID) {
		return nil, nil, ErrNoRun
	}
	recs, prob, err := journal.Read(l.path(runID))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, ErrNoRun
	}
	return recs, prob, err
}

// List implements Store.
func (l *Local) List() ([]string, error) {
	files, err := filepath.Glob(filepath.Join(l.Dir, "runs", "*.journal"))
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(files))
	for _, f := range files {
		ids = append(ids, strings.TrimSuffix(filepath.Base(f), ".journal"))
	}
	// Run ids start with their UTC start time.
	sort.Strings(ids)
	return ids, nil
}

// Running implements Store.
func (l *Local) Running(runID string) bool {
	return validID(runID) && journal.Busy(l.path(runID))
}

// Close implements Store.
func (l *Local) Close() error { return nil }
