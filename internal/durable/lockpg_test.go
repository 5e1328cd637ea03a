package durable

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runbook-dev/runbook/internal/testpg"
)

// TestPGLockExclusive: two runs on two "machines" (two connections) asking for
// the same lock in a real PostgreSQL: exactly one proceeds.
func TestPGLockExclusive(t *testing.T) {
	url := testpg.Start(t).URL()
	ctx := context.Background()
	a, err := AcquirePGLock(ctx, url, "pg-cluster-prod", holder("run-a"), 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = AcquirePGLock(ctx, url, "pg-cluster-prod", holder("run-b"), 0)
	var he *HeldError
	if !errors.As(err, &he) || he.Holder.RunID != "run-a" || !strings.Contains(err.Error(), "of alice on laptop") {
		t.Fatalf("second acquire: %v", err)
	}
	other, err := AcquirePGLock(ctx, url, "pg-cluster-test", holder("run-c"), 0)
	if err != nil {
		t.Fatal(err)
	}
	other.Release()
	go func() {
		time.Sleep(300 * time.Millisecond)
		a.Release()
	}()
	b, err := AcquirePGLock(ctx, url, "pg-cluster-prod", holder("run-b"), 10*time.Second)
	if err != nil {
		t.Fatalf("waiting acquire: %v", err)
	}
	// The holder's connection dies without releasing: PostgreSQL frees the
	// advisory lock and the next run takes over, with an audit row.
	if err := b.conn.Close(ctx); err != nil {
		t.Fatal(err)
	}
	b.conn = nil
	c, err := AcquirePGLock(ctx, url, "pg-cluster-prod", holder("run-d"), 5*time.Second)
	if err != nil {
		t.Fatalf("after the holder's connection died: %v", err)
	}
	defer c.Release()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var event string
	if err := conn.QueryRow(ctx, "SELECT event FROM runbook_lock_audit ORDER BY at DESC LIMIT 1").Scan(&event); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(event, "taken over by run run-d from run run-b") {
		t.Errorf("audit: %q", event)
	}
}
