package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/redact"
	"github.com/runbook-dev/runbook/steps"
)

func (e *Env) newSink(format string, verbose bool) engine.Sink {
	if format == "json" {
		enc := json.NewEncoder(e.Stdout)
		var mu sync.Mutex
		return engine.SinkFunc(func(ev *engine.Event) {
			mu.Lock()
			defer mu.Unlock()
			_ = enc.Encode(ev)
		})
	}
	return &textSink{w: e.Stdout, out: e.Stdout, errw: e.Stderr, verbose: verbose, live: e.isTerminal(e.Stdout), color: e.isTerminal(e.Stdout) && e.Getenv("NO_COLOR") == ""}
}

// textSink prints one line per guard and per step on each host. On a
// terminal the line of the running step is shown while it runs and then
// replaced by its outcome.
type textSink struct {
	mu sync.Mutex
	// w is where the step lines go: out, or errw for a playbook with an
	// outcome text (a report), whose text alone goes to out.
	w, out, errw io.Writer
	live         bool
	color        bool
	liveLine     bool
	dryRun       bool
	// verbose shows every step's result (-v), redacted as in the journal.
	verbose bool
	counts  map[engine.Status]int
}

func (s *textSink) paint(st engine.Status) string {
	label := fmt.Sprintf("%-12s", st)
	if !s.color {
		return label
	}
	code := "0"
	switch st {
	case engine.StatusOK:
		code = "32"
	case engine.StatusChanged, engine.StatusWould:
		code = "33"
	case engine.StatusFailed, engine.StatusInterrupted, engine.StatusInDoubt:
		code = "31"
	case engine.StatusSkipped, engine.StatusUnknown:
		code = "36"
	}
	return "\033[" + code + "m" + label + "\033[0m"
}

func (s *textSink) clearLive() {
	if s.liveLine {
		fmt.Fprint(s.w, "\r\033[K")
		s.liveLine = false
	}
}

func dur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	default:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
}

func (s *textSink) Emit(ev *engine.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counts == nil {
		s.counts = map[engine.Status]int{}
	}
	switch ev.Type {
	case engine.EventRunStart:
		s.dryRun = ev.DryRun
		if ev.Report {
			// The outcome's text is the output (a monitoring system
			// reads standard output); the step lines are details.
			s.w, s.live = s.errw, false
		}
		mode := ""
		if ev.DryRun {
			mode = " (plan: probes run for real, nothing is changed)"
		}
		fmt.Fprintf(s.w, "runbook: %s%s\n", ev.Playbook, mode)
	case engine.EventGuard:
		s.clearLive()
		fmt.Fprintf(s.w, "guard  %s %s [%s] %s\n", s.paint(ev.Status), ev.Name, ev.Host, dur(ev.Duration))
		// What a fact found, shown whether it refuses the run or not.
		for _, l := range strings.Split(strings.TrimRight(ev.Print, "\n"), "\n") {
			if l != "" {
				fmt.Fprintf(s.w, "       %s\n", l)
			}
		}
		if ev.Status != engine.StatusOK && ev.Message != "" {
			fmt.Fprintf(s.w, "       %s\n", ev.Message)
		}
	case engine.EventConfirm:
		s.clearLive()
		s.confirm(ev)
	case engine.EventBatch:
		s.clearLive()
		fmt.Fprintf(s.w, "%s: %s [%s]\n", ev.Message, ev.Name, ev.Host)
	case engine.EventStepStart:
		if s.live {
			s.clearLive()
			fmt.Fprintf(s.w, "[%d] %-12s %s [%s]", ev.Index, "running", ev.Name, ev.Host)
			s.liveLine = true
		}
	case engine.EventStepProgress:
		if s.live {
			s.clearLive()
			msg := ev.Message
			if len(msg) > 100 {
				msg = msg[:100] + "…"
			}
			fmt.Fprintf(s.w, "[%d] %-12s %s [%s] %s", ev.Index, "running", ev.Name, ev.Host, msg)
			s.liveLine = true
		}
	case engine.EventStepEnd:
		s.clearLive()
		if ev.Resumed {
			s.counts["earlier"]++
			fmt.Fprintf(s.w, "[%d] %s %s [%s] %s\n", ev.Index, s.paint(ev.Status), ev.Name, ev.Host, ev.Message)
			return
		}
		s.counts[ev.Status]++
		fmt.Fprintf(s.w, "[%d] %s %s [%s] %s\n", ev.Index, s.paint(ev.Status), ev.Name, ev.Host, dur(ev.Duration))
		show := ev.Status == engine.StatusFailed || ev.Status == engine.StatusUnknown || ev.Status == engine.StatusInterrupted || ev.Status == engine.StatusInDoubt || s.dryRun
		if ev.Message != "" && show {
			fmt.Fprintf(s.w, "    %s\n", ev.Message)
		}
		if ev.Warning != "" {
			s.counts["warning"]++
			fmt.Fprintf(s.w, "    warning: %s\n", ev.Warning)
		}
		if ev.Print != "" {
			for _, l := range strings.Split(strings.TrimRight(ev.Print, "\n"), "\n") {
				fmt.Fprintf(s.w, "    %s\n", l)
			}
		}
		if s.verbose && len(ev.Result) > 0 {
			// The sink sees results redacted already; Show formats them.
			fmt.Fprintf(s.w, "    result: %s\n", steps.Show(redact.New(nil), ev.Result))
		}
		if ev.Diff != "" && (s.dryRun || ev.Status == engine.StatusChanged) {
			for _, l := range strings.Split(strings.TrimRight(ev.Diff, "\n"), "\n") {
				fmt.Fprintf(s.w, "    %s\n", l)
			}
		}
	case engine.EventRunEnd:
		s.clearLive()
		var parts []string
		for _, st := range []engine.Status{engine.StatusOK, engine.StatusChanged, engine.StatusWould, engine.StatusSkipped, engine.StatusUnknown, engine.StatusFailed, engine.StatusInterrupted, engine.StatusInDoubt} {
			if n := s.counts[st]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, st))
			}
		}
		if n := s.counts["earlier"]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d done earlier", n))
		}
		if n := s.counts["warning"]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d with a warning (above)", n))
		}
		verb := map[bool]string{true: "planned", false: "finished"}[s.dryRun]
		if ev.Status == engine.StatusPartial {
			verb += " (partial: failures tolerated, listed below)"
		}
		switch {
		case len(parts) == 0 && ev.Status != engine.StatusOK && ev.Status != engine.StatusPartial:
			// It never got to a step (an unknown host, a guard, a lock, a
			// gate): nothing finished; why is said below.
			fmt.Fprintf(s.w, "stopped before any step ran (%s)\n", dur(ev.Duration))
		case len(parts) == 0:
			fmt.Fprintf(s.w, "%s in %s: no steps run\n", verb, dur(ev.Duration))
		default:
			fmt.Fprintf(s.w, "%s in %s: %s\n", verb, dur(ev.Duration), strings.Join(parts, ", "))
		}
		if ev.Output != "" {
			fmt.Fprintln(s.out, strings.TrimRight(ev.Output, "\n"))
		}
	}
}

