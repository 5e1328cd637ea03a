package durable

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/journal"
	"github.com/runbook-dev/runbook/internal/testpg"
	"github.com/runbook-dev/runbook/steps"
)

// crashedRun is the events of a run killed part-way, as the engine emits
// them, and what they say a resume must know.
func crashedRun() (events []*engine.Event, want *engine.Resume, pids map[engine.StepKey]int) {
	step := func(typ engine.EventType, index int, host string, item int) *engine.Event {
		return &engine.Event{Type: typ, Index: index, ID: fmt.Sprintf("s%d", index), Name: fmt.Sprintf("step %d", index), Host: host, Item: item}
	}
	end := func(index int, host string, item int, st engine.Status, result steps.Result) *engine.Event {
		e := step(engine.EventStepEnd, index, host, item)
		e.Status, e.Result = st, result
		return e
	}
	process := func(index int, host string, pid int) *engine.Event {
		e := step(engine.EventStepProcess, index, host, 0)
		e.PID = pid
		return e
	}
	result := steps.Result{"exit_code": 0, "stdout": "in production\n", "rows": []any{map[string]any{"n": 2, "f": 1.5, "lsn": "0/3000060"}}, "ok": true}
	events = []*engine.Event{
		{Type: engine.EventGuard, Name: "pg1 is the primary", Host: "pg1", Status: engine.StatusOK},
		{Type: engine.EventConfirm, Status: engine.StatusOK, Message: "Go on?", Word: "pg1", Yes: true, Operator: "alice@laptop"},
		// Step 1 changed something, on one host.
		step(engine.EventStepStart, 1, "pg1", 0),
		step(engine.EventStepApply, 1, "pg1", 0),
		process(1, "pg1", 101),
		end(1, "pg1", 0, engine.StatusChanged, result),
		{Type: engine.EventStepDone, Index: 1},
		// Step 2 fans out: ok on pg1, killed on pg2 while its command ran.
		step(engine.EventStepStart, 2, "pg1", 0),
		step(engine.EventStepStart, 2, "pg2", 0),
		end(2, "pg1", 0, engine.StatusOK, steps.Result{"changed": false}),
		step(engine.EventStepApply, 2, "pg2", 0),
		process(2, "pg2", 202),
		// Step 3, for_each: element 1 skipped, element 2 started.
		step(engine.EventStepStart, 3, "pg1", 1),
		end(3, "pg1", 1, engine.StatusSkipped, nil),
		step(engine.EventStepStart, 3, "pg1", 2),
		// Step 4 failed: it ran to its end, and runs again.
		step(engine.EventStepStart, 4, "pg3", 0),
		step(engine.EventStepApply, 4, "pg3", 0),
		end(4, "pg3", 0, engine.StatusFailed, nil),
		// Step 5, confirmed, lost its connection while making its change:
		// its command may still run.
		{Type: engine.EventConfirm, Index: 5, Name: "step 5", Host: "pg1", Status: engine.StatusOK, Word: "pg1", Answer: "pg1", Operator: "alice@laptop"},
		step(engine.EventStepStart, 5, "pg1", 0),
		step(engine.EventStepApply, 5, "pg1", 0),
		process(5, "pg1", 505),
		end(5, "pg1", 0, engine.StatusInDoubt, nil),
		// Step 6 was interrupted before it changed anything.
		step(engine.EventStepStart, 6, "pg1", 0),
		end(6, "pg1", 0, engine.StatusInterrupted, nil),
		// Batch 7 split its hosts so, and reached its first batch of
		// hosts; the first split journaled stands. A plan's batch makes no
		// record.
		{Type: engine.EventBatch, Index: 7, Name: "roll", Host: "pg1", Item: 1, Batches: [][]string{{"pg1"}, {"pg2", "pg3"}}},
		{Type: engine.EventBatch, Index: 7, Name: "roll", Host: "pg3", Item: 1, Batches: [][]string{{"pg3"}, {"pg2", "pg1"}}},
		{Type: engine.EventBatch, Index: 7, Name: "roll", Host: "pg2,pg3", Item: 2, DryRun: true},
	}
	want = &engine.Resume{
		Done: map[engine.StepKey]engine.Outcome{
			{Index: 1, Host: "pg1"}:          {Status: engine.StatusChanged, Result: result, ID: "s1"},
			{Index: 2, Host: "pg1"}:          {Status: engine.StatusOK, Result: steps.Result{"changed": false}, ID: "s2"},
			{Index: 3, Host: "pg1", Item: 1}: {Status: engine.StatusSkipped, ID: "s3"},
		},
		InDoubt: map[engine.StepKey]string{
			{Index: 2, Host: "pg2"}:          "step 2",
			{Index: 3, Host: "pg1", Item: 2}: "step 3",
			{Index: 5, Host: "pg1"}:          "step 5",
			{Index: 6, Host: "pg1"}:          "step 6",
		},
		// Step 4 failed on pg3: it runs again, and so makes what is done
		// after it on pg3 stale.
		Failed:    map[engine.StepKey]bool{{Index: 4, Host: "pg3"}: true},
		Applying:  map[engine.StepKey]bool{{Index: 2, Host: "pg2"}: true, {Index: 5, Host: "pg1"}: true},
		StepsDone: map[int]bool{1: true},
		Confirmed: map[engine.GateKey]bool{{Index: 0, Word: "pg1", Text: "Go on?"}: true, {Index: 5, Word: "pg1"}: true},
		Batches:   map[int][][]string{7: {{"pg1"}, {"pg2", "pg3"}}},
		Reached:   map[int]map[string]bool{7: {"pg1": true}},
	}
	pids = map[engine.StepKey]int{{Index: 2, Host: "pg2"}: 202, {Index: 5, Host: "pg1"}: 505}
	return events, want, pids
}

