package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/durable"
	"github.com/runbook-dev/runbook/internal/redact"
	"github.com/runbook-dev/runbook/steps"
)

// stateFlags are the options that say where runs keep their journals and
// locks.
type stateFlags struct {
	dir, url string
	defDir   string
}

func (e *Env) addStateFlags(fs *pflag.FlagSet) *stateFlags {
	s := &stateFlags{defDir: defaultStateDir(e)}
	fs.StringVar(&s.dir, "state-dir", s.defDir, "where runs keep their journals and locks, a directory of this user's alone (default $XDG_STATE_HOME/runbook, or ~/.local/state/runbook)")
	// The default depends on the user: the text says it, for man pages.
	fs.Lookup("state-dir").DefValue = ""
	_ = cobra.MarkFlagDirname(fs, "state-dir")
	fs.StringVar(&s.url, "state", "", "keep journals and locks in a shared PostgreSQL (postgres://user@host/db; the password from PGPASSWORD or ~/.pgpass, never the command line)")
	return s
}

// open returns the run store the flags name.
func (s *stateFlags) open(ctx context.Context) (durable.Store, error) {
	if s.url != "" {
		return durable.OpenPG(ctx, s.url)
	}
	return &durable.Local{Dir: s.dir}, nil
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

func runsCmd(e *Env, c *cobra.Command) func([]string) int {
	sf := e.addStateFlags(c.Flags())
	prune := &cobra.Command{Use: "prune --older-than AGE --keep N [--force] [--state-dir DIR | --state URL]",
		Short: "remove the journals of old runs: never one that can still be resumed, unless --force", ValidArgsFunction: cobra.NoFileCompletions}
	prune.RunE = runE(e.pruneCmd(prune))
	c.AddCommand(prune)
	return func(pos []string) int { return e.listRuns(sf, pos) }
}

// pruneOptions are the flags of runs prune.
type pruneOptions struct {
	state     *stateFlags
	olderThan string
	keep      int
	force     bool
}

func (e *Env) pruneCmd(c *cobra.Command) func([]string) int {
	o := &pruneOptions{state: e.addStateFlags(c.Flags())}
	fs := c.Flags()
	fs.StringVar(&o.olderThan, "older-than", "", "remove runs started longer ago than this: days (30d) or a duration (36h)")
	fs.IntVar(&o.keep, "keep", 0, "keep the N newest runs whatever their age")
	fs.BoolVar(&o.force, "force", false, "remove runs that could still be resumed (failed, crashed, interrupted) too")
	return func(pos []string) int { return e.prune(o, pos) }
}

// prune removes old journals and says which.
func (e *Env) prune(o *pruneOptions, pos []string) int {
	if len(pos) > 0 {
		return e.usageError("runs prune takes no arguments (--older-than AGE, --keep N)")
	}
	age, err := parseAge(o.olderThan)
	if err != nil {
		return e.usageError("--older-than %v", err)
	}
	if o.keep < 0 {
		return e.usageError("--keep %d: want 0 or more", o.keep)
	}
	if age == 0 && o.keep == 0 {
		return e.usageError("runs prune needs --older-than AGE, --keep N or both: it removes runs older than AGE beyond the N newest")
	}
	return e.withStore(o.state, func(store durable.Store) int {
		res, err := durable.Prune(store, durable.PruneOptions{OlderThan: age, Keep: o.keep, Force: o.force, Now: time.Now()})
		if err != nil {
			return e.failed("%v", err)
		}
		for _, r := range res.Removed {
			fmt.Fprintf(e.Stdout, "removed %s\t%s\t%s\t%s\n", r.RunID, orUnknown(r.Playbook), r.Started.Local().Format(time.RFC3339), r.Status)
		}
		fmt.Fprintf(e.Stdout, "removed the journals of %d run(s) from %s\n", len(res.Removed), o.state.where())
		for _, r := range res.Resumable {
			fmt.Fprintf(e.Stderr, "runbook: kept %s (%s, %s): it can still be resumed (runbook resume %s%s); --force removes it\n", r.RunID, orUnknown(r.Playbook), r.Status, r.RunID, o.state.args())
		}
		for _, r := range res.Running {
			fmt.Fprintf(e.Stderr, "runbook: kept %s (%s): it is running\n", r.RunID, orUnknown(r.Playbook))
		}
		failed := false
		for id, err := range res.Failed {
			fmt.Fprintf(e.Stderr, "runbook: could not remove %s: %v\n", id, err)
			failed = true
		}
		if failed {
			return ExitFailed
		}
		return ExitOK
	})
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// withStore runs f on the store sf names and closes it after; a store
// that does not open is an error, said.
func (e *Env) withStore(sf *stateFlags, f func(durable.Store) int) int {
	store, err := sf.open(context.Background())
	if err != nil {
		return e.failed("%v", err)
	}
	defer store.Close()
	return f(store)
}

// listRuns prints the runs of the store sf names.
func (e *Env) listRuns(sf *stateFlags, pos []string) int {
	if len(pos) > 0 {
		return e.usageError("runs takes no arguments")
	}
	return e.withStore(sf, func(store durable.Store) int {
		ids, err := store.List()
		if err != nil {
			return e.failed("%v", err)
		}
		tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RUN\tPLAYBOOK\tSTARTED\tSTATUS\tOPERATOR")
		for _, id := range ids {
			st, prob, err := durable.ReadState(store, id)
			if errors.Is(err, durable.ErrEmpty) && !store.Running(id) {
				fmt.Fprintf(tw, "%s\t?\t?\tempty: cut off before any change\t?\n", id)
				continue
			}
			if err != nil {
				fmt.Fprintf(tw, "%s\t?\t?\tunreadable: %v\t?\n", id, err)
				continue
			}
			status := st.Status
			if status == durable.StatusCrashed && store.Running(id) {
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
	})
}

func showRunCmd(e *Env, c *cobra.Command) func([]string) int {
	c.Use = "show-run ID [--full] [--state-dir DIR | --state URL]"
	sf := e.addStateFlags(c.Flags())
	var full bool
	c.Flags().BoolVar(&full, "full", false, "show each result whole, in JSON (by default each value is cut at 200 bytes)")
	c.ValidArgsFunction = e.completeRunIDs(sf, false)
	return func(pos []string) int { return e.showRun(sf, pos, full) }
}

// showRun prints the journal of the run pos names; full prints the
// results whole.
func (e *Env) showRun(sf *stateFlags, pos []string, full bool) int {
	if len(pos) != 1 {
		return e.usageError("show-run needs a run id (runbook runs lists them)")
	}
	return e.withStore(sf, func(store durable.Store) int {
		recs, prob, err := store.Read(pos[0])
		if errors.Is(err, durable.ErrNoRun) {
			return e.failed("no run %s in %s (runbook runs lists them)", pos[0], sf.where())
		}
		if err != nil {
			return e.failed("%v", err)
		}
		ts := func(t time.Time) string { return t.Local().Format("15:04:05.000") }
		fill := newRunIDSink(nil, pos[0], sf, true).fill
		for _, r := range recs {
			// A record whose data does not read is shown with what could be read.
			x, _ := durable.Decode(r)
			if x.Header != nil {
				h := x.Header
				fmt.Fprintf(e.Stdout, "run %s: %s (%s, sha256 %.12s) by %s@%s, pid %d, started %s\n", h.RunID, h.Playbook, h.File, h.Hash, h.Operator, h.Host, h.PID, h.Started.Local().Format(time.RFC3339))
				fmt.Fprintf(e.Stdout, "  params: %s; secrets (names only): %s\n", paramsLine(h.Params), strings.Join(h.Secrets, ", "))
				if h.Yes {
					fmt.Fprintln(e.Stdout, "  --yes: confirmation gates answered without asking")
				}
				continue
			}
			if a := x.Attempt; a != nil {
				fmt.Fprintf(e.Stdout, "%s  resumed by %s@%s, pid %d %v\n", ts(r.Time), a.Operator, a.Host, a.PID, a.Flags)
				continue
			}
			ev := x.Event
			if ev == nil {
				continue
			}
			switch r.Kind {
			case durable.KindIntent:
				fmt.Fprintf(e.Stdout, "%s  [%d] start   %s [%s]\n", ts(r.Time), ev.Index, ev.Name, ev.Host)
			case durable.KindApply:
				fmt.Fprintf(e.Stdout, "%s  [%d] apply   %s [%s] %s\n", ts(r.Time), ev.Index, ev.Name, ev.Host, ev.Message)
			case durable.KindProcess:
				fmt.Fprintf(e.Stdout, "%s  [%d] process group %d on %s\n", ts(r.Time), ev.Index, ev.PID, ev.Host)
			case durable.KindOutcome:
				fmt.Fprintf(e.Stdout, "%s  [%d] %-7s %s [%s] %s\n", ts(r.Time), ev.Index, ev.Status, ev.Name, ev.Host, fill(ev.Message))
				if ev.Warning != "" {
					fmt.Fprintf(e.Stdout, "                warning: %s\n", ev.Warning)
				}
				if ev.Print != "" {
					for _, l := range strings.Split(strings.TrimRight(ev.Print, "\n"), "\n") {
						fmt.Fprintf(e.Stdout, "                %s\n", l)
					}
				}
				if len(ev.Result) > 0 {
					// Journaled redacted: the run masked its secrets first.
					fmt.Fprintf(e.Stdout, "                result: %s\n", fill(showResult(ev.Result, full)))
				}
			case durable.KindBatch:
				fmt.Fprintf(e.Stdout, "%s  %s: %s [%s]\n", ts(r.Time), ev.Message, ev.Name, ev.Host)
			case durable.KindGuard:
				fmt.Fprintf(e.Stdout, "%s  guard %-7s %s [%s] %s\n", ts(r.Time), ev.Status, ev.Name, ev.Host, ev.Message)
			case durable.KindConfirm:
				fmt.Fprintf(e.Stdout, "%s  %s\n", ts(r.Time), confirmLine(ev))
				for _, l := range strings.Split(ev.Message, "\n") {
					fmt.Fprintf(e.Stdout, "                %s\n", l)
				}
			case durable.KindEnd:
				fmt.Fprintf(e.Stdout, "%s  end: %s %s\n", ts(r.Time), ev.Status, ev.Message)
			}
		}
		if prob != nil {
			fmt.Fprintf(e.Stdout, "journal: %v\n", prob)
		}
		return ExitOK
	})
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

// showResult is a journaled result on one line: as steps.Show cuts it, or
// whole, in JSON.
func showResult(r steps.Result, full bool) string {
	if !full {
		return steps.Show(redact.New(nil), r)
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string]any(r)); err != nil {
		return fmt.Sprintf("%v", map[string]any(r))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// paramsLine shows a run's params as name=value, sorted, each value quoted
// as JSON so that a space, a colon or a comma in it is not ambiguous.
func paramsLine(params map[string]any) string {
	names := make([]string, 0, len(params))
	for n := range params {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		b, err := json.Marshal(params[n])
		if err != nil {
			b = []byte(fmt.Sprintf("%q", fmt.Sprint(params[n])))
		}
		parts[i] = n + "=" + string(b)
	}
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, " ")
}
