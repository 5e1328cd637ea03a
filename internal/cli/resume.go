package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/durable"
)

// resumeOptions are resume's own flags.
type resumeOptions struct {
	rf                        *runFlags
	retry, skip, allowChanged bool
	waitLeftovers             time.Duration
}

func resumeCmd(e *Env, c *cobra.Command) func([]string) int {
	c.Use = "resume ID [--retry-in-doubt | --skip-in-doubt] [--allow-changed-playbook] [--yes]"
	fs := c.Flags()
	o := &resumeOptions{rf: e.addRunFlags(fs)}
	o.rf.addYes(fs)
	fs.BoolVar(&o.retry, "retry-in-doubt", false, "run again the steps that were started and never reported, even those whose type cannot check whether their change was made")
	fs.BoolVar(&o.skip, "skip-in-doubt", false, "take the steps that were started and never reported as done (you checked on the hosts that their change was made)")
	fs.BoolVar(&o.allowChanged, "allow-changed-playbook", false, "resume even though the playbook changed since the run started")
	fs.DurationVar(&o.waitLeftovers, "wait-leftovers", 10*time.Minute, "how long to wait for a command the interrupted attempt started on a host, if it still runs, before giving up")
	c.ValidArgsFunction = e.completeRunIDs(o.rf.state, true)
	return func(pos []string) int { return e.resume(o, pos) }
}

// resume continues the run pos names.
func (e *Env) resume(o *resumeOptions, pos []string) int {
	rf := o.rf
	if len(pos) != 1 {
		return e.usageError("resume needs a run id (runbook runs lists them)")
	}
	if o.retry && o.skip {
		return e.usageError("--retry-in-doubt and --skip-in-doubt contradict each other: choose one")
	}
	if code := rf.check(e); code != ExitOK {
		return code
	}
	sf := rf.state
	runID := pos[0]
	ctx, stop := interruptible()
	defer stop()
	store, err := sf.open(ctx)
	if err != nil {
		return e.failed("%v; nothing was run", err)
	}
	defer store.Close()
	// Continue holds the run's journal from here on: a second resume of
	// the same run is refused until this one ends.
	j, recs, err := store.Continue(runID)
	var be *durable.BusyError
	switch {
	case errors.Is(err, durable.ErrNoRun):
		return e.failed("no run %s in %s (runbook runs lists them)", runID, sf.where())
	case errors.As(err, &be):
		return e.failed("%v; nothing was run", be)
	case err != nil:
		return e.failed("journal of run %s: %v; nothing was run (runbook show-run %s shows what it holds)", runID, err, runID)
	}
	defer j.Close()
	st, err := durable.Fold(recs)
	if err != nil {
		return e.failed("journal of run %s: %v; nothing was run", runID, err)
	}
	h := st.Header
	if st.Finished() {
		fmt.Fprintf(e.Stderr, "runbook: run %s of %s finished (ok); there is nothing to resume\n", runID, h.Playbook)
		return ExitOK
	}
	pb, code := e.loadPlaybook(h.PlaybookRef())
	if pb == nil {
		return code
	}
	if err := st.CheckPlaybook(pb.File, pb.Hash, o.allowChanged); err != nil {
		return e.failed("%v; nothing was run (resume with --allow-changed-playbook once you have compared them)", err)
	}
	inv, ok := e.loadInventory(h.Inventory)
	if !ok {
		return ExitFailed
	}
	values, secrets, ok := e.runInputs(pb, inv, h.Given, "the run's parameters: ", rf.allowWeakSecrets)
	if !ok {
		return ExitFailed
	}
	resume, a, lost := st.Resume(store, durable.NewAttempt(e.operator()), durable.ResumeOptions{
		RetryInDoubt: o.retry, SkipInDoubt: o.skip, Yes: rf.yes, LeftoverWait: o.waitLeftovers, Hash: pb.Hash})
	if lost {
		fmt.Fprintf(e.Stderr, "runbook: run %s was cut short on %s before a reboot (or its journal is shared): its last records may be lost, so steps up to %d without a recorded outcome are taken as in doubt\n",
			runID, st.WriterHost, st.Watermark)
	}
	if err := j.Append(durable.KindResume, a); err != nil {
		return e.failed("journal: %v; nothing was run", err)
	}
	var doubt []string
	for k, name := range st.InDoubt {
		doubt = append(doubt, fmt.Sprintf("[%d] %s [%s]", k.Index, name, k.Host))
	}
	fmt.Fprintf(e.Stderr, "runbook: resuming run %s of %s (%s, attempt %d): %d step outcome(s) recorded, %d in doubt %s\n",
		runID, h.Playbook, st.Status, st.Attempts+1, len(st.Done), len(st.InDoubt), strings.Join(doubt, ", "))
	shown := newRunIDSink(e.newSink(rf.output, rf.verbose), runID, sf, true)
	watch := &changeWatch{next: shown}
	sink := durable.NewSink(j, watch, e.Stderr)
	defer sink.Wait()
	sess := e.startSession(ctx, e.loadConfig(), pb, runID, values, secrets, true)
	r := &engine.Runner{Inventory: inv, Sink: sink, RunID: runID, Connect: e.connector(rf.ssh), Lock: e.locker(sf, pb.Name, runID, rf.waitLock),
		Resume: resume, Confirm: e.confirmer(rf.yes, a.Operator+"@"+a.Host), Dir: h.Dir}
	err = r.Run(ctx, pb, engine.Inputs{Params: values, Secrets: secrets})
	code = watch.exit(e.runExit(err, sink, shown.fill, runID, sf, true))
	sess.end(ctx, err, watch)
	sess.retain(sf)
	return code
}