// confirm prints a confirmation gate: how it was answered, or in a plan
// what it will ask. Its text was shown where the operator typed the
// word; a plan and --yes print it here.
func (s *textSink) confirm(ev *engine.Event) {
	if ev.DryRun {
		where := "before the first step"
		if ev.Index > 0 {
			where = fmt.Sprintf("[%d] %s [%s]", ev.Index, ev.Name, ev.Host)
		}
		fmt.Fprintf(s.w, "confirm %s: will ask to type %s\n", where, ev.Word)
	} else {
		fmt.Fprintf(s.w, "%s\n", confirmLine(ev))
	}
	if ev.DryRun || ev.Yes {
		for _, l := range strings.Split(ev.Message, "\n") {
			fmt.Fprintf(s.w, "    %s\n", l)
		}
	}
}

// runIDSink puts the run's id, and the state flags that find it, in the
// pointers to its whole output the steps write with a placeholder
// (steps.ShowRunHint), in what the operator is shown: the step types do
// not know the run. (The journal keeps the placeholder; show-run fills
// it.) It wraps the output sink only, never the engine's: the engine
// looks for optional interfaces on its sink (Marker). A run that
// keeps no journal has nothing for show-run to find: the pointer names
// --output json only.
type runIDSink struct {
	next engine.Sink
	with string
}

func newRunIDSink(next engine.Sink, runID string, sf *stateFlags, journaled bool) *runIDSink {
	with := "run with"
	if journaled {
		with = "runbook show-run --full " + runID + sf.args() + ", or run with"
	}
	return &runIDSink{next: next, with: with}
}

// fill replaces the placeholder in s.
func (s *runIDSink) fill(t string) string {
	return strings.ReplaceAll(t, steps.ShowRunHint, s.with)
}

// Emit passes on a copy: the journal may still be writing the event.
func (s *runIDSink) Emit(ev *engine.Event) {
	c := *ev
	c.Message, c.Warning = s.fill(ev.Message), s.fill(ev.Warning)
	s.next.Emit(&c)
}

// Flush flushes the sink it writes to.
func (s *runIDSink) Flush() {
	if f, ok := s.next.(interface{ Flush() }); ok {
		f.Flush()
	}
}

// filledError is an error whose message had the placeholder filled.
type filledError struct {
	err error
	msg string
}

func (e *filledError) Error() string { return e.msg }
func (e *filledError) Unwrap() error { return e.err }