// TestRoundTrip: the events of a run killed part-way go through the sink
// into a real store, are read back, folded, and turned into the engine's
// resume, which must say what the events said: the steps done with their
// results (whole numbers as int, as the step types made them), the steps
// in doubt, those that were applying, the commands that may still run,
// the gates passed and acted on, and the lost window, which depends on
// the store and the machine.
func TestRoundTrip(t *testing.T) {
	check := func(t *testing.T, store Store, sameMachine bool, wantLost bool) {
		events, want, pids := crashedRun()
		h := Header{RunID: "20261126T010120Z-0a0b0c", Playbook: "p", File: "p.yaml", Hash: "abc", Operator: "alice", Host: "laptop", BootID: "boot-1", Started: time.Now(), BatchRecords: true}
		j, err := store.Create(h)
		if err != nil {
			t.Fatal(err)
		}
		var passed []*engine.Event
		sink := NewSink(j, engine.SinkFunc(func(e *engine.Event) { passed = append(passed, e) }), io.Discard)
		sink.Mark(6)
		if err := sink.AwaitMark(6); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for _, e := range events {
			sink.Emit(e)
		}
		if len(passed) != len(events) {
			t.Errorf("the sink passed on %d events of %d", len(passed), len(events))
		}
		// Killed: what it wrote (or staged, for the shared store: synced
		// here as its last batch) stays; there is no end record.
		sink.Wait()
		if err := j.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		stop := time.Now()

		j, recs, err := store.Continue(h.RunID)
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		st, err := Fold(recs)
		if err != nil {
			t.Fatal(err)
		}
		if st.Finished() || st.Status != StatusCrashed || st.Attempts != 1 || st.Watermark != 6 {
			t.Errorf("status %q, %d attempt(s), watermark %d", st.Status, st.Attempts, st.Watermark)
		}
		a := Attempt{Operator: "bob", Host: "laptop", BootID: "boot-1", PID: 7, Started: time.Now()}
		if !sameMachine {
			a.Host, a.BootID = "desktop", "boot-2"
		}
		got, rec, lost := st.Resume(store, a, ResumeOptions{RetryInDoubt: true, LeftoverWait: time.Minute, Hash: "abc"})
		if lost != wantLost {
			t.Errorf("lost %v, want %v", lost, wantLost)
		}
		want.RetryInDoubt, want.LeftoverWait = true, time.Minute
		if wantLost {
			want.Watermark = 6
		}
		if rec.Watermark != want.Watermark || !reflect.DeepEqual(rec.Flags, []string{"--retry-in-doubt"}) || rec.Hash != "" || rec.Operator != "bob" {
			t.Errorf("the attempt's record: %+v", rec)
		}
		if len(got.Leftovers) != len(pids) {
			t.Errorf("leftovers %v, want process groups %v", got.Leftovers, pids)
		}
		for k, pid := range pids {
			lo := got.Leftovers[k]
			if lo.PID != pid || lo.Since.Before(start.Add(-time.Second)) || lo.Since.After(stop.Add(time.Second)) {
				t.Errorf("leftover of %v: %+v, want process group %d recorded between %s and %s", k, lo, pid, start, stop)
			}
		}
		got.Leftovers = nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("the engine's resume:\n got %#v\nwant %#v", got, want)
		}
	}
	t.Run("local, same boot", func(t *testing.T) { check(t, &Local{Dir: t.TempDir()}, true, false) })
	t.Run("local, after a reboot", func(t *testing.T) { check(t, &Local{Dir: t.TempDir()}, false, true) })
	t.Run("shared PostgreSQL", func(t *testing.T) {
		check(t, openPG(t, testpg.Start(t).URL()), true, true)
	})
}

