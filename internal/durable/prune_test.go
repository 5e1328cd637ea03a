package durable

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestLocalRemove: a journal a run still writes is not removed; once the
// run ended it is, and is no run any more.
func TestLocalRemove(t *testing.T) {
	s := &Local{Dir: t.TempDir()}
	const id = "20260101T000000Z-abcdef"
	j := mustCreate(t, s, Header{RunID: id, Playbook: "p", Started: time.Now()})
	if err := j.Append(KindEnd, map[string]string{"status": "ok"}); err != nil {
		t.Fatal(err)
	}
	var be *BusyError
	if err := s.Remove(id); !errors.As(err, &be) {
		t.Fatalf("Remove of a run being written: %v, want a *BusyError", err)
	}
	j.Close()
	if err := s.Remove(id); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, _, err := s.Continue(id); !errors.Is(err, ErrNoRun) {
		t.Errorf("Continue of a removed run: %v, want ErrNoRun", err)
	}
	if err := s.Remove(id); !errors.Is(err, ErrNoRun) {
		t.Errorf("Remove again: %v, want ErrNoRun", err)
	}
}

// TestPruneKeepsResumable: by age and count, never a run a resume could
// continue unless forced.
func TestPruneKeepsResumable(t *testing.T) {
	s := &Local{Dir: t.TempDir()}
	now := time.Now()
	mk := func(id string, age time.Duration, end string, stepped bool) {
		j := mustCreate(t, s, Header{RunID: id, Playbook: "p", Started: now.Add(-age)})
		if stepped {
			// Step 1 may make changes: a resume has something to go on with.
			if err := j.Append(KindMark, map[string]int{"index": 1}); err != nil {
				t.Fatal(err)
			}
		}
		if end != "" {
			if err := j.Append(KindEnd, map[string]string{"status": end}); err != nil {
				t.Fatal(err)
			}
		} else if err := j.Sync(); err != nil {
			t.Fatal(err)
		}
		j.Close()
	}
	mk("20260101T000000Z-000001", 72*time.Hour, "ok", true)
	mk("20260101T000000Z-000002", 60*time.Hour, "failed", true)
	mk("20260101T000000Z-000003", 48*time.Hour, "", true) // crashed
	mk("20260101T000000Z-000004", time.Hour, "ok", true)
	// Refused by a guard: failed before any step, nothing to resume.
	mk("20260101T000000Z-000005", 50*time.Hour, "failed", false)
	res, err := Prune(s, PruneOptions{OlderThan: 24 * time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	var removed []string
	for _, r := range res.Removed {
		removed = append(removed, r.RunID)
	}
	if strings.Join(removed, " ") != "20260101T000000Z-000001 20260101T000000Z-000005" || len(res.Resumable) != 2 {
		t.Fatalf("removed %v, kept as resumable %v", res.Removed, res.Resumable)
	}
	res, err = Prune(s, PruneOptions{Keep: 1, Force: true, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.List(); len(res.Removed) != 2 || len(ids) != 1 || ids[0] != "20260101T000000Z-000004" {
		t.Errorf("with --force and --keep 1: removed %v, left %v", res.Removed, ids)
	}
}
