package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/journal"
	"github.com/runbook-dev/runbook/internal/redact"
	"github.com/runbook-dev/runbook/internal/runs"
	"github.com/runbook-dev/runbook/steps"
)

// stateFlags are the options that say where runs keep their journals and
// locks.
type stateFlags struct {
	dir, url string
	defDir   string
}

func (e *Env) addStateFlags(fs *flag.FlagSet) *stateFlags {
	s := &stateFlags{defDir: defaultStateDir(e)}
	fs.StringVar(&s.dir, "state-dir", s.defDir, "where runs keep their journals and locks, a directory of this user's alone (default $XDG_STATE_HOME/runbook, or ~/.local/state/runbook)")
	fs.StringVar(&s.url, "state", "", "keep journals and locks in a shared PostgreSQL (postgres://user@host/db; the password from PGPASSWORD or ~/.pgpass, never the command line)")
	return s
}

// open returns the run store the flags name.
func (s *stateFlags) open(ctx context.Context) (runs.Store, error) {
	if s.url != "" {
		return runs.OpenPG(ctx, s.url)
	}
	return &runs.Local{Dir: s.dir}, nil
}

// args repeats the flags for a command line shown to the operator, with
// any password in the URL left out.
func (s *stateFlags) args() string {
	out := ""
	if s.dir != s.defDir {
		out += " --state-dir " + shellWord(s.dir)
	}
	if s.url != "" {
		u := s.url
		if p, err := url.Parse(u); err == nil && p.User != nil {
			if _, has := p.User.Password(); has {
				p.User = url.User(p.User.Username())
				u = p.String()
			}
		}
		out += " --state " + shellWord(u)
	}
	return out
}

// shellWord quotes s for a command line the operator may paste.
func shellWord(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '/' || r == '.' || r == '-' || r == '_' || r == ':' || r == '@' || r == '=') {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}

// journalSink writes the run's events to its journal, then passes them on.
// Events reach it redacted: secrets never land in the journal.
type journalSink struct {
	mu     sync.Mutex
	j      runs.Journal
	next   engine.Sink
	failed bool

	// Marks (engine.Marker): the highest durable one, a sync's failure,
	// and the syncs still running.
	marked   int
	wanted   int
	syncing  bool
	markErr  error
	markDone *sync.Cond
	syncs    sync.WaitGroup
}

func newJournalSink(j runs.Journal, next engine.Sink) *journalSink {
	s := &journalSink{j: j, next: next}
	s.markDone = sync.NewCond(&s.mu)
	return s
}

// Mark implements engine.Marker. One sync runs at a time in the
// background; marks written while it runs are covered by the next one.
func (j *journalSink) Mark(index int) {
	err := j.j.Write(runs.KindMark, struct {
		Index int `json:"index"`
	}{index})
	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil {
		if j.markErr == nil {
			j.markErr = err
		}
		j.markDone.Broadcast()
		return
	}
	if index > j.wanted {
		j.wanted = index
	}
	if !j.syncing {
		j.syncing = true
		j.syncs.Add(1)
		go j.syncMarks()
	}
}

// syncMarks syncs the journal until every mark written is durable.
func (j *journalSink) syncMarks() {
	defer j.syncs.Done()
	j.mu.Lock()
	for j.wanted > j.marked && j.markErr == nil {
		target := j.wanted
		j.mu.Unlock()
		err := j.j.Sync()
		j.mu.Lock()
		if err != nil {
			j.markErr = err
		} else {
			j.marked = target
		}
		j.markDone.Broadcast()
	}
	j.syncing = false
	j.mu.Unlock()
}

// AwaitMark implements engine.Marker.
func (j *journalSink) AwaitMark(index int) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.marked < index && j.markErr == nil {
		j.markDone.Wait()
	}
	if j.marked >= index {
		return nil
	}
	return j.markErr
}

// wait returns once the syncs of marks have ended: before the journal
// closes.
func (j *journalSink) wait() { j.syncs.Wait() }

func (j *journalSink) fail(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.failed {
		j.failed = true
		fmt.Fprintf(os.Stderr, "runbook: journal: %v; the run goes on without it\n", err)
	}
}

func (j *journalSink) Emit(ev *engine.Event) {
	if kind, how := journalRecord(ev); kind != "" {
		// The record has its own time: the event's is left out while it
		// is written (each event is emitted once, by one goroutine).
		at := ev.Time
		ev.Time = time.Time{}
		var err error
		switch how {
		case recordStage:
			err = j.j.Stage(kind, ev)
		case recordWrite:
			err = j.j.Write(kind, ev)
		case recordSync:
			err = j.j.Append(kind, ev)
		}
		ev.Time = at
		if err != nil {
			j.fail(err)
		}
	}
	j.next.Emit(ev)
}

