package durable

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func holder(id string) Holder {
	return Holder{RunID: id, Playbook: "pg-ha/promote-standby", Operator: "alice", Host: "laptop", PID: os.Getpid(), Started: time.Now()}
}

func TestLockExclusive(t *testing.T) {
	dir := t.TempDir()
	a, err := AcquireLock(context.Background(), dir, "pg-cluster-prod", holder("run-a"), 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = AcquireLock(context.Background(), dir, "pg-cluster-prod", holder("run-b"), 0)
	var he *HeldError
	if !errors.As(err, &he) || he.Holder.RunID != "run-a" || !strings.Contains(err.Error(), "held by run run-a (pg-ha/promote-standby) of alice on laptop") {
		t.Fatalf("second acquire: %v", err)
	}
	// Another lock name is independent.
	c, err := AcquireLock(context.Background(), dir, "pg-cluster-test", holder("run-c"), 0)
	if err != nil {
		t.Fatal(err)
	}
	c.Release()
	// Names that differ only in bytes a file name cannot hold are two locks.
	for _, name := range []string{"pg-cluster/prod", "pg-cluster_prod", "pg-cluster prod", "pg-cluster_2fprod", strings.Repeat("/", 90), strings.Repeat("é", 50), strings.Repeat("/", 90) + "x"} {
		l, err := AcquireLock(context.Background(), dir, name, holder("run-d"), 0)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		defer l.Release()
	}
	// Waiting: the lock is released while the second run waits.
	go func() {
		time.Sleep(300 * time.Millisecond)
		a.Release()
	}()
	b, err := AcquireLock(context.Background(), dir, "pg-cluster-prod", holder("run-b"), 5*time.Second)
	if err != nil {
		t.Fatalf("waiting acquire: %v", err)
	}
	b.Release()
}

// TestLockDeadHolderTakenOver: a holder killed with SIGKILL releases the lock
// (the kernel does), and the next run takes it over with an audit record.
func TestLockDeadHolderTakenOver(t *testing.T) {
	if os.Getenv("LOCK_HELPER_DIR") != "" {
		if _, err := AcquireLock(context.Background(), os.Getenv("LOCK_HELPER_DIR"), "x", holder("run-dead"), 0); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Minute)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=TestLockDeadHolderTakenOver")
	cmd.Env = append(os.Environ(), "LOCK_HELPER_DIR="+dir)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := out.Read(buf); err != nil || string(buf) != "locked\n" {
		t.Fatalf("helper: %q %v", buf, err)
	}
	if _, err := AcquireLock(context.Background(), dir, "x", holder("run-live"), 0); err == nil {
		t.Fatal("acquired a lock a live process holds")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	l, err := AcquireLock(context.Background(), dir, "x", holder("run-live"), 0)
	if err != nil {
		t.Fatalf("after the holder died: %v", err)
	}
	l.Release()
	b, _ := os.ReadFile(filepath.Join(dir, "locks", "audit.log"))
	if !strings.Contains(string(b), `lock "x" taken over by run run-live from run run-dead`) {
		t.Errorf("audit: %q", b)
	}
}

// TestLockRefusesLinksInStateDirectory: a lock file or an audit log that is a
// symbolic link (planted by someone who could write in the state
// directory) is refused, and the file it points to is left as it was: it
// used to be truncated, or have a line appended.
func TestLockRefusesLinksInStateDirectory(t *testing.T) {
	outside := victim(t)
	dir := t.TempDir()
	l, err := AcquireLock(context.Background(), dir, "x", holder("run-a"), 0)
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	lockFile := LockPath(dir, "x")
	os.Remove(lockFile)
	if err := os.Symlink(outside, lockFile); err != nil {
		t.Fatal(err)
	}
	if _, err := AcquireLock(context.Background(), dir, "x", holder("run-b"), 0); err == nil || !strings.Contains(err.Error(), "is a symbolic link") {
		t.Fatalf("a symlinked lock file: %v", err)
	}
	// The audit log, written when a run takes over from a dead holder.
	os.Remove(lockFile)
	if err := os.WriteFile(lockFile, []byte(`{"run_id":"run-dead","pid":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "locks", "audit.log")); err != nil {
		t.Fatal(err)
	}
	if _, err := AcquireLock(context.Background(), dir, "x", holder("run-c"), 0); err == nil || !strings.Contains(err.Error(), "audit.log is a symbolic link") {
		t.Fatalf("a symlinked audit log: %v", err)
	}
}

// TestLockRefusesStateDirectoryOthersCanWrite: locks are not taken in a state
// directory that group or others can write.
func TestLockRefusesStateDirectoryOthersCanWrite(t *testing.T) {
	dir := writableByOthers(t, 0o775)
	if _, err := AcquireLock(context.Background(), dir, "x", holder("run-a"), 0); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "locks")); err == nil {
		t.Error("something was created in the unsafe directory")
	}
}

// TestLocker: a run's locker refuses a lock another run holds, naming the
// holder, or with a wait says whom it waits for and takes the lock once
// it is released.
func TestLocker(t *testing.T) {
	dir := t.TempDir()
	a := &Locker{Dir: dir, Holder: Holder{RunID: "run-a", Playbook: "pg-ha/switchover", Operator: "alice"}}
	release, err := a.Lock(context.Background(), "pg-cluster")
	if err != nil {
		t.Fatal(err)
	}
	var held *HeldError
	b := &Locker{Dir: dir, Holder: Holder{RunID: "run-b", Operator: "bob"}}
	if _, err := b.Lock(context.Background(), "pg-cluster"); !errors.As(err, &held) || held.Holder.RunID != "run-a" ||
		held.Holder.Operator != "alice" || held.Holder.PID != os.Getpid() || held.Holder.Name != "pg-cluster" {
		t.Fatalf("a held lock: %v", err)
	}
	var waited []string
	b.Wait = 5 * time.Second
	b.Waiting = func(h *HeldError) {
		waited = append(waited, h.Holder.RunID)
		release()
	}
	releaseB, err := b.Lock(context.Background(), "pg-cluster")
	if err != nil {
		t.Fatalf("after waiting: %v", err)
	}
	defer releaseB()
	if len(waited) != 1 || waited[0] != "run-a" {
		t.Errorf("waited for %v, want [run-a]", waited)
	}
	raw, err := os.ReadFile(LockPath(dir, "pg-cluster"))
	if err != nil || !strings.Contains(string(raw), `"run_id":"run-b"`) {
		t.Errorf("the lock file names %s (%v), want run-b", raw, err)
	}
}
