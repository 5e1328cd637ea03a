package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/runs"
)

func resumeCmd(e *Env, args []string) int {
	fs := newFlags(e, "resume", "ID [--retry-in-doubt | --skip-in-doubt] [--allow-changed-playbook] [--yes]")
	rf := e.addRunFlags(fs)
	rf.addYes(fs)
	retry := fs.Bool("retry-in-doubt", false, "run again the steps that were started and never reported, even those whose type cannot check whether their change was made")
	skip := fs.Bool("skip-in-doubt", false, "take the steps that were started and never reported as done (you checked on the hosts that their change was made)")
	allowChanged := fs.Bool("allow-changed-playbook", false, "resume even though the playbook changed since the run started")
	waitLeftovers := fs.Duration("wait-leftovers", 10*time.Minute, "how long to wait for a command the interrupted attempt started on a host, if it still runs, before giving up")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return ExitUsage
	}
	if len(pos) != 1 {
		return e.usageError("resume needs a run id (runbook runs lists them)")
	}
	if *retry && *skip {
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
		fmt.Fprintf(e.Stderr, "runbook: %v; nothing was run\n", err)
		return ExitFailed
	}
	defer store.Close()
	// Continue holds the run's journal from here on: a second resume of
	// the same run is refused until this one ends.
	j, recs, err := store.Continue(runID)
	var be *runs.BusyError
	switch {
	case errors.Is(err, runs.ErrNoRun):
		fmt.Fprintf(e.Stderr, "runbook: no run %s in %s (runbook runs lists them)\n", runID, sf.where())
		return ExitFailed
	case errors.As(err, &be):
		fmt.Fprintf(e.Stderr, "runbook: %v; nothing was run\n", be)
		return ExitFailed
	case err != nil:
		fmt.Fprintf(e.Stderr, "runbook: journal of run %s: %v; nothing was run (runbook show-run %s shows what it holds)\n", runID, err, runID)
		return ExitFailed
	}
	defer j.Close()
	st, err := runs.Fold(recs)
	if err != nil {
		fmt.Fprintf(e.Stderr, "runbook: journal of run %s: %v; nothing was run\n", runID, err)
		return ExitFailed
	}
	h := st.Header
	if st.Status == string(engine.StatusOK) {
		fmt.Fprintf(e.Stderr, "runbook: run %s of %s finished (ok); there is nothing to resume\n", runID, h.Playbook)
		return ExitOK
	}
	pb, code := e.loadPlaybook(playbookRef(h))
	if pb == nil {
		return code
	}
	if pb.Hash != h.Hash && !*allowChanged {
		fmt.Fprintf(e.Stderr, "runbook: %s changed since run %s started (sha256 %.12s then, %.12s now): the steps the run recorded may not be the steps it would run now; nothing was run (resume with --allow-changed-playbook once you have compared them)\n",
			pb.File, runID, h.Hash, pb.Hash)
		return ExitFailed
	}
	inv, ok := e.loadInventory(h.Inventory)
	if !ok {
		return ExitFailed
	}
	values, err := engine.ResolveParams(pb, h.Given)
	if err != nil {
		fmt.Fprintf(e.Stderr, "runbook: the run's parameters: %v; nothing was run\n", err)
		return ExitFailed
	}
	secrets, err := engine.ResolveSecrets(pb, engine.SecretSource{LookupEnv: e.LookupEnv, Prompt: e.prompter()})
	if err != nil {
		fmt.Fprintf(e.Stderr, "runbook: %v; nothing was run\n", err)
		return ExitFailed
	}
	if !e.checkSecrets(pb, inv, values, secrets, rf.allowWeakSecrets) {
		return ExitFailed
	}
	a := runs.Attempt{Operator: e.operator(), PID: os.Getpid(), Started: time.Now(), BootID: runs.BootID()}
	a.Host, _ = os.Hostname()
	resume := &engine.Resume{Done: st.Done, InDoubt: st.InDoubt, Applying: st.Applying, Leftovers: st.Processes, LeftoverWait: *waitLeftovers,
		RetryInDoubt: *retry, SkipInDoubt: *skip, Confirmed: st.Confirmed}
	// Records an earlier resume found lost stay lost for every later one.
	resume.Watermark, resume.StepsDone = st.LostWatermark, st.StepsDone
	if _, local := store.(*runs.Local); !st.Complete(local, a.Host, a.BootID) {
		// Written before a reboot, or kept by a store that buffers in the
		// process: the records after the last sync may be lost.
		resume.Watermark = max(resume.Watermark, st.Watermark)
		fmt.Fprintf(e.Stderr, "runbook: run %s was cut short on %s before a reboot (or its journal is shared): its last records may be lost, so steps up to %d without a recorded outcome are taken as in doubt\n",
			runID, st.WriterHost, st.Watermark)
	}
	if *retry {
		a.Flags = append(a.Flags, "--retry-in-doubt")
	}
	if *skip {
		a.Flags = append(a.Flags, "--skip-in-doubt")
	}
	if rf.yes {
		a.Flags = append(a.Flags, "--yes")
	}
	if pb.Hash != h.Hash {
		a.Flags, a.Hash = append(a.Flags, "--allow-changed-playbook"), pb.Hash
	}
	a.Watermark = resume.Watermark
	if err := j.Append(runs.KindResume, a); err != nil {
		fmt.Fprintf(e.Stderr, "runbook: journal: %v; nothing was run\n", err)
		return ExitFailed
	}
	var doubt []string
	for k, name := range st.InDoubt {
		doubt = append(doubt, fmt.Sprintf("[%d] %s [%s]", k.Index, name, k.Host))
	}
	fmt.Fprintf(e.Stderr, "runbook: resuming run %s of %s (%s, attempt %d): %d step outcome(s) recorded, %d in doubt %s\n",
		runID, h.Playbook, st.Status, st.Attempts+1, len(st.Done), len(st.InDoubt), strings.Join(doubt, ", "))
	sink := newJournalSink(j, e.newSink(rf.output, rf.verbose))
	defer sink.wait()
	r := &engine.Runner{Inventory: inv, Sink: sink, RunID: runID, Connect: e.connector(rf.ssh), Lock: e.locker(sf, pb.Name, runID, rf.waitLock),
		Resume: resume, Confirm: e.confirmer(rf.yes, a.Operator+"@"+a.Host)}
	err = r.Run(ctx, pb, engine.Inputs{Params: values, Secrets: secrets})
	return e.runExit(err, sink, runID, sf, true)
}

// playbookRef is what loads the playbook a run ran: its file, or the
// bundled playbook of that name.
func playbookRef(h runs.Header) string {
	if strings.HasPrefix(h.File, "bundled:") {
		return strings.TrimSuffix(strings.TrimPrefix(h.File, "bundled:"), ".yaml")
	}
	if h.Path != "" {
		return h.Path
	}
	return h.File
}