// How a record reaches the journal.
const (
	// recordStage keeps it in the process until the next record written:
	// a process killed loses it, with the records after it, and nothing
	// was changed since (a change, and the command making it, are written
	// before they start), so the resume finds the host as the record left it.
	recordStage = iota + 1
	// recordWrite hands it to the kernel at once: a process killed loses
	// none of it; a power cut loses what came after the last sync, which
	// the marks (engine.Marker) make a resume take as in doubt.
	recordWrite
	// recordSync has it, and everything before it, on disk before the run
	// goes on: the run's end.
	recordSync
)

// journalRecord says which record an event makes, if any, and how it is
// written.
func journalRecord(ev *engine.Event) (kind string, how int) {
	switch ev.Type {
	case engine.EventStepStart:
		// A step that changes anything writes its apply record first.
		return runs.KindIntent, recordStage
	case engine.EventStepApply:
		return runs.KindApply, recordWrite
	case engine.EventStepProcess:
		return runs.KindProcess, recordWrite
	case engine.EventStepEnd:
		if ev.Status == engine.StatusOK || ev.Status == engine.StatusSkipped {
			// Found nothing to change: lost, the step runs again and finds
			// the same.
			return runs.KindOutcome, recordStage
		}
		// A change made: written, so that a resume knows it without
		// asking.
		return runs.KindOutcome, recordWrite
	case engine.EventStepDone:
		return runs.KindDone, recordStage
	case engine.EventGuard:
		return runs.KindGuard, recordStage
	case engine.EventConfirm:
		// The operator's word: kept even if the process dies next.
		return runs.KindConfirm, recordWrite
	case engine.EventRunEnd:
		if ev.Durable {
			return runs.KindEnd, recordSync
		}
		return runs.KindEnd, recordWrite
	}
	return "", 0
}

func (j *journalSink) Flush() {
	if f, ok := j.next.(interface{ Flush() }); ok {
		f.Flush()
	}
}

func runsCmd(e *Env, args []string) int {
	fs := newFlags(e, "runs", "[--state-dir DIR | --state URL]")
	sf := e.addStateFlags(fs)
	if _, err := parseInterleaved(fs, args); err != nil {
		return ExitUsage
	}
	store, err := sf.open(context.Background())
	if err != nil {
		fmt.Fprintf(e.Stderr, "runbook: %v\n", err)
		return ExitFailed
	}
	defer store.Close()
	ids, err := store.List()
	if err != nil {
		fmt.Fprintf(e.Stderr, "runbook: %v\n", err)
		return ExitFailed
	}
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tPLAYBOOK\tSTARTED\tSTATUS\tOPERATOR")
	for _, id := range ids {
		st, prob, err := readState(store, id)
		if errors.Is(err, runs.ErrEmpty) && !store.Running(id) {
			fmt.Fprintf(tw, "%s\t?\t?\tempty: cut off before any change\t?\n", id)
			continue
		}
		if err != nil {
			fmt.Fprintf(tw, "%s\t?\t?\tunreadable: %v\t?\n", id, err)
			continue
		}
		status := st.Status
		if status == runs.StatusCrashed && store.Running(id) {
			status = "running"
		}
		if st.Attempts > 1 {
			status += fmt.Sprintf(" (%d attempts)", st.Attempts)
		}
		if prob != nil {
			status += " (journal damaged)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s@%s\n", id, st.Header.Playbook, st.Header.Started.Local().Format(time.RFC3339), status, st.Header.Operator, st.Header.Host)
	}
	tw.Flush()
	return ExitOK
}

func readState(store runs.Store, id string) (*runs.State, *journal.Problem, error) {
	recs, prob, err := store.Read(id)
	if err != nil {
		return nil, nil, err
	}
	st, err := runs.Fold(recs)
	return st, prob, err
}

