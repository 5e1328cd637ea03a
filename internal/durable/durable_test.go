package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

func ev(index int, host string, st engine.Status, result steps.Result) *engine.Event {
	return &engine.Event{Index: index, ID: fmt.Sprintf("s%d", index), Name: fmt.Sprintf("step %d", index), Host: host, Status: st, Result: result}
}

// writeRun journals a run with a crash in the middle: step 1 done with a
// result, step 2 failed, step 3 applying when the process died, step 4
// started and never reported, step 5 interrupted after an earlier outcome.
func writeRun(t *testing.T, s Store) string {
	t.Helper()
	id := "20261126T000000Z-abcdef"
	j := mustCreate(t, s, Header{RunID: id, Playbook: "p", Hash: "h", Started: time.Now()})
	for _, r := range []struct {
		kind string
		ev   *engine.Event
	}{
		{KindIntent, ev(1, "a", "", nil)},
		{KindApply, ev(1, "a", "", nil)},
		{KindOutcome, ev(1, "a", engine.StatusChanged, steps.Result{"exit_code": 0, "stdout": "x", "rows": []any{map[string]any{"n": 2, "f": 1.5}}})},
		{KindIntent, ev(2, "a", "", nil)},
		{KindOutcome, ev(2, "a", engine.StatusFailed, nil)},
		{KindIntent, ev(3, "a", "", nil)},
		{KindApply, ev(3, "a", "", nil)},
		{KindIntent, ev(4, "b", "", nil)},
		{KindIntent, ev(5, "a", "", nil)},
		{KindOutcome, ev(5, "a", engine.StatusInterrupted, nil)},
	} {
		write := j.Append
		if r.kind == KindOutcome {
			write = j.Write
		}
		if err := write(r.kind, r.ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return id
}

func checkFold(t *testing.T, s Store, id string) {
	t.Helper()
	recs, prob, err := s.Read(id)
	if err != nil || prob != nil {
		t.Fatalf("read: %v %v", prob, err)
	}
	st, err := Fold(recs)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != StatusCrashed || st.Header.RunID != id {
		t.Errorf("status %q, header %+v", st.Status, st.Header)
	}
	o, ok := st.Done[engine.StepKey{Index: 1, Host: "a"}]
	if !ok || o.Status != engine.StatusChanged || o.ID != "s1" || len(st.Done) != 1 {
		t.Fatalf("done: %+v", st.Done)
	}
	// Whole numbers come back as int, as the step types made them.
	if _, ok := o.Result["exit_code"].(int); !ok {
		t.Errorf("exit_code is %T", o.Result["exit_code"])
	}
	row := o.Result["rows"].([]any)[0].(map[string]any)
	if _, ok := row["n"].(int); !ok || row["f"] != 1.5 {
		t.Errorf("row %#v", row)
	}
	want := map[engine.StepKey]bool{{Index: 3, Host: "a"}: true, {Index: 4, Host: "b"}: true, {Index: 5, Host: "a"}: true}
	if len(st.InDoubt) != len(want) {
		t.Errorf("in doubt: %v", st.InDoubt)
	}
	for k := range want {
		if _, ok := st.InDoubt[k]; !ok {
			t.Errorf("%v is not in doubt", k)
		}
	}
	if !st.Applying[engine.StepKey{Index: 3, Host: "a"}] || len(st.Applying) != 1 {
		t.Errorf("applying: %v", st.Applying)
	}
	// The failure runs again, and so makes the outcomes after it on a stale.
	if !st.Failed[engine.StepKey{Index: 2, Host: "a"}] || len(st.Failed) != 1 {
		t.Errorf("failed: %v", st.Failed)
	}
}

// continueHeld continues the run id of writeRun in s, and checks that
// the run is then held as other sees it: running, and a second Continue
// refused, naming the run's playbook.
func continueHeld(t *testing.T, s, other Store, id string) Journal {
	t.Helper()
	j, recs, err := s.Continue(id)
	if err != nil || len(recs) != 11 {
		t.Fatalf("continue: %d records, %v", len(recs), err)
	}
	if !other.Running(id) {
		t.Error("a continued run is not running")
	}
	var be *BusyError
	if _, _, err := other.Continue(id); !errors.As(err, &be) || be.Header.Playbook != "p" {
		t.Errorf("second continue: %v", err)
	}
	return j
}

func TestFoldLocal(t *testing.T) {
	s := &Local{Dir: t.TempDir()}
	id := writeRun(t, s)
	checkFold(t, s, id)
	ids, err := s.List()
	if err != nil || len(ids) != 1 || ids[0] != id {
		t.Fatalf("list: %v %v", ids, err)
	}
	j := continueHeld(t, s, s, id)
	j.Close()
	if _, _, err := s.Continue("../etc/passwd"); !errors.Is(err, ErrNoRun) {
		t.Errorf("a path as run id: %v", err)
	}
	if _, _, err := s.Read("nope"); !errors.Is(err, ErrNoRun) {
		t.Errorf("read of no run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "runs", id+".journal")); err != nil {
		t.Error(err)
	}
}

// openPG opens the store in the PostgreSQL at url, closed when the test
// ends.
func openPG(t *testing.T, url string) *PG {
	t.Helper()
	s, err := OpenPG(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestPGStore: the same journal kept in a real PostgreSQL, with the run
// held by its writer's connection.
func TestPGStore(t *testing.T) {
	url := testpg.Start(t).URL()
	s := openPG(t, url)
	id := writeRun(t, s)
	checkFold(t, s, id)
	other := openPG(t, url)
	// Another operator's machine sees the run held, and cannot resume it.
	j := continueHeld(t, s, other, id)
	if err := j.Append(KindResume, Attempt{Operator: "bob"}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	if other.Running(id) {
		t.Error("a closed run is still running")
	}
	recs, _, err := other.Read(id)
	if err != nil || len(recs) != 12 || recs[11].Kind != KindResume || recs[11].Seq != 12 {
		t.Fatalf("after the resume record: %d records, %v", len(recs), err)
	}
	ids, err := other.List()
	if err != nil || len(ids) != 1 || ids[0] != id {
		t.Fatalf("list: %v %v", ids, err)
	}
	if _, _, err := other.Read("nope"); !errors.Is(err, ErrNoRun) {
		t.Errorf("read of no run: %v", err)
	}
}

// TestFoldEmpty: a journal a power cut left empty says so, and says what
// to do; one whose first record is not a header is refused.
func TestFoldEmpty(t *testing.T) {
	if _, err := Fold(nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty journal: %v, want ErrEmpty", err)
	}
	if _, err := Fold([]journal.Record{{Seq: 1, Kind: KindIntent}}); err == nil || errors.Is(err, ErrEmpty) {
		t.Errorf("journal without a header: %v", err)
	}
}

// TestFoldConfirmed: a confirmation gate counts as passed on resume only
// when the attempt that confirmed it went on to make the change it guards
// on the host that asked, and only for what was asked (its word and
// text); a refused gate, or one confirmed and then left, is asked again.
func TestFoldConfirmed(t *testing.T) {
	recs := []journal.Record{rec(t, KindRun, Header{RunID: "r"})}
	add := func(kind string, data any) { recs = append(recs, rec(t, kind, data)) }
	confirm := func(index int, host string, st engine.Status) *engine.Event {
		return &engine.Event{Type: engine.EventConfirm, Index: index, Host: host, Status: st, Word: host, Message: "restart " + host + "?", Operator: "alice@laptop"}
	}
	add(KindConfirm, confirm(0, "", engine.StatusOK)) // the playbook's gate
	add(KindIntent, ev(1, "a", "", nil))
	add(KindOutcome, ev(1, "a", engine.StatusOK, nil)) // read-only: no apply
	add(KindConfirm, confirm(2, "a", engine.StatusOK))
	add(KindIntent, ev(2, "a", "", nil))
	add(KindApply, ev(2, "a", "", nil))
	add(KindConfirm, confirm(2, "b", engine.StatusFailed)) // refused for b
	add(KindConfirm, confirm(2, "c", engine.StatusOK))     // confirmed for c, acted on for a only
	add(KindApply, ev(2, "a", "", nil))
	add(KindConfirm, confirm(3, "a", engine.StatusOK)) // confirmed, then the engine died
	add(KindIntent, ev(3, "a", "", nil))
	add(KindConfirm, confirm(4, "a", engine.StatusFailed))
	add(KindResume, Attempt{Operator: "bob"})
	add(KindApply, ev(3, "a", "", nil)) // another attempt's apply
	st, err := Fold(recs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[engine.GateKey]bool{{Index: 0, Text: "restart ?"}: true, {Index: 2, Word: "a", Text: "restart a?"}: true}
	if !reflect.DeepEqual(st.Confirmed, want) {
		t.Errorf("confirmed: %v, want %v", st.Confirmed, want)
	}
}

func rec(t *testing.T, kind string, data any) journal.Record {
	t.Helper()
	b, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	return journal.Record{Kind: kind, Data: b, Time: time.Now()}
}

// mustCreate starts the journal of the run h heads in s.
func mustCreate(tb testing.TB, s Store, h Header) Journal {
	tb.Helper()
	j, err := s.Create(h)
	if err != nil {
		tb.Fatal(err)
	}
	return j
}

// victim writes a file outside the state directory, for a planted link
// to point to, and checks when the test ends that it is as it was.
func victim(t *testing.T) string {
	t.Helper()
	outside := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(outside, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if b, _ := os.ReadFile(outside); string(b) != "precious\n" {
			t.Errorf("the file outside the state directory changed: %q", b)
		}
	})
	return outside
}

// writableByOthers is a new directory with mode: one group or others can
// write in.
func writableByOthers(t *testing.T, mode os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestLocalRefusesLinkedJournals: a journal that is a symbolic link is
// neither continued nor read (a resume trusts only journals runbook
// wrote in its own directory), and the file it points to is left alone.
func TestLocalRefusesLinkedJournals(t *testing.T) {
	outside := victim(t)
	s := &Local{Dir: t.TempDir()}
	defer s.Close()
	j := mustCreate(t, s, Header{RunID: "20260101T000000Z-aaaaaa", Playbook: "p", Started: time.Now()})
	j.Close()
	id := "20260101T000000Z-bbbbbb"
	if err := os.Symlink(outside, filepath.Join(s.Dir, "runs", id+".journal")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Continue(id); err == nil || !strings.Contains(err.Error(), "is a symbolic link") {
		t.Errorf("continue: %v", err)
	}
	if _, _, err := s.Read(id); err == nil || !strings.Contains(err.Error(), "is a symbolic link") {
		t.Errorf("read: %v", err)
	}
	if s.Running(id) {
		t.Error("a linked journal counts as running")
	}
	if _, err := s.Create(Header{RunID: id, Playbook: "p", Started: time.Now()}); err == nil {
		t.Error("created a journal over a link")
	}
}

// TestLocalRefusesStateDirectoryOthersCanWrite: no journal is written to,
// or read from, a state directory that group or others can write.
func TestLocalRefusesStateDirectoryOthersCanWrite(t *testing.T) {
	dir := writableByOthers(t, 0o770)
	s := &Local{Dir: dir}
	defer s.Close()
	if _, err := s.Create(Header{RunID: "20260101T000000Z-aaaaaa", Playbook: "p", Started: time.Now()}); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Fatalf("create: %v", err)
	}
	if _, err := s.List(); err == nil {
		t.Error("listed the runs of an unsafe directory")
	}
}
