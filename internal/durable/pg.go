package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runbook-dev/runbook/internal/journal"
)

// PG keeps journals in a shared PostgreSQL, one row per record, for teams
// whose operators and CI runners resume each other's runs. A record is
// durable once its INSERT commits. The writer of a run holds a session
// advisory lock on the run's id over its own connection, which PostgreSQL
// releases if the writer dies: that is how a resume knows the run is
// still going.
type PG struct {
	url  string
	mu   sync.Mutex
	conn *pgx.Conn
}

const pgSchema = `
CREATE TABLE IF NOT EXISTS runbook_journal (
  run_id text NOT NULL,
  seq bigint NOT NULL,
  at timestamptz NOT NULL,
  kind text NOT NULL,
  data jsonb NOT NULL,
  PRIMARY KEY (run_id, seq)
);
`

// pgTimeout bounds each statement of the store.
const pgTimeout = 30 * time.Second

// OpenPG connects to the store at url (the password from PGPASSWORD or
// ~/.pgpass, never the URL on a command line) and creates its table on
// first use.
func OpenPG(ctx context.Context, url string) (*PG, error) {
	conn, err := connectPG(ctx, url)
	if err != nil {
		return nil, err
	}
	return &PG{url: url, conn: conn}, nil
}

func connectPG(ctx context.Context, url string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, pgTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("run store: %w", err)
	}
	// Two first runs may create the table at once: one does it under a
	// transaction-scoped advisory lock.
	if _, err := conn.Exec(ctx, "BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('runbook schema', 0)); "+pgSchema+" COMMIT;"); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("run store: %w", err)
	}
	return conn, nil
}

func runLockKey(runID string) string { return "runbook run " + runID }

type pgJournal struct {
	mu      sync.Mutex
	conn    *pgx.Conn
	runID   string
	seq     int64
	pending []journal.Record
}

// Create implements Store.
func (p *PG) Create(h Header) (Journal, error) {
	j, err := p.writer(h.RunID)
	if err != nil {
		return nil, err
	}
	if err := j.Append(KindRun, h); err != nil {
		j.Close()
		return nil, err
	}
	return j, nil
}

// writer opens a connection of the run's own and takes the run's lock.
func (p *PG) writer(runID string) (*pgJournal, error) {
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	conn, err := connectPG(ctx, p.url)
	if err != nil {
		return nil, err
	}
	got, err := tryAdvisoryLock(ctx, conn, runLockKey(runID))
	if err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("run store: %w", err)
	}
	if !got {
		conn.Close(context.Background())
		return nil, errBusy
	}
	return &pgJournal{conn: conn, runID: runID}, nil
}

var errBusy = errors.New("busy")

func (j *pgJournal) Write(kind string, data any) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.seq++
	j.pending = append(j.pending, journal.Record{Seq: j.seq, Time: time.Now().UTC(), Kind: kind, Data: raw})
	return nil
}

// Stage is Write: the records of this store wait in the process until
// the next sync in any case.
func (j *pgJournal) Stage(kind string, data any) error { return j.Write(kind, data) }

func (j *pgJournal) Append(kind string, data any) error {
	if err := j.Write(kind, data); err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.flush()
}

// flush inserts the pending records in one statement, which commits them
// together.
func (j *pgJournal) flush() error {
	if len(j.pending) == 0 {
		return nil
	}
	n := len(j.pending)
	seqs, ats, kinds, datas := make([]int64, n), make([]time.Time, n), make([]string, n), make([]string, n)
	for i, r := range j.pending {
		seqs[i], ats[i], kinds[i], datas[i] = r.Seq, r.Time, r.Kind, string(r.Data)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	_, err := j.conn.Exec(ctx, `INSERT INTO runbook_journal (run_id, seq, at, kind, data)
SELECT $1, s, a, k, d::jsonb FROM unnest($2::bigint[], $3::timestamptz[], $4::text[], $5::text[]) AS t(s, a, k, d)`,
		j.runID, seqs, ats, kinds, datas)
	if err != nil {
		return fmt.Errorf("run store: %w", err)
	}
	j.pending = j.pending[:0]
	return nil
}

func (j *pgJournal) Sync() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.flush()
}

