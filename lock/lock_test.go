package lock

import (
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

func TestExclusive(t *testing.T) {
	dir := t.TempDir()
	a, err := Acquire(dir, "pg-cluster-prod", holder("run-a"), 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(dir, "pg-cluster-prod", holder("run-b"), 0)
	var he *HeldError
	if !errors.As(err, &he) || he.Holder.RunID != "run-a" || !strings.Contains(err.Error(), "held by run run-a (pg-ha/promote-standby) of alice on laptop") {
		t.Fatalf("second acquire: %v", err)
	}
	// Another lock name is independent.
	c, err := Acquire(dir, "pg-cluster-test", holder("run-c"), 0)
	if err != nil {
		t.Fatal(err)
	}
	c.Release()
	// Waiting: the lock is released while the second run waits.
	go func() {
		time.Sleep(300 * time.Millisecond)
		a.Release()
	}()
	b, err := Acquire(dir, "pg-cluster-prod", holder("run-b"), 5*time.Second)
	if err != nil {
		t.Fatalf("waiting acquire: %v", err)
	}
	b.Release()
}

// TestDeadHolderTakenOver: a holder killed with SIGKILL releases the lock
// (the kernel does), and the next run takes it over with an audit record.
func TestDeadHolderTakenOver(t *testing.T) {
	if os.Getenv("LOCK_HELPER_DIR") != "" {
		if _, err := Acquire(os.Getenv("LOCK_HELPER_DIR"), "x", holder("run-dead"), 0); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Minute)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=TestDeadHolderTakenOver")
	cmd.Env = append(os.Environ(), "LOCK_HELPER_DIR="+dir)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := out.Read(buf); err != nil || string(buf) != "locked\n" {
		t.Fatalf("helper: %q %v", buf, err)
	}
	if _, err := Acquire(dir, "x", holder("run-live"), 0); err == nil {
		t.Fatal("acquired a lock a live process holds")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	l, err := Acquire(dir, "x", holder("run-live"), 0)
	if err != nil {
		t.Fatalf("after the holder died: %v", err)
	}
	l.Release()
	b, _ := os.ReadFile(filepath.Join(dir, "locks", "audit.log"))
	if !strings.Contains(string(b), `lock "x" taken over by run run-live from run run-dead`) {
		t.Errorf("audit: %q", b)
	}
}
