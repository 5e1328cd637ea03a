package journal

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type step struct {
	Index  int    `json:"index"`
	Status string `json:"status"`
}

func writeFive(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run.journal")
	w, err := createPath(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if _, err := w.Append("outcome", step{i, "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRoundTrip(t *testing.T) {
	path := writeFive(t)
	recs, prob, err := readPath(path)
	if err != nil || prob != nil || len(recs) != 5 {
		t.Fatalf("%d records, problem %v, err %v", len(recs), prob, err)
	}
	var s step
	if err := json.Unmarshal(recs[4].Data, &s); err != nil || s.Index != 5 || recs[4].Seq != 5 {
		t.Fatalf("last record %+v", recs[4])
	}
	if _, err := createPath(path); err == nil {
		t.Fatal("Create overwrote a journal")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
}

// TestTornLastRecord: a crash in the middle of the last write leaves half a
// line: detected, ignored, and cut off before appending again.
func TestTornLastRecord(t *testing.T) {
	path := writeFive(t)
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, b[:len(b)-10], 0o600); err != nil {
		t.Fatal(err)
	}
	recs, prob, err := readPath(path)
	if err != nil || prob == nil || !prob.Torn || prob.Line != 5 || len(recs) != 4 {
		t.Fatalf("%d records, problem %v, err %v", len(recs), prob, err)
	}
	w, got, err := openPath(path)
	if err != nil || len(got) != 4 {
		t.Fatalf("open: %d records, %v", len(got), err)
	}
	if !busyPath(path) {
		t.Error("a journal held by a writer is not busy")
	}
	if _, _, err := openPath(path); !errors.Is(err, ErrBusy) {
		t.Errorf("a second writer: %v, want ErrBusy", err)
	}
	if seq, err := w.Append("outcome", step{5, "ok"}); err != nil || seq != 5 {
		t.Fatalf("append after a torn record: sequence %d, %v", seq, err)
	}
	w.Close()
	if busyPath(path) {
		t.Error("a closed journal is busy")
	}
	recs, prob, _ = readPath(path)
	if prob != nil || len(recs) != 5 {
		t.Fatalf("after append: %d records, %v", len(recs), prob)
	}
}

// TestFlippedByte: a damaged record in the middle is reported and nothing
// from it on is returned, wherever the flip is (data or checksum).
func TestFlippedByte(t *testing.T) {
	for _, at := range []string{"data", "checksum"} {
		path := writeFive(t)
		b, _ := os.ReadFile(path)
		lines := 0
		for i := range b {
			if b[i] == '\n' {
				lines++
				if lines == 2 {
					pos := i + 1 + 20 // inside the third record's JSON
					if at == "checksum" {
						pos = i + 1 + 3
					}
					b[pos] ^= 0x01
					break
				}
			}
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		recs, prob, err := readPath(path)
		if err != nil || prob == nil || prob.Torn || prob.Line != 3 || len(recs) != 2 {
			t.Fatalf("flip in %s: %d records, problem %v, err %v", at, len(recs), prob, err)
		}
		if _, _, err := openPath(path); err == nil {
			t.Fatalf("flip in %s: appended to a damaged journal", at)
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	w, err := createPath(filepath.Join(b.TempDir(), "bench.journal"))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	for b.Loop() {
		if _, err := w.Append("outcome", step{1, "ok"}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestConcurrentAppends: appends from many goroutines (a fan-out) all land,
// in sequence, each synced before its Append returns.
func TestConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fan.journal")
	w, err := createPath(path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 40)
	for i := 0; i < 40; i++ {
		go func() {
			_, err := w.Append("outcome", step{i, "ok"})
			done <- err
		}()
	}
	for i := 0; i < 40; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	recs, prob, err := readPath(path)
	if err != nil || prob != nil || len(recs) != 40 {
		t.Fatalf("%d records, %v %v", len(recs), prob, err)
	}
}

// TestWriteThenAppend: a record written without sync is read back once a
// later Append (or Close) synced the file.
func TestWriteThenAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.journal")
	w, err := createPath(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write("outcome", step{1, "changed"}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append("intent", step{2, ""}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write("outcome", step{2, "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	recs, prob, err := readPath(path)
	if err != nil || prob != nil || len(recs) != 3 || recs[0].Kind != "outcome" || recs[2].Seq != 3 {
		t.Fatalf("%+v %v %v", recs, prob, err)
	}
}

// TestStage: a staged record is not in the file until a later Write,
// Append or Sync writes it, before that record and in its numbered place;
// Close writes what is still staged.
func TestStage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.journal")
	w, err := createPath(path)
	if err != nil {
		t.Fatal(err)
	}
	count := func() int {
		t.Helper()
		recs, prob, err := readPath(path)
		if err != nil || prob != nil {
			t.Fatalf("read: %v %v", prob, err)
		}
		return len(recs)
	}
	if _, err := w.Stage("intent", step{1, ""}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Fatalf("a staged record is in the file: %d records", n)
	}
	if _, err := w.Write("apply", step{1, ""}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Fatalf("after Write: %d records, want the staged one and the written one", n)
	}
	if _, err := w.Stage("outcome", step{1, "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 3 {
		t.Fatalf("after Sync: %d records", n)
	}
	// A staged record that waits long is written anyway: a run still
	// going shows its step started.
	if _, err := w.Stage("intent", step{2, ""}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * staleAfter)
	for count() != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("a staged record still not written after %s", 10*staleAfter)
		}
		time.Sleep(staleAfter / 4)
	}
	if _, err := w.Stage("outcome", step{2, "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	recs, _, _ := readPath(path)
	var kinds []string
	for i, r := range recs {
		if r.Seq != int64(i+1) {
			t.Fatalf("record %d has sequence %d", i+1, r.Seq)
		}
		kinds = append(kinds, r.Kind)
	}
	if got := strings.Join(kinds, " "); got != "intent apply outcome intent outcome" {
		t.Fatalf("kinds %q", got)
	}
}

// TestEncodedRecord: the hand-built line reads back as the record it was,
// whatever the data holds, and a kind that would need quoting is refused.
func TestEncodedRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e.journal")
	w, err := createPath(path)
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]any{"msg": "quote \" backslash \\ newline \n tab \t <html> & é 日本", "n": 1.5, "list": []any{nil, true}}
	if _, err := w.Append("step-done", data); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append("outcome", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write("outcome", make(chan int)); err == nil {
		t.Error("data json cannot encode accepted")
	}
	for _, bad := range []string{"", "Outcome", `a"b`, "a b", "é"} {
		if _, err := w.Write(bad, data); err == nil {
			t.Errorf("kind %q accepted", bad)
		}
	}
	w.Close()
	recs, prob, err := readPath(path)
	if err != nil || prob != nil || len(recs) != 2 {
		t.Fatalf("%d records, %v %v", len(recs), prob, err)
	}
	var got map[string]any
	if err := json.Unmarshal(recs[0].Data, &got); err != nil {
		t.Fatal(err)
	}
	if recs[0].Kind != "step-done" || got["msg"] != data["msg"] || got["n"] != 1.5 || recs[0].Time.IsZero() {
		t.Fatalf("read back %+v: %v", recs[0], got)
	}
	if string(recs[1].Data) != "null" {
		t.Fatalf("nil data read back as %q", recs[1].Data)
	}
}
