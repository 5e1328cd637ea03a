package engine

import (
	"testing"
	"time"
)

func TestLeftoverRuns(t *testing.T) {
	for _, c := range []struct {
		state string
		age   time.Duration
		want  bool
	}{
		{"gone", 0, false},
		{"running 0", 300 * time.Millisecond, true},
		{"running 120", 2 * time.Minute, true},
		// A group that started after the record reuses the id.
		{"running 3", 2 * time.Minute, false},
		{"running ?", time.Hour, true},
		{"something else", 0, true},
	} {
		if got := leftoverRuns(c.state, c.age); got != c.want {
			t.Errorf("leftoverRuns(%q, %s) = %v, want %v", c.state, c.age, got, c.want)
		}
	}
}