// TestReadsVersion1Journal: a journal written before the durable package
// held both directions of the format (testdata/v1.journal: a run, then a
// resume killed part-way, written by runbook's journal sink) still reads,
// and folds to what it recorded.
func TestReadsVersion1Journal(t *testing.T) {
	src, err := os.ReadFile("testdata/v1.journal")
	if err != nil {
		t.Fatal(err)
	}
	s := &Local{Dir: t.TempDir()}
	defer s.Close()
	id := "20261126T010120Z-ebd0db"
	if _, err := s.runsDir(true); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "runs", id+".journal"), src, 0o600); err != nil {
		t.Fatal(err)
	}
	recs, prob, err := s.Read(id)
	if err != nil || prob != nil || len(recs) != 31 {
		t.Fatalf("%d records, problem %v, error %v", len(recs), prob, err)
	}
	st, err := Fold(recs)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Date(2026, 11, 26, 1, 1, 20, 0, time.UTC)
	wantHeader := Header{RunID: id, Playbook: "pg-ha/promote-standby", File: "bundled:pg-ha/promote-standby.yaml",
		Hash: "9f2c4e1d8b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d", Params: map[string]any{"standby": "pg2", "port": 5432.0},
		Given: map[string]string{"standby": "pg2"}, Secrets: []string{"replication_password"}, Inventory: "/home/alice/inventory.yaml",
		Operator: "alice", Host: "laptop", PID: 4242, Started: started, BootID: "0b8c2f4e-1d2a-4c5b-9e8f-7a6b5c4d3e2f", Yes: true}
	if !reflect.DeepEqual(st.Header, wantHeader) {
		t.Errorf("header:\n got %+v\nwant %+v", st.Header, wantHeader)
	}
	if ref := st.Header.PlaybookRef(); ref != "pg-ha/promote-standby" {
		t.Errorf("playbook ref %q", ref)
	}
	if st.Status != StatusCrashed || st.Message != "" || st.Attempts != 2 || st.Watermark != 5 || st.LostWatermark != 2 ||
		st.WriterHost != "desktop" || st.WriterBoot != "1c9d3f5a-2e3b-4d6c-8f9a-8b7c6d5e4f3a" {
		t.Errorf("status %q %q, %d attempts, watermark %d, lost %d, writer %s %s", st.Status, st.Message, st.Attempts, st.Watermark, st.LostWatermark, st.WriterHost, st.WriterBoot)
	}
	wantDone := map[engine.StepKey]engine.Outcome{
		{Index: 1, Host: "pg2"}: {Status: engine.StatusChanged, ID: "evidence",
			Result: steps.Result{"exit_code": 0, "ok": true, "rows": []any{map[string]any{"big": 12345678901, "f": 1.5, "n": 2}}, "stdout": "in archive recovery\n"}},
		{Index: 2, Host: "pg2"}:          {Status: engine.StatusOK, ID: "conf", Result: steps.Result{"changed": false}},
		{Index: 3, Host: "pg1", Item: 1}: {Status: engine.StatusSkipped, ID: "each"},
		{Index: 3, Host: "pg1", Item: 2}: {Status: engine.StatusChanged, ID: "each", Result: steps.Result{"exit_code": 0}},
	}
	if !reflect.DeepEqual(st.Done, wantDone) {
		t.Errorf("done:\n got %#v\nwant %#v", st.Done, wantDone)
	}
	wantDoubt := map[engine.StepKey]string{{Index: 4, Host: "pg2"}: "Promote", {Index: 5, Host: "pg1"}: "Fence", {Index: 5, Host: "pg3"}: "Fence"}
	if !reflect.DeepEqual(st.InDoubt, wantDoubt) {
		t.Errorf("in doubt: %v", st.InDoubt)
	}
	if !reflect.DeepEqual(st.Applying, map[engine.StepKey]bool{{Index: 4, Host: "pg2"}: true}) {
		t.Errorf("applying: %v", st.Applying)
	}
	since := time.Date(2026, 11, 30, 17, 0, 45, 753197269, time.UTC)
	if lo := st.Leftovers[engine.StepKey{Index: 4, Host: "pg2"}]; len(st.Leftovers) != 1 || lo.PID != 4711 || !lo.Since.Equal(since) {
		t.Errorf("leftovers: %v", st.Leftovers)
	}
	if !reflect.DeepEqual(st.StepsDone, map[int]bool{1: true, 2: true, 3: true}) || !reflect.DeepEqual(st.Confirmed, map[engine.GateKey]bool{{Index: 0, Word: "pg2", Text: "Promote pg2?"}: true, {Index: 4, Word: "pg2", Text: "Promote pg2?\ntimeline 2"}: true}) {
		t.Errorf("steps done %v, confirmed %v", st.StepsDone, st.Confirmed)
	}
	// Resumed here, on another machine than the last attempt's: the
	// records after its last sync may be lost.
	r, rec, lost := st.Resume(s, Attempt{Host: "elsewhere", BootID: "boot-x"}, ResumeOptions{Yes: true, Hash: "0123456789ab"})
	if !lost || r.Watermark != 5 || rec.Watermark != 5 || rec.Hash != "0123456789ab" || !reflect.DeepEqual(rec.Flags, []string{"--yes", "--allow-changed-playbook"}) {
		t.Errorf("resume: lost %v, watermark %d, record %+v", lost, r.Watermark, rec)
	}
	if err := st.CheckPlaybook("p.yaml", "0123456789ab", false); err == nil || !strings.Contains(err.Error(), "p.yaml changed since run "+id+" started (sha256 9f2c4e1d8b7a then, 0123456789ab now)") {
		t.Errorf("a changed playbook: %v", err)
	}
	if err := st.CheckPlaybook("p.yaml", "0123456789ab", true); err != nil {
		t.Errorf("a changed playbook, allowed: %v", err)
	}
	if err := st.CheckPlaybook("p.yaml", wantHeader.Hash, false); err != nil {
		t.Errorf("the same playbook: %v", err)
	}
}

