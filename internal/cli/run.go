package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/durable"
	"github.com/runbook-dev/runbook/internal/redact"
	"github.com/runbook-dev/runbook/internal/statedir"
	"github.com/runbook-dev/runbook/playbooks"
)

func runCmd(e *Env, c *cobra.Command) func([]string) int  { return e.runOrPlan(c, "run", false) }
func planCmd(e *Env, c *cobra.Command) func([]string) int { return e.runOrPlan(c, "plan", true) }

// runCommand is a run or a plan as its command line gives it.
type runCommand struct {
	name    string
	invFile string
	params  kvList
	rf      *runFlags
	dryRun  bool
	// journal keeps a journal of a read-only playbook's run too.
	journal bool
}

func (e *Env) runOrPlan(c *cobra.Command, name string, dryRun bool) func([]string) int {
	rc := &runCommand{name: name, params: kvList{}, dryRun: dryRun}
	fs := c.Flags()
	fs.StringVarP(&rc.invFile, "inventory", "i", "", "inventory file")
	fs.VarP(rc.params, "param", "p", "parameter NAME=VALUE (repeatable)")
	rc.rf = e.addRunFlags(fs)
	e.completePlaybookArgs(c)
	if !dryRun {
		fs.BoolVar(&rc.dryRun, "dry-run", false, "probe and plan only; change nothing (same as runbook plan)")
		rc.rf.addYes(fs)
		fs.BoolVar(&rc.journal, "journal", false, "journal the run even though every step of the playbook is read-only (such runs keep none: running one again is resuming it)")
	} else {
		// A plan asks nothing; --yes is accepted so that a run's command
		// line becomes its plan by changing the command alone.
		fs.BoolVar(&rc.rf.yes, "yes", false, "accepted and ignored: a plan shows the confirmation gates without asking")
	}
	return func(pos []string) int { return e.runPlaybook(rc, pos) }
}

// runPlaybook runs (or plans) the playbook pos names.
func (e *Env) runPlaybook(rc *runCommand, pos []string) int {
	name, invFile, params, rf, dryRun := rc.name, rc.invFile, rc.params, rc.rf, rc.dryRun
	if len(pos) != 1 {
		return e.usageError("%s needs exactly one playbook (a file or a bundled name; see runbook list)", name)
	}
	if code := rf.check(e); code != ExitOK {
		return code
	}
	sf := rf.state
	pb, code := e.loadPlaybook(pos[0])
	if pb == nil {
		return code
	}
	inv, ok := e.loadInventory(invFile)
	if !ok {
		return ExitFailed
	}
	values, secrets, ok := e.runInputs(pb, inv, params, "", rf.allowWeakSecrets)
	if !ok {
		return ExitFailed
	}
	ctx, stop := interruptible()
	defer stop()
	runID := newRunID()
	// Every run that may change something is journaled: intent and
	// outcome of each step, durable before the next step changes anything.
	// A read-only playbook's run (a monitoring check from cron) keeps no
	// journal unless asked: there is nothing to resume.
	journaled := !dryRun && (!pb.ReadOnly() || rc.journal)
	shown := newRunIDSink(e.newSink(rf.output, rf.verbose), runID, sf, journaled)
	watch := &changeWatch{next: shown}
	var sink engine.Sink = watch
	var confirm engine.Confirmer
	if !dryRun && !journaled {
		confirm = e.confirmer(rf.yes, e.operator()+"@"+hostname())
	}
	if journaled {
		store, err := sf.open(ctx)
		if err != nil {
			return e.failed("%v; nothing was run", err)
		}
		defer store.Close()
		h := durable.NewHeader(pb, durable.Header{RunID: runID, Params: values, Given: params, Inventory: invFile, Operator: e.operator(), Yes: rf.yes})
		confirm = e.confirmer(rf.yes, h.Operator+"@"+h.Host)
		j, err := store.Create(h)
		if err != nil {
			return e.failed("journal: %v; nothing was run (--state-dir to choose where)", err)
		}
		defer j.Close()
		js := durable.NewSink(j, sink, e.Stderr)
		defer js.Wait()
		sink = js
	}
	r := &engine.Runner{Inventory: inv, Sink: sink, DryRun: dryRun, RunID: runID, Connect: e.connector(rf.ssh), Lock: e.locker(sf, pb.Name, runID, rf.waitLock),
		Confirm: confirm}
	var sess *session
	if !dryRun {
		sess = e.startSession(ctx, e.loadConfig(), pb, runID, values, secrets, false)
	}
	err := r.Run(ctx, pb, engine.Inputs{Params: values, Secrets: secrets})
	// Resuming a run that changed nothing is running it again: say so.
	code = watch.exit(e.runExit(err, sink, shown.fill, runID, sf, journaled && watch.changed.Load()))
	if sess != nil {
		sess.end(ctx, err, watch)
		if journaled {
			sess.retain(sf)
		}
	}
	return code
}

