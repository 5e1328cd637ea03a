package lab

import (
	"fmt"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/internal/testpg"
)

// TestCommitter runs the client against a real PostgreSQL listening on
// 127.0.0.1 only: its first host, 127.0.0.2, refuses, so it moves on and
// commits on the second. Every id it kept is in the table, in order; a
// second Start forgets the first one's commits and counts from its own
// first id.
func TestCommitter(t *testing.T) {
	pg := testpg.Start(t)
	pg.Psql(t, "CREATE TABLE rows (id int PRIMARY KEY)")
	c := &Committer{
		DSN:   fmt.Sprintf("port=%d dbname=postgres user=postgres password=%s sslmode=disable connect_timeout=2", pg.Port, testpg.Password),
		Hosts: []string{"127.0.0.2", "127.0.0.1"},
		Table: "rows",
	}
	start := time.Now()
	c.Start(1)
	first, err := c.WaitOn(1, start, 20, 30*time.Second)
	c.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if first.Before(start) {
		t.Errorf("the first commit on 127.0.0.1 at %v, before the start %v", first, start)
	}
	ids := c.IDs()
	if len(ids) < 20 || c.Count() != len(ids) {
		t.Fatalf("ids %v, count %d: want at least 20, one per commit", ids, c.Count())
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("ids not increasing: %v", ids)
		}
	}
	if missing, err := c.Missing("127.0.0.1"); err != nil || missing != 0 {
		t.Fatalf("missing = %d, %v: want every commit that returned in the table", missing, err)
	}
	if gap := c.LongestGap(time.Time{}, time.Now()); gap <= 0 || gap > time.Since(start) {
		t.Errorf("longest gap %s, want within the run's %s", gap, time.Since(start))
	}

	c.Start(1000)
	if _, err := c.WaitOn(1, time.Now(), 1, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	c.Stop()
	if ids := c.IDs(); ids[0] < 1000 {
		t.Errorf("ids after the second Start: %v, want from 1000 on", ids)
	}
}