// TestDecode: each record of testdata/v1.journal decodes by its kind, and
// the event of each event record, encoded again, gives the bytes the
// journal holds: the two directions of the format agree.
func TestDecode(t *testing.T) {
	f, err := os.Open("testdata/v1.journal")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, prob, err := journal.Read(f)
	if err != nil || prob != nil {
		t.Fatalf("%v %v", prob, err)
	}
	kinds := map[string]int{}
	for _, r := range recs {
		e, err := Decode(r)
		if err != nil {
			t.Fatalf("record %d (%s): %v", r.Seq, r.Kind, err)
		}
		kinds[r.Kind]++
		switch r.Kind {
		case KindRun:
			if e.Header == nil || e.Header.RunID != "20261126T010120Z-ebd0db" || e.Attempt != nil || e.Event != nil {
				t.Errorf("record %d: %+v", r.Seq, e)
			}
		case KindResume:
			if e.Attempt == nil || e.Attempt.Operator != "bob" || e.Attempt.Watermark != 2 || e.Header != nil || e.Event != nil {
				t.Errorf("record %d: %+v", r.Seq, e)
			}
		case KindMark, KindDone:
			if e.Index < 1 || e.Index > 5 || e.Event != nil {
				t.Errorf("record %d: %+v", r.Seq, e)
			}
		default:
			if e.Event == nil {
				t.Fatalf("record %d (%s): no event", r.Seq, r.Kind)
			}
			again, err := appendEvent(nil, e.Event)
			if err != nil || string(again) != string(r.Data) {
				t.Errorf("record %d (%s) encoded again:\n %s (%v)\nwant\n %s", r.Seq, r.Kind, again, err, r.Data)
			}
		}
	}
	want := map[string]int{KindRun: 1, KindResume: 1, KindMark: 2, KindGuard: 2, KindConfirm: 2, KindIntent: 8, KindApply: 3,
		KindProcess: 2, KindOutcome: 6, KindDone: 3, KindEnd: 1}
	if !reflect.DeepEqual(kinds, want) {
		t.Errorf("kinds %v, want %v", kinds, want)
	}
	// A kind this release does not know decodes to nothing, without error.
	if e, err := Decode(journal.Record{Kind: "later", Data: []byte(`{"x":1}`)}); err != nil || e.Header != nil || e.Attempt != nil || e.Event != nil {
		t.Errorf("an unknown kind: %+v, %v", e, err)
	}
}
