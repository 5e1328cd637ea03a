package lab

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Committer is a client that commits one row at a time in a loop, as the
// orchestrator writes, on whichever of its hosts accepts the writes: it
// tries the next host after any failure. Every commit that returned is
// kept with its time and host, so that a switchover's write
// unavailability is read from the client's side (the switchover bench
// and the end-to-end switchover test).
type Committer struct {
	DSN   string   // without the host
	Hosts []string // addresses, tried in turn after a failure
	// Table has an int primary key id, which the client fills.
	Table string

	mu      sync.Mutex
	started time.Time
	commits []Commit
	lastErr error
	cancel  context.CancelFunc
	done    chan struct{}
}

// Commit is one INSERT whose COMMIT returned.
type Commit struct {
	At   time.Time
	Host int // index in Hosts
	ID   int
}

// Start commits ids from first upwards until Stop; the commits of an
// earlier Start are forgotten.
func (c *Committer) Start(first int) {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	c.mu.Lock()
	c.started, c.commits, c.lastErr = time.Now(), nil, nil
	c.mu.Unlock()
	go func() {
		defer close(c.done)
		var conn *pgx.Conn
		defer func() {
			if conn != nil {
				conn.Close(context.Background())
			}
		}()
		target, id := 0, first
		for ctx.Err() == nil {
			if conn == nil {
				cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
				var err error
				conn, err = pgx.Connect(cctx, fmt.Sprintf("host=%s %s", c.Hosts[target], c.DSN))
				ccancel()
				if err != nil {
					c.fail(err)
					conn = nil
					target = (target + 1) % len(c.Hosts)
					// A client's back-off: it bounds how soon after the
					// new primary accepts writes the client sees it.
					sleep(ctx, 10*time.Millisecond)
					continue
				}
			}
			ectx, ecancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := conn.Exec(ectx, "INSERT INTO "+pgx.Identifier{c.Table}.Sanitize()+" (id) VALUES ($1)", id)
			ecancel()
			if err != nil {
				c.fail(err)
				conn.Close(context.Background())
				conn = nil
				target = (target + 1) % len(c.Hosts)
				id++ // an id whose commit did not return is not used again
				continue
			}
			c.mu.Lock()
			c.commits = append(c.commits, Commit{time.Now(), target, id})
			c.mu.Unlock()
			id++
		}
	}()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (c *Committer) fail(err error) {
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
}

// Stop ends the loop; the commits stay.
func (c *Committer) Stop() {
	if c.cancel == nil {
		return
	}
	c.cancel()
	<-c.done
	c.cancel = nil
}

// Count is the number of commits that returned.
func (c *Committer) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.commits)
}

// WaitOn waits until the client has committed n rows on host after t;
// it returns the time of the first of them.
func (c *Committer) WaitOn(host int, t time.Time, n int, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for {
		c.mu.Lock()
		var first time.Time
		got := 0
		for i := len(c.commits) - 1; i >= 0 && c.commits[i].At.After(t); i-- {
			if c.commits[i].Host == host {
				first = c.commits[i].At
				got++
			}
		}
		lastErr := c.lastErr
		c.mu.Unlock()
		if got >= n {
			return first, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("the client committed %d rows on %s in %s after the switchover's start, want %d (its last error: %v)", got, c.Hosts[host], limit, n, lastErr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// LongestGap is the longest time without a commit between the last
// commit before from (or the Start, if none was before) and the first
// commit after to.
func (c *Committer) LongestGap(from, to time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var longest time.Duration
	prev := c.started
	for _, k := range c.commits {
		if k.At.Before(from) {
			prev = k.At
			continue
		}
		if d := k.At.Sub(prev); d > longest {
			longest = d
		}
		prev = k.At
		if k.At.After(to) {
			break
		}
	}
	return longest
}

// IDs are the ids of every commit that returned.
func (c *Committer) IDs() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]int, len(c.commits))
	for i, k := range c.commits {
		ids[i] = k.ID
	}
	return ids
}

// Missing counts the returned commits whose row is not on host.
func (c *Committer) Missing(host string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s %s", host, c.DSN))
	if err != nil {
		return 0, fmt.Errorf("connecting to %s to count the client's rows: %w", host, err)
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(ctx, "SELECT count(*) FROM unnest($1::int[]) AS c(id) WHERE NOT EXISTS (SELECT FROM "+pgx.Identifier{c.Table}.Sanitize()+" r WHERE r.id = c.id)", c.IDs()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting the client's rows on %s: %w", host, err)
	}
	return n, nil
}
