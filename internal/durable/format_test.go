package durable

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/steps"
)

// checkSameJSON fails unless appendEvent gives json.Marshal's bytes, or both
// fail.
func checkSameJSON(t *testing.T, e *engine.Event) {
	t.Helper()
	want, werr := json.Marshal(e)
	got, gerr := appendEvent([]byte("prefix"), e)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("json.Marshal error %v, appendEvent error %v", werr, gerr)
	}
	if werr != nil {
		return
	}
	if !bytes.HasPrefix(got, []byte("prefix")) || !bytes.Equal(got[len("prefix"):], want) {
		t.Fatalf("appendEvent:\n %s\njson.Marshal:\n %s", got, want)
	}
}

func TestAppendEvent(t *testing.T) {
	now := time.Date(2026, 11, 26, 3, 4, 5, 6070, time.UTC)
	for _, e := range []*engine.Event{
		{},
		{Type: engine.EventStepStart, Index: 3, ID: "s3", Name: "Stop PostgreSQL", Host: "pg1", Item: 2},
		{Time: now, Type: engine.EventStepEnd, Playbook: "pg/promote-standby", Index: 12, ID: "promote", Name: "promote <pg2> & \"co\"",
			Host: "pg2", PID: 4242, Status: engine.StatusChanged, Duration: 1234567 * time.Nanosecond,
			Message: "line\nnext\ttab\r\b\f\x01\x1f \\ \u2028\u2029 é 日本 \xff\xfe", Print: "timeline 2 <&>\n", Diff: "--- a\n+++ b\n", Warning: "cut <at> 1KiB", Batches: [][]string{{"pg1", "<pg2>"}, {}, nil},
			DryRun: true, Resumed: true,
			Result: steps.Result{"exit_code": 0, "stdout": "ok\n", "skipped": false, "rows": []any{map[string]any{"n": int64(-7), "f": 1.5, "big": 1e21, "small": 1e-7, "tiny": -3e-9, "z": 0.0, "none": nil}},
				"tags": []string{"a", "<b>"}, "nested": steps.Result{"k": true}, "whole": 1000000.0, "d": 3 * time.Second, "nilmap": map[string]any(nil), "nillist": []any(nil)}},
		{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Type: engine.EventRunEnd},
		{Type: engine.EventStepEnd, Result: steps.Result{"bad": math.NaN()}},
		{Type: engine.EventStepEnd, Result: steps.Result{"inf": math.Inf(-1)}},
		{Type: engine.EventStepEnd, Result: steps.Result{"ch": make(chan int)}},
		{Type: engine.EventStepEnd, Result: steps.Result{}},
		{Time: now.In(time.FixedZone("x", 3600)), Type: engine.EventGuard, Status: engine.StatusFailed, Duration: -1},
		{Type: engine.EventConfirm, Index: 2, Name: "promote", Host: "pg2", Status: engine.StatusOK, Message: "Promote pg2?\ntimeline 3 <&>",
			Word: "pg2", Answer: "pg2 ", Yes: true, Operator: "alice@laptop"},
		{Type: engine.EventConfirm, Status: engine.StatusFailed, Word: "\u2028<x>", Answer: "\xff", Resumed: true},
	} {
		checkSameJSON(t, e)
	}
}

// FuzzAppendEvent: for any text in an event and its result, appendEvent
// gives json.Marshal's bytes.
func FuzzAppendEvent(f *testing.F) {
	f.Add("restart", "line\n<&>\u2028", int64(3), 2.5, true)
	f.Add("\xff\x00", "", int64(-1), 1e-7, false)
	f.Fuzz(func(t *testing.T, name, text string, n int64, x float64, flag bool) {
		e := &engine.Event{Time: time.Unix(0, n).UTC(), Type: engine.EventStepEnd, Index: int(n), Name: name, Host: text, Message: text + name,
			Duration: time.Duration(n), DryRun: flag, Word: name, Answer: text, Yes: !flag, Operator: text + "@" + name,
			Result: steps.Result{name: text, "n": n, "x": x, "flag": flag, "list": []any{text, x, n, nil}, text: map[string]any{name: x}}}
		checkSameJSON(t, e)
	})
}

// TestEventDataJSON: an event as a record's data encodes as json.Marshal
// encodes the event, for the shared store (json.Marshal) as for a local
// journal (AppendJSON).
func TestEventDataJSON(t *testing.T) {
	e := &engine.Event{Type: engine.EventStepEnd, Index: 2, ID: "conf", Name: "conf <a>", Host: "pg1", Status: engine.StatusChanged,
		Result: steps.Result{"n": 3, "text": "x\ny", "rows": []any{map[string]any{"f": 1.5}}}}
	want, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(eventData{e})
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("json.Marshal:\n %s (%v)\nwant\n %s", got, err, want)
	}
	got, err = eventData{e}.AppendJSON(nil)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("AppendJSON:\n %s (%v)\nwant\n %s", got, err, want)
	}
}