// hostname is this machine's name, "" when it has none.
func hostname() string {
	h, _ := os.Hostname()
	return h
}

// changeWatch notes whether a run began to change anything (a step's
// apply), passing every event on.
// It also keeps the exit status the playbook's outcome chose.
type changeWatch struct {
	next    engine.Sink
	changed atomic.Bool
	// failed is the last step that failed on a host, or was interrupted
	// (for the hooks).
	failed atomic.Pointer[engine.Event]
	// code is the exit status the playbook's outcome chose.
	code atomic.Pointer[int]
}

func (w *changeWatch) Emit(ev *engine.Event) {
	switch {
	case ev.Type == engine.EventStepApply:
		w.changed.Store(true)
	case ev.Type == engine.EventStepEnd && (ev.Status == engine.StatusFailed || ev.Status == engine.StatusInterrupted):
		failed := *ev
		w.failed.Store(&failed)
	case ev.Type == engine.EventRunEnd && ev.ExitCode != nil:
		c := *ev.ExitCode
		w.code.Store(&c)
	}
	w.next.Emit(ev)
}

// exit is the exit status of a run whose own is code: the one its
// playbook's outcome chose, unless the run was interrupted.
func (w *changeWatch) exit(code int) int {
	if c := w.code.Load(); c != nil && code != ExitInterrupted {
		return *c
	}
	return code
}

// Flush passes a flush on to the text output.
func (w *changeWatch) Flush() {
	if f, ok := w.next.(interface{ Flush() }); ok {
		f.Flush()
	}
}

// runFlags are the options of every command that runs steps: run, plan
// and resume.
type runFlags struct {
	output   string
	waitLock time.Duration
	ssh      sshOptions
	state    *stateFlags
	// yes answers every confirmation gate (run and resume only).
	yes bool
	// allowWeakSecrets runs with secrets that cannot be redacted safely.
	allowWeakSecrets bool
	// verbose shows every step's result (-v).
	verbose bool
}

func (e *Env) addRunFlags(fs *pflag.FlagSet) *runFlags {
	rf := &runFlags{state: e.addStateFlags(fs)}
	fs.BoolVarP(&rf.verbose, "verbose", "v", false, "show every step's result under its line (secrets redacted)")
	fs.StringVar(&rf.output, "output", "", "output format: text or json (an event per line); default text")
	fs.DurationVar(&rf.waitLock, "wait-lock", 0, "wait this long for a lock another run holds, instead of refusing at once")
	fs.StringVar(&rf.ssh.configFile, "ssh-config", "", "OpenSSH client configuration to use instead of ~/.ssh/config (as ssh -F)")
	_ = cobra.MarkFlagFilename(fs, "ssh-config")
	fs.BoolVar(&rf.ssh.acceptNewHostKeys, "accept-new-host-keys", false, "trust the key of a host not yet in known_hosts and record it (a changed key is still refused)")
	fs.BoolVar(&rf.allowWeakSecrets, "allow-weak-secrets", false, "run even with a secret too short or too common to redact safely: it is masked wherever it appears, which mangles the output and shows a reader where it stands")
	return rf
}

// checkSecrets refuses secrets that cannot be redacted safely, or with
// allow only warns about them; false when the run must not go on.
// runInputs resolves a run's params (given: as on the command line or in
// the journal of the run resumed; what: how the error names them) and
// secrets, and judges the secrets before anything runs. It prints why when
// it returns false.
func (e *Env) runInputs(pb *engine.Playbook, inv *engine.Inventory, given map[string]string, what string, allowWeak bool) (map[string]any, map[string]string, bool) {
	values, err := engine.ResolveParams(pb, given)
	if err != nil {
		fmt.Fprintf(e.Stderr, "runbook: %s%v; nothing was run\n", what, err)
		return nil, nil, false
	}
	secrets, err := engine.ResolveSecrets(pb, engine.SecretSource{LookupEnv: e.LookupEnv, Prompt: e.prompter()})
	if err != nil {
		fmt.Fprintf(e.Stderr, "runbook: %v; nothing was run\n", err)
		return nil, nil, false
	}
	if !e.checkSecrets(pb, inv, values, secrets, allowWeak) {
		return nil, nil, false
	}
	return values, secrets, true
}

