package engine

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingMarker is a Marker that keeps the marks asked for, durable at
// once.
type recordingMarker struct {
	mu     sync.Mutex
	marked []int
	awaits []int
}

func (m *recordingMarker) Mark(index int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.marked = append(m.marked, index)
}

func (m *recordingMarker) AwaitMark(index int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.awaits = append(m.awaits, index)
	if len(m.marked) == 0 || m.marked[len(m.marked)-1] < index {
		return fmt.Errorf("awaited mark %d, the last asked for is %v", index, m.marked)
	}
	return nil
}

// TestMarks: every step that applies is covered by a mark asked for
// before it; steps that change nothing ask for none after the first;
// marks asked for in quick succession reach further, up to the cap, and
// a slow run keeps them at markAhead.
func TestMarks(t *testing.T) {
	simulate := func(steps int, applies func(int) bool, stepTime time.Duration) *recordingMarker {
		m := &recordingMarker{}
		k := newMarks(m, steps)
		k.start()
		for i := 1; i <= steps; i++ {
			// The clock of the marks is the wall clock: slow steps are
			// played by moving the last mark's time back.
			k.mu.Lock()
			k.at = k.at.Add(-stepTime)
			k.mu.Unlock()
			k.stepStarts(i)
			if applies(i) {
				if err := k.await(i); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
		}
		return m
	}
	all := func(int) bool { return true }
	none := func(int) bool { return false }

	if m := simulate(100, none, 0); fmt.Sprint(m.marked) != "[8]" || len(m.awaits) != 0 {
		t.Errorf("no changes: marks %v, awaits %v; want the first mark only", m.marked, m.awaits)
	}
	fast := simulate(100, all, time.Millisecond)
	t.Logf("marks of 100 fast changing steps: %v", fast.marked)
	if len(fast.marked) > 6 || fast.marked[len(fast.marked)-1] != 100 {
		t.Errorf("fast changing steps: marks %v, want a few reaching further", fast.marked)
	}
	for i := 1; i < len(fast.marked); i++ {
		if reach := fast.marked[i] - fast.marked[i-1]; reach > maxMarkAhead {
			t.Errorf("marks %v: a mark reaches %d steps past the one before, more than %d", fast.marked, reach, maxMarkAhead)
		}
	}
	slow := simulate(40, all, time.Second)
	var reach []string
	for i := 1; i < len(slow.marked); i++ {
		if d := slow.marked[i] - slow.marked[i-1]; d > markAhead {
			reach = append(reach, fmt.Sprint(d))
		}
	}
	if len(reach) > 0 || len(slow.marked) < 40/markAhead {
		t.Errorf("slow changing steps: marks %v, want each reaching at most %d steps further", slow.marked, markAhead)
	}
	// A change after a long run of unchanged steps: the step asks for its
	// mark and waits for it.
	late := simulate(50, func(i int) bool { return i == 30 || i == 31 }, time.Second)
	if got := fmt.Sprint(late.marked); !strings.HasPrefix(got, "[8 37") {
		t.Errorf("a late change: marks %v, want the first and one covering steps 30 on", late.marked)
	}
}
