package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestSwPhases reads the JSON events of a real pg-ha/switchover run on the
// lab (pg1 → pg2, kept by --events-dir): the phases follow one another
// from the process's start to its end, the included playbooks' steps count
// in their phases, and writes are available before the orchestrator is
// healthy.
func TestSwPhases(t *testing.T) {
	out, err := os.ReadFile("testdata/switchover-events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	runStart := time.Date(2026, 12, 1, 6, 46, 12, 622709590, time.UTC)
	start, end := runStart.Add(-50*time.Millisecond), time.Date(2026, 12, 1, 6, 46, 21, 60000000, time.UTC)
	var r swRound
	if err := swPhases(&r, start, end, out); err != nil {
		t.Fatal(err)
	}
	var sum time.Duration
	names := map[string]time.Duration{}
	for _, p := range r.phases {
		if p.d < 0 {
			t.Errorf("phase %q: %s", p.name, p.d)
		}
		if strings.HasPrefix(p.name, "step ") {
			t.Errorf("a step of no known phase: %q", p.name)
		}
		names[p.name] += p.d
		sum += p.d
	}
	if sum != end.Sub(start) {
		t.Errorf("the phases add up to %s, the run took %s", sum, end.Sub(start))
	}
	if d := names["start-up (the process until run-start)"]; d != 50*time.Millisecond {
		t.Errorf("start-up %s, want 50 ms", d)
	}
	// follow/started is the old primary's systemctl start: 6.5 s in this run.
	if d := names["the old primary's unit started (systemctl start)"]; d < 6*time.Second || d > 7*time.Second {
		t.Errorf("the old primary's start %s, want its 6.5 s", d)
	}
	if r.writable <= 0 || r.writable >= r.healthy || r.healthy > end.Sub(start) {
		t.Errorf("writable %s, healthy %s, of %s", r.writable, r.healthy, end.Sub(start))
	}
	if len(r.slow) == 0 {
		t.Error("no step of 100 ms or more: follow/started took 6.5 s")
	}
}

// TestSwPhasesRefusesOtherOutput: output that is not the switchover's
// events is an error that says what is missing, not an empty table.
func TestSwPhasesRefusesOtherOutput(t *testing.T) {
	var r swRound
	err := swPhases(&r, time.Now(), time.Now(), []byte("ok  switched over\n"))
	if err == nil || !strings.Contains(err.Error(), "--output json") {
		t.Errorf("err = %v", err)
	}
}
