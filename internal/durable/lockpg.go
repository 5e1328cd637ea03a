package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// PGLock is a lock held in a shared PostgreSQL, for teams whose operators and
// CI runners drive the same clusters from several machines: a session
// advisory lock on the lock's name, held by a connection kept open for
// the run, with the holder in the runbook_locks table. PostgreSQL releases
// the advisory lock when the holder's connection dies.
type PGLock struct {
	conn *pgx.Conn
	name string
	run  string
}

const pgLockSchema = `
CREATE TABLE IF NOT EXISTS runbook_locks (name text PRIMARY KEY, holder jsonb NOT NULL, acquired_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS runbook_lock_audit (at timestamptz NOT NULL DEFAULT now(), name text NOT NULL, event text NOT NULL);
`

// AcquirePGLock takes lock name in the database at url for h, waiting up to
// wait for another holder; it returns a *HeldError naming the holder.
func AcquirePGLock(ctx context.Context, url, name string, h Holder, wait time.Duration) (*PGLock, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("lock store: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	// Two first runs may create the tables at once: one does it under a
	// transaction-scoped advisory lock of its own.
	if _, err := conn.Exec(ctx, "BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('runbook schema', 0)); "+pgLockSchema+" COMMIT;"); err != nil {
		return nil, fmt.Errorf("lock store: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		got, err := tryAdvisoryLock(ctx, conn, name)
		if err != nil {
			return nil, fmt.Errorf("lock store: %w", err)
		}
		var raw []byte
		err = conn.QueryRow(ctx, "SELECT holder FROM runbook_locks WHERE name = $1", name).Scan(&raw)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("lock store: %w", err)
		}
		var prev Holder
		if raw != nil {
			_ = json.Unmarshal(raw, &prev)
		}
		if got {
			if prev.RunID != "" && prev.RunID != h.RunID {
				// The row names a run whose connection is gone: it died.
				if _, err := conn.Exec(ctx, "INSERT INTO runbook_lock_audit (name, event) VALUES ($1, $2)", name,
					fmt.Sprintf("taken over by run %s from run %s of %s on %s (connection gone)", h.RunID, prev.RunID, prev.Operator, prev.Host)); err != nil {
					return nil, fmt.Errorf("lock store: %w", err)
				}
			}
			h.Name = name
			b, _ := json.Marshal(h)
			if _, err := conn.Exec(ctx, "INSERT INTO runbook_locks (name, holder) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET holder = $2, acquired_at = now()", name, b); err != nil {
				return nil, fmt.Errorf("lock store: %w", err)
			}
			ok = true
			return &PGLock{conn: conn, name: name, run: h.RunID}, nil
		}
		if time.Now().After(deadline) {
			prev.Name = name
			return nil, &HeldError{Holder: prev}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Release clears the holder and unlocks, even after the run's context was
// cancelled.
func (l *PGLock) Release() error {
	if l == nil || l.conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = l.conn.Exec(ctx, "DELETE FROM runbook_locks WHERE name = $1 AND holder->>'run_id' = $2", l.name, l.run)
	advisoryUnlock(ctx, l.conn, l.name)
	err := l.conn.Close(ctx)
	l.conn = nil
	return err
}

// tryAdvisoryLock takes the session-level advisory lock of key on conn if
// no other session holds it, and says whether it did.
func tryAdvisoryLock(ctx context.Context, conn *pgx.Conn, key string) (bool, error) {
	var got bool
	err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key).Scan(&got)
	return got, err
}

// advisoryUnlock releases the lock tryAdvisoryLock took; if it cannot,
// the lock goes with the session.
func advisoryUnlock(ctx context.Context, conn *pgx.Conn, key string) {
	_, _ = conn.Exec(ctx, "SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)
}
