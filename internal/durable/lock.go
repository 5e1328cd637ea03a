package durable

// The locks (lock:) keep two runs from holding the same lock at once. On
// this machine a lock is a file locked with flock(2) for the whole run,
// holding a description of its holder. The kernel releases it when the
// holder dies, however it dies; the next run that takes it records the
// takeover. Lock files and the audit log live in the state directory,
// opened without following links (internal/statedir): a link planted there
// cannot make runbook truncate or write to another file. With a shared
// store, a lock is a PostgreSQL advisory lock (lockpg.go).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/runbook-dev/runbook/internal/statedir"
)

// Holder describes the run holding a lock.
type Holder struct {
	Name     string    `json:"name"`
	RunID    string    `json:"run_id"`
	Playbook string    `json:"playbook"`
	Operator string    `json:"operator"`
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Started  time.Time `json:"started"`
}

// HeldError is a lock that another run holds.
type HeldError struct {
	Holder Holder
}

func (e *HeldError) Error() string {
	h := e.Holder
	return fmt.Sprintf("lock %q is held by run %s (%s) of %s on %s, pid %d, since %s",
		h.Name, h.RunID, h.Playbook, h.Operator, h.Host, h.PID, h.Started.Local().Format(time.RFC3339))
}

// Lock is a held lock.
type Lock struct {
	f    *os.File
	path string
}

// lockFileName is the file of lock name in DIR/locks: every byte but
// letters, digits, '.' and '-' written as _XX (its hex), so that two
// names never share a file ("a/b" and "a_b" were one lock once).
func lockFileName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "_%02x", c)
	}
	name = b.String()
	if len(name) > 200 {
		// A file name holds 255 bytes: a long name keeps its start, for
		// the reader, and a hash of the whole, for uniqueness.
		sum := sha256.Sum256([]byte(name))
		name = name[:120] + "-" + hex.EncodeToString(sum[:16])
	}
	return name + ".lock"
}

// LockPath returns the file of lock name in the state directory dir.
func LockPath(dir, name string) string { return filepath.Join(dir, "locks", lockFileName(name)) }

// AcquireLock takes lock name for h. When another run holds it, it waits up to
// wait, polling, and then returns a *HeldError naming the holder; a
// cancelled ctx ends the wait at once with context.Cause(ctx). Taking
// over from a holder that died is recorded in DIR/locks/audit.log. dir is
// the state directory, created with mode 0700 when missing and refused
// when another user could write in it.
func AcquireLock(ctx context.Context, dir, name string, h Holder, wait time.Duration) (*Lock, error) {
	state, err := statedir.Open(dir, true)
	if err != nil {
		return nil, err
	}
	defer state.Close()
	locks, err := state.Sub("locks", true)
	if err != nil {
		return nil, err
	}
	defer locks.Close()
	deadline := time.Now().Add(wait)
	for {
		f, err := locks.OpenFile(lockFileName(name), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			prev, _ := readHolder(f)
			if prev.RunID != "" && prev.RunID != h.RunID {
				// The file still names a run the kernel no longer holds the
				// lock for: its process died without releasing it.
				line := fmt.Sprintf("%s lock %q taken over by run %s from run %s (pid %d, gone)", time.Now().UTC().Format(time.RFC3339), name, h.RunID, prev.RunID, prev.PID)
				if err := audit(locks, line); err != nil {
					f.Close()
					return nil, fmt.Errorf("lock %q: recording the takeover: %w", name, err)
				}
			}
			h.Name = name
			if err := writeHolder(f, h); err != nil {
				f.Close()
				return nil, err
			}
			return &Lock{f: f, path: f.Name()}, nil
		}
		holder, _ := readHolder(f)
		f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, err
		}
		if time.Now().After(deadline) {
			holder.Name = name
			return nil, &HeldError{Holder: holder}
		}
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, context.Cause(ctx)
		case <-t.C:
		}
	}
}

// Release clears the holder and unlocks.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := l.f.Close() // closing the descriptor releases the flock
	l.f = nil
	return err
}

func readHolder(f *os.File) (Holder, error) {
	var h Holder
	b := make([]byte, 4096)
	n, _ := f.ReadAt(b, 0)
	if n == 0 {
		return h, nil
	}
	err := json.Unmarshal(b[:n], &h)
	return h, err
}

func writeHolder(f *os.File, h Holder) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	return f.Sync()
}

// audit appends a line to the audit log of the locks directory.
func audit(locks *statedir.Dir, line string) error {
	f, err := locks.OpenFile("audit.log", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(f, line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Locker takes the locks (lock:) of one run, where its journal is kept:
// in the state directory Dir, or in the shared PostgreSQL at URL when URL
// is set. Its Lock is engine.Runner.Lock.
type Locker struct {
	Dir, URL string
	// Holder names the run (RunID, Playbook, Operator); the machine, the
	// pid and the time are filled in when a lock is taken.
	Holder Holder
	// Wait is how long to wait for a lock another run holds (--wait-lock);
	// 0 refuses at once with a *HeldError.
	Wait time.Duration
	// Waiting, when set, is told about the holder of a lock in the state
	// directory before the wait for it starts: a run that waits in
	// silence looks hung.
	Waiting func(*HeldError)
}

// Lock takes lock name and returns its release, which works even after
// ctx is cancelled. A lock another run holds past l.Wait is a *HeldError.
func (l *Locker) Lock(ctx context.Context, name string) (func(), error) {
	h := l.Holder
	h.Host, _ = os.Hostname()
	h.PID, h.Started = os.Getpid(), time.Now()
	if l.URL != "" {
		pl, err := AcquirePGLock(ctx, l.URL, name, h, l.Wait)
		if err != nil {
			return nil, err
		}
		return func() { _ = pl.Release() }, nil
	}
	fl, err := AcquireLock(ctx, l.Dir, name, h, 0)
	var held *HeldError
	if errors.As(err, &held) && l.Wait > 0 {
		if l.Waiting != nil {
			l.Waiting(held)
		}
		fl, err = AcquireLock(ctx, l.Dir, name, h, l.Wait)
	}
	if err != nil {
		return nil, err
	}
	return func() { _ = fl.Release() }, nil
}
