package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/runs"
)

// BenchmarkJournal100Local measures what the journal adds to a run of 100
// steps on the local transport, each a real /bin/sh: with the journal in a
// state directory on disk, and without one. ns/op is one whole run.
//
// "changing" steps each make a change (a command with nothing to recheck):
// the journal syncs the record of each change to disk before making it,
// one device flush per step. "unchanged" steps find their change made (an
// unless that holds), as on a second run or a resume: no flush until the
// run's end.
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
		pb, ds := newLoader().Load("hundred.yaml", []byte(src.String()))
		if pb == nil {
			b.Fatal(ds)
		}
		discard := engine.SinkFunc(func(*engine.Event) {})
		run := func(b *testing.B, sink engine.Sink) {
			r := &engine.Runner{Sink: sink}
			if err := r.Run(context.Background(), pb, engine.Inputs{}); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(kind.name+"/without", func(b *testing.B) {
			for b.Loop() {
				run(b, discard)
			}
		})
		b.Run(kind.name+"/journaled", func(b *testing.B) {
			store := &runs.Local{Dir: b.TempDir()}
			n := 0
			for b.Loop() {
				n++
				j, err := store.Create(runs.Header{RunID: fmt.Sprintf("bench-%d", n), Playbook: pb.Name, Hash: pb.Hash, Started: time.Now()})
				if err != nil {
					b.Fatal(err)
				}
				js := newJournalSink(j, discard)
				run(b, js)
				js.wait()
				j.Close()
			}
		})
	}
}
