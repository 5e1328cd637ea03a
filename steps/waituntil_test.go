package steps_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/testsshd"
	"github.com/runbook-dev/runbook/steps"
)

// waitForFile runs a wait-until whose probe looks for a file over a real
// sshd (interval 1s, the default), creates the file after `after`, and
// returns how long after the file appeared the run returned.
func waitForFile(tb testing.TB, s *testsshd.Server, after time.Duration) time.Duration {
	tb.Helper()
	file := filepath.Join(tb.TempDir(), "ready")
	src := `version: 1
name: wait
steps:
  - id: w
    wait-until:
      probe:
        host: pg1
        ssh-exec: {command: test -f ` + file + `, expect_exit: [0, 1]}
      until: result.exit_code == 0
      timeout: 30s
`
	l := &engine.Loader{Registry: steps.Builtin()}
	pb, ds := l.Load("wait.yaml", []byte(src))
	if pb == nil {
		tb.Fatal(ds)
	}
	inv, _ := engine.ParseInventory("inv.yaml", []byte(s.Inventory("pg1")))
	r := &engine.Runner{Inventory: inv, Connect: dialHost}
	appeared := make(chan time.Time, 1)
	go func() {
		time.Sleep(after)
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			tb.Error(err)
		}
		appeared <- time.Now()
	}()
	if err := r.Run(context.Background(), pb, engine.Inputs{}); err != nil {
		tb.Fatal(err)
	}
	return time.Since(<-appeared)
}

// TestWaitUntilSeesTheConditionSoon: a file that appears 300ms into a
// wait with the default interval of 1s is seen, and the wait returns,
// within 350ms of the wait's start, not at the next whole interval. What
// is asserted is the gap between the file appearing and the run
// returning (at most 50ms: 350ms for a condition true at 300ms), so that
// a late timer of this test's own is not counted against the wait; the
// median of five, each poll an SSH session to a real sshd.
// BenchmarkWaitUntilLatency reports the figure.
func TestWaitUntilSeesTheConditionSoon(t *testing.T) {
	s := testsshd.Start(t)
	var gaps []time.Duration
	for range 5 {
		gaps = append(gaps, waitForFile(t, s, 300*time.Millisecond))
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	t.Logf("returned %v after the file appeared (5 runs)", gaps)
	// A poll every interval would give 700ms; the backoff's pause at
	// 300ms is 30ms, plus one SSH session.
	if gaps[2] > 50*time.Millisecond {
		t.Errorf("the wait returned %v after the condition became true 300ms into it (median of 5), want at most 50ms (350ms in all)", gaps[2])
	}
}

// BenchmarkWaitUntilLatency reports how long after a condition becomes
// true (a file appears 300ms into the wait, probed over a real sshd) the
// wait returns: latency-ms is the median.
func BenchmarkWaitUntilLatency(b *testing.B) {
	s := testsshd.Start(b)
	var gaps []time.Duration
	for b.Loop() {
		gaps = append(gaps, waitForFile(b, s, 300*time.Millisecond))
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	b.ReportMetric(float64(gaps[len(gaps)/2])/1e6, "latency-ms")
}

func TestPollDelayBacksOffToTheInterval(t *testing.T) {
	for _, c := range []struct {
		waited, interval, want time.Duration
	}{
		{0, time.Second, steps.MinPollDelay},
		{50 * time.Millisecond, time.Second, steps.MinPollDelay},
		{300 * time.Millisecond, time.Second, 30 * time.Millisecond},
		{5 * time.Second, time.Second, 500 * time.Millisecond},
		{time.Minute, time.Second, time.Second},
		// An interval under the minimum is kept: the author asked for it.
		{0, 5 * time.Millisecond, 5 * time.Millisecond},
		{time.Hour, 100 * time.Millisecond, 100 * time.Millisecond},
	} {
		if got := steps.PollDelay(c.waited, c.interval); got != c.want {
			t.Errorf("pollDelay(%v, %v) = %v, want %v", c.waited, c.interval, got, c.want)
		}
	}
}