func showRunCmd(e *Env, args []string) int {
	fs := newFlags(e, "show-run", "ID [--state-dir DIR | --state URL]")
	sf := e.addStateFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return ExitUsage
	}
	if len(pos) != 1 {
		return e.usageError("show-run needs a run id (runbook runs lists them)")
	}
	store, err := sf.open(context.Background())
	if err != nil {
		fmt.Fprintf(e.Stderr, "runbook: %v\n", err)
		return ExitFailed
	}
	defer store.Close()
	recs, prob, err := store.Read(pos[0])
	if errors.Is(err, runs.ErrNoRun) {
		fmt.Fprintf(e.Stderr, "runbook: no run %s in %s (runbook runs lists them)\n", pos[0], sf.where())
		return ExitFailed
	}
	if err != nil {
		fmt.Fprintf(e.Stderr, "runbook: %v\n", err)
		return ExitFailed
	}
	ts := func(t time.Time) string { return t.Local().Format("15:04:05.000") }
	for _, r := range recs {
		switch r.Kind {
		case runs.KindRun:
			var h runs.Header
			_ = json.Unmarshal(r.Data, &h)
			fmt.Fprintf(e.Stdout, "run %s: %s (%s, sha256 %.12s) by %s@%s, pid %d, started %s\n", h.RunID, h.Playbook, h.File, h.Hash, h.Operator, h.Host, h.PID, h.Started.Local().Format(time.RFC3339))
			fmt.Fprintf(e.Stdout, "  params: %v; secrets (names only): %v\n", h.Params, h.Secrets)
			if h.Yes {
				fmt.Fprintln(e.Stdout, "  --yes: confirmation gates answered without asking")
			}
			continue
		case runs.KindResume:
			var a runs.Attempt
			_ = json.Unmarshal(r.Data, &a)
			fmt.Fprintf(e.Stdout, "%s  resumed by %s@%s, pid %d %v\n", ts(r.Time), a.Operator, a.Host, a.PID, a.Flags)
			continue
		}
		var ev engine.Event
		_ = json.Unmarshal(r.Data, &ev)
		switch r.Kind {
		case runs.KindIntent:
			fmt.Fprintf(e.Stdout, "%s  [%d] start   %s [%s]\n", ts(r.Time), ev.Index, ev.Name, ev.Host)
		case runs.KindApply:
			fmt.Fprintf(e.Stdout, "%s  [%d] apply   %s [%s] %s\n", ts(r.Time), ev.Index, ev.Name, ev.Host, ev.Message)
		case runs.KindProcess:
			fmt.Fprintf(e.Stdout, "%s  [%d] process group %d on %s\n", ts(r.Time), ev.Index, ev.PID, ev.Host)
		case runs.KindOutcome:
			fmt.Fprintf(e.Stdout, "%s  [%d] %-7s %s [%s] %s\n", ts(r.Time), ev.Index, ev.Status, ev.Name, ev.Host, ev.Message)
			if ev.Print != "" {
				for _, l := range strings.Split(strings.TrimRight(ev.Print, "\n"), "\n") {
					fmt.Fprintf(e.Stdout, "                %s\n", l)
				}
			}
			if len(ev.Result) > 0 {
				// Journaled redacted: the run masked its secrets first.
				fmt.Fprintf(e.Stdout, "                result: %s\n", steps.Show(redact.New(nil), ev.Result))
			}
		case runs.KindGuard:
			fmt.Fprintf(e.Stdout, "%s  guard %-7s %s [%s] %s\n", ts(r.Time), ev.Status, ev.Name, ev.Host, ev.Message)
		case runs.KindConfirm:
			fmt.Fprintf(e.Stdout, "%s  %s\n", ts(r.Time), confirmLine(&ev))
			for _, l := range strings.Split(ev.Message, "\n") {
				fmt.Fprintf(e.Stdout, "                %s\n", l)
			}
		case runs.KindEnd:
			fmt.Fprintf(e.Stdout, "%s  end: %s %s\n", ts(r.Time), ev.Status, ev.Message)
		}
	}
	if prob != nil {
		fmt.Fprintf(e.Stdout, "journal: %v\n", prob)
	}
	return ExitOK
}

// confirmLine says how a confirmation gate was answered, and by whom.
func confirmLine(ev *engine.Event) string {
	where := "before the first step"
	if ev.Index > 0 {
		where = fmt.Sprintf("[%d] %s [%s]", ev.Index, ev.Name, ev.Host)
	}
	how := fmt.Sprintf("typed %q", ev.Answer)
	switch {
	case ev.Yes:
		how = "--yes"
	case ev.Answer == "":
		how = "no answer"
	}
	verdict := "confirmed"
	if ev.Status != engine.StatusOK {
		verdict = "refused"
		how += fmt.Sprintf(" where %q was asked for", ev.Word)
	}
	return fmt.Sprintf("%s %s: %s, by %s", verdict, where, how, ev.Operator)
}

func (s *stateFlags) where() string {
	if s.url != "" {
		return "the shared store"
	}
	return s.dir
}
