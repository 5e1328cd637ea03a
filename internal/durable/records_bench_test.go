package durable

import (
	"io"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/steps"
)

// BenchmarkJournalStepRecords measures the journal's own work for one
// ssh-exec step that makes a change: its intent, apply, process and
// outcome records written to a local journal, without the fsyncs (which
// run in the background). ns/op is one step.
func BenchmarkJournalStepRecords(b *testing.B) {
	store := &Local{Dir: b.TempDir()}
	j := mustCreate(b, store, Header{RunID: "bench", Playbook: "bench/records", Started: time.Now()})
	defer j.Close()
	js := NewSink(j, engine.SinkFunc(func(*engine.Event) {}), io.Discard)
	i := 0
	for b.Loop() {
		i++
		now := time.Now()
		js.Emit(&engine.Event{Time: now, Type: engine.EventStepStart, Index: i, ID: "restart-postgresql", Name: "Restart PostgreSQL", Host: "pg1"})
		js.Emit(&engine.Event{Time: now, Type: engine.EventStepApply, Index: i, ID: "restart-postgresql", Name: "Restart PostgreSQL", Host: "pg1", Message: "run: systemctl restart postgresql@15-main"})
		js.Emit(&engine.Event{Time: now, Type: engine.EventStepProcess, Index: i, ID: "restart-postgresql", Name: "Restart PostgreSQL", Host: "pg1", PID: 41234})
		js.Emit(&engine.Event{Time: now, Type: engine.EventStepEnd, Index: i, ID: "restart-postgresql", Name: "Restart PostgreSQL", Host: "pg1",
			Status: engine.StatusChanged, Duration: 1234567 * time.Nanosecond,
			Result: steps.Result{"rc": 0, "stdout": "", "stderr": "", "changed": true}})
	}
}