func (j *pgJournal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	ferr := j.flush()
	// Unlocked before the connection closes: a backend that exits releases
	// its locks too, but not by the time Close returns.
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	advisoryUnlock(ctx, j.conn, runLockKey(j.runID))
	err := j.conn.Close(ctx)
	if ferr != nil {
		return ferr
	}
	return err
}

// Continue implements Store.
func (p *PG) Continue(runID string) (Journal, []journal.Record, error) {
	recs, _, err := p.Read(runID)
	if err != nil {
		return nil, nil, err
	}
	j, err := p.writer(runID)
	if errors.Is(err, errBusy) {
		b := &BusyError{Header: Header{RunID: runID}}
		if st, err := Fold(recs); err == nil {
			b.Header = st.Header
		}
		return nil, nil, b
	}
	if err != nil {
		return nil, nil, err
	}
	// Read again under the lock: the run may have written since.
	if recs, _, err = p.Read(runID); err != nil {
		j.Close()
		return nil, nil, err
	}
	if len(recs) > 0 {
		j.seq = recs[len(recs)-1].Seq
	}
	return j, recs, nil
}

// Read implements Store.
func (p *PG) Read(runID string) ([]journal.Record, *journal.Problem, error) {
	ctx, done := p.call()
	defer done()
	rows, err := p.conn.Query(ctx, "SELECT seq, at, kind, data::text FROM runbook_journal WHERE run_id = $1 ORDER BY seq", runID)
	if err != nil {
		return nil, nil, fmt.Errorf("run store: %w", err)
	}
	var recs []journal.Record
	for rows.Next() {
		var r journal.Record
		var data string
		if err := rows.Scan(&r.Seq, &r.Time, &r.Kind, &data); err != nil {
			return nil, nil, fmt.Errorf("run store: %w", err)
		}
		r.Data = json.RawMessage(data)
		if want := int64(len(recs)) + 1; r.Seq != want {
			rows.Close()
			return recs, &journal.Problem{Line: int(want), Reason: fmt.Sprintf("record %d is missing", want)}, nil
		}
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("run store: %w", err)
	}
	if len(recs) == 0 {
		return nil, nil, ErrNoRun
	}
	return recs, nil, nil
}

// List implements Store.
func (p *PG) List() ([]string, error) {
	ctx, done := p.call()
	defer done()
	rows, err := p.conn.Query(ctx, "SELECT run_id FROM runbook_journal WHERE seq = 1 ORDER BY run_id")
	if err != nil {
		return nil, fmt.Errorf("run store: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("run store: %w", err)
	}
	return ids, nil
}

// call takes the store's connection for one call, which has pgTimeout to
// finish; the caller defers the function it returns.
func (p *PG) call() (context.Context, func()) {
	p.mu.Lock()
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	return ctx, func() {
		cancel()
		p.mu.Unlock()
	}
}

// Running implements Store.
func (p *PG) Running(runID string) bool {
	ctx, done := p.call()
	defer done()
	free, err := tryAdvisoryLock(ctx, p.conn, runLockKey(runID))
	if err != nil {
		return false
	}
	if free {
		advisoryUnlock(ctx, p.conn, runLockKey(runID))
	}
	return !free
}

// Remove implements Store: under the run's advisory lock, which its
// writers hold.
func (p *PG) Remove(runID string) error {
	ctx, done := p.call()
	defer done()
	free, err := tryAdvisoryLock(ctx, p.conn, runLockKey(runID))
	if err != nil {
		return fmt.Errorf("run store: %w", err)
	}
	if !free {
		return &BusyError{Header: Header{RunID: runID}}
	}
	defer func() {
		advisoryUnlock(ctx, p.conn, runLockKey(runID))
	}()
	tag, err := p.conn.Exec(ctx, "DELETE FROM runbook_journal WHERE run_id = $1", runID)
	if err != nil {
		return fmt.Errorf("run store: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNoRun
	}
	return nil
}

// Close implements Store.
func (p *PG) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn.Close(context.Background())
}