func (e *Env) checkSecrets(pb *engine.Playbook, inv *engine.Inventory, params map[string]any, secrets map[string]string, allow bool) bool {
	err := engine.CheckSecrets(pb, inv, params, secrets)
	if err == nil {
		return true
	}
	if allow {
		fmt.Fprintf(e.Stderr, "runbook: warning: %v; going on (--allow-weak-secrets): each is masked wherever its value appears, which mangles the output and shows a reader where it stands\n", err)
		return true
	}
	fmt.Fprintf(e.Stderr, "runbook: %v; nothing was run: choose values that are at least %d bytes and not words of the playbook, the inventory or the parameters (or pass --allow-weak-secrets to run anyway)\n", err, redact.MinLength)
	return false
}

// addYes adds --yes, for the commands that change things.
func (rf *runFlags) addYes(fs *pflag.FlagSet) {
	fs.BoolVar(&rf.yes, "yes", false, "answer every confirmation gate (confirm:) without asking, for automation: review runbook plan first; each answer is journaled")
}

// check reports a usage error in the flags, or ExitOK.
func (rf *runFlags) check(e *Env) int {
	if rf.output != "" && rf.output != "text" && rf.output != "json" {
		return e.usageError("--output must be text or json, not %q", rf.output)
	}
	return ExitOK
}

// interruptible returns a context that Ctrl-C or SIGTERM cancels with
// engine.ErrInterrupted as the cause: the running step's context is
// cancelled (its remote process killed), the run ends and is journaled.
func interruptible() (context.Context, func()) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx2, cancel := context.WithCancelCause(context.Background())
	go func() {
		<-ctx.Done()
		cancel(engine.ErrInterrupted)
	}()
	return ctx2, func() {
		stop()
		cancel(nil)
	}
}

// runExit reports how a run (or a resume) ended and returns the exit code.
// A journaled run that changed something and did not finish says how to
// resume it (resumable); one that changed nothing says so.
// fill puts the run's show-run command in the messages that point to it
// (runIDSink).
func (e *Env) runExit(err error, sink engine.Sink, fill func(string) string, runID string, sf *stateFlags, resumable bool) int {
	if f, ok := sink.(interface{ Flush() }); ok {
		f.Flush()
	}
	resume := "runbook resume " + runID + sf.args()
	// hint says how to go on with the run, where it can be resumed.
	hint := func(how string) {
		if resumable {
			fmt.Fprintf(e.Stderr, "runbook: %s: %s\n", how, resume)
		}
	}
	if err != nil {
		err = &filledError{err: err, msg: fill(err.Error())}
	}
	var ge *engine.GuardError
	var he *durable.HeldError
	var de *engine.InDoubtError
	var ue *engine.UnconfirmedError
	var ce *engine.ConfirmError
	var se *statedir.UnsafeError
	var pe *engine.PartialError
	switch {
	case errors.As(err, &he):
		// err, not he: its message is the redacted one.
		return e.failed("%v; nothing was run (wait for it with --wait-lock DURATION)", err)
	case errors.As(err, &se):
		// A lock refused in the state directory: taken before anything ran.
		return e.failed("%v; nothing was run", se)
	case err == nil:
		return ExitOK
	case errors.Is(err, engine.ErrInterrupted) || errors.Is(err, context.Canceled):
		fmt.Fprintln(e.Stderr, "runbook: interrupted; the running step was cancelled")
		hint("to continue where it stopped")
		return ExitInterrupted
	case errors.As(err, &ge):
		return e.failed("%v", err)
	case errors.As(err, &pe):
		fmt.Fprintf(e.Stderr, "runbook: partial: the run went through its steps, and %d failure(s) on %s were tolerated:\n", len(pe.Failures), strings.Join(pe.Hosts(), ", "))
		for _, f := range pe.Failures {
			fmt.Fprintf(e.Stderr, "  %s\n", fill(f.Error()))
		}
		hint("once they are fixed, run what failed again with")
		return ExitPartial
	case errors.As(err, &de):
		return e.failed("nothing was run: %v", err)
	case errors.As(err, &ue):
		fmt.Fprintf(e.Stderr, "runbook: refused, nothing was changed: the run asks for a typed confirmation (%s) and stdin is not a terminal: review what it would change with runbook plan, then pass --yes to answer (for automation)\n",
			strings.Join(ue.Gates, "; "))
		return ExitFailed
	case errors.As(err, &ce):
		fmt.Fprintf(e.Stderr, "runbook: %v\n", err)
		hint("to go on from there (the gate is asked again)")
		return ExitFailed
	default:
		fmt.Fprintf(e.Stderr, "runbook: %v\n", err)
		hint("once the cause is fixed, continue with")
		if !resumable {
			fmt.Fprintln(e.Stderr, "runbook: nothing was changed; once the cause is fixed, run it again")
		}
		return ExitFailed
	}
}

