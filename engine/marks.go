package engine

import (
	"sync"
	"time"
)

// Marks reach markAhead steps past the running one, more while the steps
// run fast: after a power cut, the steps up to the last mark without an
// outcome are taken as in doubt, and each mark costs one sync of the
// journal. A mark asked for within fastMarks of the one before doubles
// the reach, up to maxMarkAhead; a slower one sets it back. Steps of a
// failover (seconds each) keep the window at eight steps; a hundred
// one-millisecond commands sync the journal a few times, not a dozen.
const (
	markAhead    = 8
	maxMarkAhead = 64
	fastMarks    = 100 * time.Millisecond
)

// marks decides when a run asks its Marker for a mark. Steps that change
// nothing need none: a run asks for marks ahead of time only while steps
// make changes, and a step about to change something beyond the last mark
// asks for one and waits for it.
type marks struct {
	m     Marker
	steps int

	mu    sync.Mutex
	asked int       // the highest mark asked for
	ahead int       // how far the next mark reaches
	at    time.Time // when it was asked
	// changed is set when a step applies a change after the last mark was
	// asked for: marks ahead of time are worth their syncs.
	changed bool
}

func newMarks(m Marker, steps int) *marks {
	return &marks{m: m, steps: steps, ahead: markAhead}
}

// start asks for the first mark, in the background while the guards run.
func (k *marks) start() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ask(1)
}

// stepStarts asks, while steps make changes, for the next mark before the
// steps reach the last one, so that its sync runs in the background.
func (k *marks) stepStarts(index int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.changed && k.asked < k.steps && k.asked <= index+1 {
		k.ask(index)
	}
}

// await returns once a mark covering step index is durable, asking for
// one if none was.
func (k *marks) await(index int) error {
	k.mu.Lock()
	if k.asked < index {
		k.ask(index)
	}
	k.changed = true
	k.mu.Unlock()
	return k.m.AwaitMark(index)
}

// ask asks for a mark reaching past step index. k.mu is held.
func (k *marks) ask(index int) {
	now := time.Now()
	if !k.at.IsZero() && now.Sub(k.at) < fastMarks {
		k.ahead = min(2*k.ahead, maxMarkAhead)
	} else {
		k.ahead = markAhead
	}
	k.asked = min(index+k.ahead-1, k.steps)
	k.at = now
	k.changed = false
	k.m.Mark(k.asked)
}
