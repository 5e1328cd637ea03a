package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// committer is a client that commits one row at a time in a loop, as the
// orchestrator writes, on whichever of its hosts accepts the writes: it
// tries the next host after any failure. Every commit that returned is
// kept with its time and host, so that a switchover's write
// unavailability is read from the client's side.
type committer struct {
	dsn   string   // without the host
	hosts []string // addresses, tried in turn after a failure

	mu      sync.Mutex
	commits []commit
	lastErr error
	cancel  context.CancelFunc
	done    chan struct{}
}

// commit is one INSERT whose COMMIT returned.
type commit struct {
	at   time.Time
	host int // index in hosts
	id   int
}

// start commits ids from 1 upwards until stop.
func (c *committer) start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	go func() {
		defer close(c.done)
		var conn *pgx.Conn
		defer func() {
			if conn != nil {
				conn.Close(context.Background())
			}
		}()
		target, id := 0, 1
		for ctx.Err() == nil {
			if conn == nil {
				cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
				var err error
				conn, err = pgx.Connect(cctx, fmt.Sprintf("host=%s %s", c.hosts[target], c.dsn))
				ccancel()
				if err != nil {
					c.fail(err)
					conn = nil
					target = (target + 1) % len(c.hosts)
					// A client's back-off: it bounds how soon after the
					// new primary accepts writes the client sees it.
					sleep(ctx, 10*time.Millisecond)
					continue
				}
			}
			ectx, ecancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := conn.Exec(ectx, "INSERT INTO bench_rows (id) VALUES ($1)", id)
			ecancel()
			if err != nil {
				c.fail(err)
				conn.Close(context.Background())
				conn = nil
				target = (target + 1) % len(c.hosts)
				id++ // an id whose commit did not return is not used again
				continue
			}
			c.mu.Lock()
			c.commits = append(c.commits, commit{time.Now(), target, id})
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

func (c *committer) fail(err error) {
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
}

// stop ends the loop.
func (c *committer) stop() {
	if c.cancel == nil {
		return
	}
	c.cancel()
	<-c.done
	c.cancel = nil
}

// waitOn waits until the client has committed n rows on host after t;
// it returns the time of the first of them.
func (c *committer) waitOn(host int, t time.Time, n int, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for {
		c.mu.Lock()
		var first time.Time
		got := 0
		for i := len(c.commits) - 1; i >= 0 && c.commits[i].at.After(t); i-- {
			if c.commits[i].host == host {
				first = c.commits[i].at
				got++
			}
		}
		lastErr := c.lastErr
		c.mu.Unlock()
		if got >= n {
			return first, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("the client committed %d rows on %s in %s after the switchover's start, want %d (its last error: %v)", got, c.hosts[host], limit, n, lastErr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// longestGap is the longest time without a commit between the last
// commit before from and the first commit after to.
func (c *committer) longestGap(from, to time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var longest time.Duration
	var prev time.Time
	for _, k := range c.commits {
		if k.at.Before(from) {
			prev = k.at
			continue
		}
		if !prev.IsZero() {
			if d := k.at.Sub(prev); d > longest {
				longest = d
			}
		}
		prev = k.at
		if k.at.After(to) {
			break
		}
	}
	return longest
}

// ids are the ids of every commit that returned.
func (c *committer) ids() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]int, len(c.commits))
	for i, k := range c.commits {
		ids[i] = k.id
	}
	return ids
}

// missing counts the returned commits whose row is not on host.
func (c *committer) missing(host string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s %s", host, c.dsn))
	if err != nil {
		return 0, fmt.Errorf("connecting to %s to count the client's rows: %w", host, err)
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(ctx, "SELECT count(*) FROM unnest($1::int[]) AS c(id) WHERE NOT EXISTS (SELECT FROM bench_rows r WHERE r.id = c.id)", c.ids()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting the client's rows on %s: %w", host, err)
	}
	return n, nil
}
