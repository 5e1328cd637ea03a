package engine

import (
	"fmt"
	"slices"
	"strings"
)

// BatchesChangedError refuses to resume a batch whose hosts would now be
// split otherwise than when the run started it (the inventory's groups
// or their order, or serial, changed). A resume keeps a rolling change's
// batches or does not go on: with a new split it could change a host
// beside one still unhealthy, or take a host it already changed for one
// never touched. Nor does it run the old split: a host taken out of the
// inventory may have been taken out so that nothing touches it.
type BatchesChangedError struct {
	Batch string
	// Then is the split the journal holds, Now the one the resume finds.
	Then, Now [][]string
	// Added and Removed are the hosts in Now and not in Then, and the
	// other way round.
	Added, Removed []string
}

func (e *BatchesChangedError) Error() string {
	var what []string
	if len(e.Added) > 0 {
		what = append(what, "hosts added: "+strings.Join(e.Added, ", "))
	}
	if len(e.Removed) > 0 {
		what = append(what, "hosts removed: "+strings.Join(e.Removed, ", "))
	}
	if len(what) == 0 {
		what = append(what, "the same hosts, in other batches or another order")
	}
	return fmt.Sprintf("batch %q: its hosts were split into %s when the run started, and would now be split into %s (%s): "+
		"a resume keeps the batches a rolling change started with, or a host could be changed beside one still unhealthy; "+
		"restore the inventory (its groups and their order) and serial as they were and resume again, or start a new run; "+
		"no step of this batch ran in this attempt",
		e.Batch, showBatches(e.Then), showBatches(e.Now), strings.Join(what, "; "))
}

// showBatches writes batches as [pg1 pg2] [pg3].
func showBatches(bs [][]string) string {
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = "[" + strings.Join(b, " ") + "]"
	}
	return strings.Join(parts, " ")
}

// sameBatches returns a *BatchesChangedError when a resumed run
// journaled batches of b other than groups, nil otherwise.
func (x *run) sameBatches(b *Batch, groups [][]string) error {
	if x.resume == nil {
		return nil
	}
	then, ok := x.resume.Batches[b.First]
	if !ok || slices.EqualFunc(then, groups, slices.Equal[[]string]) {
		return nil
	}
	e := &BatchesChangedError{Batch: b.Name, Then: then, Now: groups}
	was, is := slices.Concat(then...), slices.Concat(groups...)
	for _, h := range is {
		if !slices.Contains(was, h) {
			e.Added = append(e.Added, h)
		}
	}
	for _, h := range was {
		if !slices.Contains(is, h) {
			e.Removed = append(e.Removed, h)
		}
	}
	return e
}
