package durable

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/steps"
)

// BenchmarkJournal100Local measures what the journal adds to a run of 100
// steps on the local transport, each a real /bin/sh: the same playbook run
// without a journal and with one in a state directory on disk.
//
// Runs on this kind of machine spread by ±10% from one second to the next,
// more than the journal costs, so the two are measured in pairs: each
// iteration runs the playbook once each way, in alternating order, and
// the benchmark reports the medians of each way and the median of the
// pairs' differences (journal-%). ns/op is one pair.
//
// "changing" steps each make a change (a command with nothing to recheck):
// per step an intent, an apply, a process and an outcome record in three
// writes, and four marks in the run, synced in the background. "unchanged"
// steps find their change made (an unless that holds), as on a second run
// or a resume: their records are staged and written a few at a time, and
// the run needs no mark after its first.
func BenchmarkJournal100Local(b *testing.B) {
	for _, kind := range []struct{ name, body string }{
		{"changing", `ssh-exec: {command: "true"}`},
		{"unchanged", `ssh-exec: {command: "true", unless: "true"}`},
	} {
		var src strings.Builder
		src.WriteString("version: 1\nname: bench/hundred\nsteps:\n")
		for i := range 100 {
			fmt.Fprintf(&src, "  - id: s%d\n    %s\n", i, kind.body)
		}
		pb, ds := (&engine.Loader{Registry: steps.Builtin()}).Load("hundred.yaml", []byte(src.String()))
		if pb == nil {
			b.Fatal(ds)
		}
		discard := engine.SinkFunc(func(*engine.Event) {})
		run := func(b *testing.B, sink engine.Sink) time.Duration {
			start := time.Now()
			r := &engine.Runner{Sink: sink}
			if err := r.Run(context.Background(), pb, engine.Inputs{}); err != nil {
				b.Fatal(err)
			}
			return time.Since(start)
		}
		b.Run(kind.name, func(b *testing.B) {
			store := &Local{Dir: b.TempDir()}
			n := 0
			journaled := func(b *testing.B) time.Duration {
				n++
				// The journal's whole cost: created, written, synced, closed.
				start := time.Now()
				j := mustCreate(b, store, Header{RunID: fmt.Sprintf("bench-%d", n), Playbook: pb.Name, Hash: pb.Hash, Started: time.Now()})
				js := NewSink(j, discard, io.Discard)
				run(b, js)
				js.Wait()
				if err := j.Close(); err != nil {
					b.Fatal(err)
				}
				return time.Since(start)
			}
			var without, with, diff []float64
			for b.Loop() {
				var w, j time.Duration
				if len(without)%2 == 0 {
					w, j = run(b, discard), journaled(b)
				} else {
					j, w = journaled(b), run(b, discard)
				}
				without = append(without, float64(w.Microseconds())/1000)
				with = append(with, float64(j.Microseconds())/1000)
				diff = append(diff, 100*(float64(j)/float64(w)-1))
			}
			b.ReportMetric(median(without), "ms-without")
			b.ReportMetric(median(with), "ms-journaled")
			b.ReportMetric(median(diff), "journal-%")
		})
	}
}

// median returns the middle of xs (which it sorts).
func median(xs []float64) float64 {
	slices.Sort(xs)
	if n := len(xs); n%2 == 1 {
		return xs[n/2]
	} else {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
}
