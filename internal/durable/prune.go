package durable

import (
	"errors"
	"sort"
	"time"
)

// PruneOptions say which journals Prune removes: those of runs started
// more than OlderThan before Now, except the Keep newest runs. A run that
// can still be resumed (it failed, crashed or was interrupted) is kept
// unless Force is set; a run that is going on is always kept.
type PruneOptions struct {
	// OlderThan is the age from which a run may go; 0 is any age.
	OlderThan time.Duration
	// Keep is how many of the newest runs are kept whatever their age.
	Keep  int
	Force bool
	Now   time.Time
}

// PrunedRun is a run Prune removed or kept, as runbook runs shows it.
type PrunedRun struct {
	RunID, Playbook, Status string
	// Started is the run's start (from its id when the journal does not
	// say: an empty or unreadable one).
	Started time.Time
}

// PruneResult is what Prune did: the runs it removed, and the ones it
// would have removed by age and count but kept because they can still be
// resumed, are going on, or could not be removed (Failed, with why).
type PruneResult struct {
	Removed, Resumable, Running []PrunedRun
	Failed                      map[string]error
}

// Prune removes the journals o names from store.
func Prune(store Store, o PruneOptions) (*PruneResult, error) {
	ids, err := store.List()
	if err != nil {
		return nil, err
	}
	res := &PruneResult{Failed: map[string]error{}}
	type run struct {
		PrunedRun
		resumable bool
	}
	runs := make([]run, len(ids))
	for i, id := range ids {
		runs[i].PrunedRun, runs[i].resumable = describe(store, id)
	}
	// Oldest first (ids of the same second are in random order): the last
	// Keep stay.
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].Started.Before(runs[j].Started) })
	if o.Keep > 0 {
		runs = runs[:max(0, len(runs)-o.Keep)]
	}
	cutoff := o.Now.Add(-o.OlderThan)
	for _, x := range runs {
		r, resumable, id := x.PrunedRun, x.resumable, x.RunID
		if o.OlderThan > 0 && !r.Started.Before(cutoff) {
			continue
		}
		switch {
		case store.Running(id):
			res.Running = append(res.Running, r)
			continue
		case resumable && !o.Force:
			res.Resumable = append(res.Resumable, r)
			continue
		}
		if err := store.Remove(id); err != nil {
			var be *BusyError
			if errors.As(err, &be) {
				res.Running = append(res.Running, r)
				continue
			}
			res.Failed[id] = err
			continue
		}
		res.Removed = append(res.Removed, r)
	}
	return res, nil
}

// describe reads what a run is, and whether a resume could continue it:
// a run that did not finish after starting a step, or whose journal
// cannot be read (a person should look at it before it goes). An empty journal has nothing to
// resume: its run was cut off before any change.
func describe(store Store, id string) (PrunedRun, bool) {
	r := PrunedRun{RunID: id, Started: idTime(id)}
	st, _, err := ReadState(store, id)
	switch {
	case errors.Is(err, ErrEmpty):
		r.Status = "empty"
		return r, false
	case err != nil:
		r.Status = "unreadable"
		return r, true
	}
	r.Playbook, r.Status = st.Header.Playbook, st.Status
	if !st.Header.Started.IsZero() {
		r.Started = st.Header.Started
	}
	// A run that started no step (refused by a guard, a lock, a gate; or
	// cut off before its first step) changed nothing: resuming it would be
	// running it again, so it holds nothing to keep.
	started := st.Watermark > 0 || st.LostWatermark > 0 || len(st.Done) > 0 || len(st.InDoubt) > 0 || len(st.Applying) > 0 || len(st.Leftovers) > 0
	return r, !st.Finished() && started
}

// idTime is the start a run id begins with (UTC, to the second), or the
// zero time.
func idTime(id string) time.Time {
	if len(id) < 16 {
		return time.Time{}
	}
	t, err := time.Parse("20060102T150405Z", id[:16])
	if err != nil {
		return time.Time{}
	}
	return t
}
