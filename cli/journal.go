package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"encoding/json"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/journal"
)

// runHeader is the first record of a run's journal. Secrets appear by name
// only.
type runHeader struct {
	RunID     string         `json:"run_id"`
	Playbook  string         `json:"playbook"`
	File      string         `json:"file"`
	Hash      string         `json:"hash"`
	Params    map[string]any `json:"params"`
	Secrets   []string       `json:"secrets"`
	Inventory string         `json:"inventory,omitempty"`
	Operator  string         `json:"operator"`
	Host      string         `json:"host"`
	PID       int            `json:"pid"`
	Started   time.Time      `json:"started"`
}

func journalPath(stateDir, runID string) string {
	return filepath.Join(stateDir, "runs", runID+".journal")
}

// journalSink writes the run's events to its journal, then passes them on.
// Events reach it redacted: secrets never land in the journal.
type journalSink struct {
	mu     sync.Mutex
	w      *journal.Writer
	next   engine.Sink
	failed bool
}

func (j *journalSink) Emit(ev *engine.Event) {
	kind := ""
	switch ev.Type {
	case engine.EventStepStart:
		kind = "intent"
	case engine.EventStepEnd:
		kind = "outcome"
	case engine.EventGuard:
		kind = "guard"
	case engine.EventRunEnd:
		kind = "end"
	}
	if kind != "" {
		// An outcome rides on the next record's fsync: it must be on disk
		// before the next step changes anything, and the next intent (or the
		// end) is written before that. Lost in a crash, it leaves the step in
		// doubt, and a step in doubt is probed again, never assumed done.
		// Appends of parallel hosts run concurrently and share fsyncs.
		write := j.w.Append
		if kind == "outcome" {
			write = j.w.Write
		}
		if _, err := write(kind, ev); err != nil {
			j.mu.Lock()
			if !j.failed {
				j.failed = true
				fmt.Fprintf(os.Stderr, "runbook: journal: %v; the run goes on without it\n", err)
			}
			j.mu.Unlock()
		}
	}
	j.next.Emit(ev)
}

func (j *journalSink) Flush() {
	if f, ok := j.next.(interface{ Flush() }); ok {
		f.Flush()
	}
}

// startJournal creates the run's journal and writes its header.
func startJournal(stateDir string, h runHeader, next engine.Sink) (*journalSink, error) {
	w, err := journal.Create(journalPath(stateDir, h.RunID))
	if err != nil {
		return nil, err
	}
	if _, err := w.Append("run", h); err != nil {
		w.Close()
		return nil, err
	}
	return &journalSink{w: w, next: next}, nil
}

type runSummary struct {
	header  runHeader
	status  string
	problem string
}

func readRun(path string) (runSummary, error) {
	recs, prob, err := journal.Read(path)
	if err != nil {
		return runSummary{}, err
	}
	var s runSummary
	if len(recs) == 0 || recs[0].Kind != "run" {
		return s, fmt.Errorf("%s: no run header", path)
	}
	if err := json.Unmarshal(recs[0].Data, &s.header); err != nil {
		return s, err
	}
	s.status = "interrupted"
	for _, r := range recs[1:] {
		if r.Kind == "end" {
			var ev engine.Event
			_ = json.Unmarshal(r.Data, &ev)
			s.status = string(ev.Status)
		}
	}
	if prob != nil {
		s.problem = prob.Error()
	}
	return s, nil
}

func runsCmd(e *Env, args []string) int {
	fs := newFlags(e, "runs", "[--state-dir DIR]")
	stateDir := fs.String("state-dir", defaultStateDir(e), "the state directory")
	if _, err := parseInterleaved(fs, args); err != nil {
		return ExitUsage
	}
	files, _ := filepath.Glob(filepath.Join(*stateDir, "runs", "*.journal"))
	sort.Strings(files)
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tPLAYBOOK\tSTARTED\tSTATUS\tOPERATOR")
	for _, f := range files {
		s, err := readRun(f)
		if err != nil {
			fmt.Fprintf(tw, "%s\t?\t?\tunreadable: %v\t?\n", strings.TrimSuffix(filepath.Base(f), ".journal"), err)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s@%s\n", s.header.RunID, s.header.Playbook, s.header.Started.Local().Format(time.RFC3339), s.status, s.header.Operator, s.header.Host)
	}
	tw.Flush()
	return ExitOK
}

func showRunCmd(e *Env, args []string) int {
	fs := newFlags(e, "show-run", "ID [--state-dir DIR]")
	stateDir := fs.String("state-dir", defaultStateDir(e), "the state directory")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return ExitUsage
	}
	if len(pos) != 1 {
		return e.usageError("show-run needs a run id (runbook runs lists them)")
	}
	path := journalPath(*stateDir, pos[0])
	recs, prob, err := journal.Read(path)
	if err != nil {
		fmt.Fprintf(e.Stderr, "runbook: %v\n", err)
		return ExitFailed
	}
	for _, r := range recs {
		if r.Kind == "run" {
			var h runHeader
			_ = json.Unmarshal(r.Data, &h)
			fmt.Fprintf(e.Stdout, "run %s: %s (%s, sha256 %s) by %s@%s, pid %d, started %s\n", h.RunID, h.Playbook, h.File, h.Hash[:12], h.Operator, h.Host, h.PID, h.Started.Local().Format(time.RFC3339))
			fmt.Fprintf(e.Stdout, "  params: %v; secrets (names only): %v\n", h.Params, h.Secrets)
			continue
		}
		var ev engine.Event
		_ = json.Unmarshal(r.Data, &ev)
		switch r.Kind {
		case "intent":
			fmt.Fprintf(e.Stdout, "%s  [%d] start   %s [%s]\n", r.Time.Local().Format("15:04:05.000"), ev.Index, ev.Name, ev.Host)
		case "outcome":
			fmt.Fprintf(e.Stdout, "%s  [%d] %-7s %s [%s] %s\n", r.Time.Local().Format("15:04:05.000"), ev.Index, ev.Status, ev.Name, ev.Host, ev.Message)
		case "guard":
			fmt.Fprintf(e.Stdout, "%s  guard %-7s %s [%s] %s\n", r.Time.Local().Format("15:04:05.000"), ev.Status, ev.Name, ev.Host, ev.Message)
		case "end":
			fmt.Fprintf(e.Stdout, "%s  end: %s %s\n", r.Time.Local().Format("15:04:05.000"), ev.Status, ev.Message)
		}
	}
	if prob != nil {
		fmt.Fprintf(e.Stdout, "journal: %v\n", prob)
	}
	return ExitOK
}