// loadInventory loads the inventory file, if one is named, and prints its
// diagnostics; false when it cannot be used.
func (e *Env) loadInventory(file string) (*engine.Inventory, bool) {
	if file == "" {
		return nil, true
	}
	inv, ds, err := engine.LoadInventory(file)
	if err != nil {
		fmt.Fprintf(e.Stderr, "runbook: inventory: %v; nothing was run\n", err)
		return nil, false
	}
	for _, d := range ds {
		fmt.Fprintln(e.Stderr, d)
	}
	if inv == nil {
		fmt.Fprintf(e.Stderr, "runbook: the inventory %s is invalid; nothing was run\n", file)
		return nil, false
	}
	return inv, true
}

// loadPlaybook loads a playbook file, or a bundled playbook by name, and
// prints its diagnostics. It returns nil and an exit code when the playbook
// cannot run.
func (e *Env) loadPlaybook(ref string) (*engine.Playbook, int) {
	file, src, err := readPlaybook(ref)
	if err != nil {
		fmt.Fprintf(e.Stderr, "runbook: %v\n", err)
		return nil, ExitFailed
	}
	pb, ds := newLoader().Load(file, src)
	// Warnings are for review (runbook validate); a run shows only what
	// stops it.
	errs := 0
	for _, d := range ds {
		if d.Severity == diag.Error {
			errs++
			fmt.Fprintln(e.Stderr, d)
		}
	}
	if pb == nil {
		// The count is of what is shown: the warnings are validate's.
		also := ""
		if len(ds) > errs {
			also = "; runbook validate shows its warnings too"
		}
		fmt.Fprintf(e.Stderr, "runbook: %s is invalid (%s above%s); nothing was run\n", file, counted(errs, "error"), also)
		return nil, ExitFailed
	}
	return pb, ExitOK
}

func readPlaybook(ref string) (string, []byte, error) {
	if st, err := os.Stat(ref); err == nil && !st.IsDir() {
		src, err := os.ReadFile(ref)
		return ref, src, err
	}
	if src, ok := playbooks.Lookup(ref); ok {
		return playbooks.Path(ref), src, nil
	}
	return "", nil, fmt.Errorf("%s: no such file, and no bundled playbook has that name (runbook list shows them)", ref)
}

// prompter asks for secrets on the terminal, or returns nil when stdin is
// not one.
func (e *Env) prompter() func(name, desc string) (string, error) {
	f, ok := e.Stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return func(name, desc string) (string, error) {
		fmt.Fprintf(e.Stderr, "%s (%s): ", name, desc)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.Stderr)
		return string(b), err
	}
}

// defaultStateDir is $XDG_STATE_HOME/runbook, or ~/.local/state/runbook
// in $HOME, or in the user's home directory from the password database
// when HOME is unset. There is no shared fallback such as a directory in
// /tmp, which another user could create first: without any of these it is
// "", and runs ask for --state-dir.
func defaultStateDir(e *Env) string {
	// The XDG specification says to ignore a relative path.
	if d := e.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "runbook")
	}
	home := e.Getenv("HOME")
	if !filepath.IsAbs(home) {
		home = ""
		if u, err := user.Current(); err == nil && filepath.IsAbs(u.HomeDir) {
			home = u.HomeDir
		}
	}
	if home == "" {
		return ""
	}
	return filepath.Join(home, ".local", "state", "runbook")
}

// locker takes playbook locks where the run's journal is kept (the state
// directory, or the shared PostgreSQL), for this run.
func (e *Env) locker(sf *stateFlags, playbook, runID string, wait time.Duration) func(ctx context.Context, name string) (func(), error) {
	l := &durable.Locker{Dir: sf.dir, URL: sf.url, Holder: durable.Holder{RunID: runID, Playbook: playbook, Operator: e.operator()}, Wait: wait,
		Waiting: func(held *durable.HeldError) {
			fmt.Fprintf(e.Stderr, "runbook: %v; waiting up to %s for it (Ctrl-C stops waiting)\n", held, wait)
		}}
	return l.Lock
}

// newRunID names a run: its start time and a random suffix.
func newRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// operator is who runs runbook: the user behind sudo, or this user.
func (e *Env) operator() string {
	if u := e.Getenv("SUDO_USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "unknown"
}
