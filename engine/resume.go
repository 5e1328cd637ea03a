package engine

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/runbook-dev/runbook/internal/transport"
	"github.com/runbook-dev/runbook/steps"
)

// StepKey names one execution of a step: the step's 1-based index, the host
// it ran on and, for a for_each step, the 1-based element.
type StepKey struct {
	Index int
	Host  string
	Item  int
}

func (k StepKey) String() string {
	s := fmt.Sprintf("step %d on %s", k.Index, k.Host)
	if k.Item > 0 {
		s += fmt.Sprintf(" (element %d)", k.Item)
	}
	return s
}

// Outcome is how an earlier attempt of a step ended.
type Outcome struct {
	Status Status
	Result steps.Result
	// ID is the id the step had then, to tell a playbook edited since.
	ID string
}

// Resume is what earlier attempts of a run did, for a run that continues
// them. Steps with an outcome in Done are not run again; their outcome
// and result stand. A step in InDoubt was started and never reported: it
// runs again when its type rechecks the host (steps.Rechecker), and
// otherwise only with RetryInDoubt or SkipInDoubt.
type Resume struct {
	Done    map[StepKey]Outcome
	InDoubt map[StepKey]string
	// Failed are the executions whose last outcome was a failure (tolerated,
	// or the one that stopped the run): they run again, and so make the
	// outcomes recorded after them on their host stale (see stale).
	Failed map[StepKey]bool
	// Applying are the in-doubt steps whose lost attempt had found a change
	// to make and started making it: a recheck that finds the change made
	// reports them changed, as the attempt would have.
	Applying map[StepKey]bool
	// Leftovers are the commands in-doubt steps had started on their hosts
	// (their process groups): one may outlive the engine that started it and
	// still be making its change, so the step waits for it to end before it
	// is checked again, up to LeftoverWait (default 10 minutes).
	Leftovers    map[StepKey]Leftover
	LeftoverWait time.Duration
	// Watermark, when the journal may have lost its last records (a power
	// cut), is the highest step the lost attempt may have been changing:
	// every execution of a step up to it without a recorded outcome is in
	// doubt, and taken as having been applying. StepsDone are the steps
	// recorded as ended on all their hosts. Zero when the journal is
	// complete.
	Watermark int
	StepsDone map[int]bool
	// RetryInDoubt runs in-doubt steps again even when their type cannot
	// tell whether the lost attempt made its change.
	RetryInDoubt bool
	// SkipInDoubt takes in-doubt steps as done: the operator checked by
	// hand that their change was made.
	SkipInDoubt bool
	// Confirmed are the confirmation gates an earlier attempt passed and
	// then acted on (the step began making its change on the host that
	// asked; for the playbook's gate, any step did), by what was asked:
	// they are not asked again. A gate passed and not acted on, refused,
	// or asked with another word or text (another host's) is asked again.
	Confirmed map[GateKey]bool
	// Batches are the batches each batch of steps (by the index of its
	// first step) split its hosts into when the run first reached it: a
	// resume that would split them otherwise is refused
	// (BatchesChangedError).
	Batches map[int][][]string
	// Reached are the hosts each batch of steps (by the index of its
	// first step) started on: the journal has a batch of hosts on disk
	// before any of its steps runs, so a host not here was touched by no
	// step of that batch, and the Watermark puts none of them in doubt on
	// it. Nil when the journal does not say (written before batches of
	// hosts were journaled): every host of a batch step up to the
	// Watermark is then in doubt.
	Reached map[int]map[string]bool
}

// InDoubtError refuses a resume that would repeat a step whose earlier
// attempt may have made its change, without the operator's say-so.
type InDoubtError struct {
	Steps []string
	// Repeats are changes an earlier attempt made that the resume would
	// make again, because a step before them runs again on their host
	// (see stale), and that cannot check whether their change is there.
	Repeats []string
}

func (e *InDoubtError) Error() string {
	var parts []string
	if len(e.Steps) > 0 {
		parts = append(parts, fmt.Sprintf("%d step(s) were started and never reported, and running them again could repeat their change: %s",
			len(e.Steps), strings.Join(e.Steps, "; ")))
	}
	if len(e.Repeats) > 0 {
		parts = append(parts, fmt.Sprintf("%d change(s) an earlier attempt made would be made again, because a step before them runs again on their host, and they cannot check whether their change is there: %s",
			len(e.Repeats), strings.Join(e.Repeats, "; ")))
	}
	return strings.Join(parts, "; ") + "; check on the host whether the change was made, then resume with --retry-in-doubt to run them again or --skip-in-doubt to take them as done"
}

// Leftover is a command an interrupted attempt started on its host.
type Leftover struct {
	PID   int
	Since time.Time
}

// LeftoverError is a command of an interrupted attempt that still runs.
type LeftoverError struct {
	Key  StepKey
	PID  int
	Wait time.Duration
}

func (e *LeftoverError) Error() string {
	return fmt.Sprintf("the command the interrupted attempt started on %s still runs after %s (process group %d) and may still make its change: "+
		"wait for it to end, or stop it (kill -TERM -- -%d on %s), then resume again (--wait-leftovers to wait longer)",
		e.Key.Host, e.Wait, e.PID, e.PID, e.Key.Host)
}

// awaitLeftovers waits, before the facts and the guards look at the
// hosts, for every command the interrupted attempt left running (see
// awaitLeftover): a guard that looked while one still changed its host (a
// data directory being put in place) would judge a state no step left,
// and refuse the resume, or pass, on it.
func (x *run) awaitLeftovers(ctx context.Context) error {
	if x.resume == nil || len(x.resume.Leftovers) == 0 {
		return nil
	}
	keys := make([]StepKey, 0, len(x.resume.Leftovers))
	for k := range x.resume.Leftovers {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.Index != b.Index {
			return a.Index < b.Index
		}
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		return a.Item < b.Item
	})
	for _, k := range keys {
		h, err := x.inv.Host(k.Host)
		if err != nil {
			return err
		}
		ex := &steps.Exec{
			Host:    steps.Host{Name: h.Name, Address: h.Address, Vars: h.Vars},
			Connect: func(ctx context.Context) (transport.Conn, error) { return x.pool.get(ctx, h) },
			Progress: func(msg string) {
				x.sink.Emit(&Event{Type: EventStepProgress, Index: k.Index, Host: k.Host, Item: k.Item, Message: msg})
			},
		}
		if err := x.awaitLeftover(ctx, ex, k); err != nil {
			return err
		}
	}
	return nil
}

// awaitLeftover waits for the command an interrupted attempt of the step
// started on its host to end: checked again while it still runs, the step
// would find half a change, and might make it a second time.
func (x *run) awaitLeftover(ctx context.Context, ex *steps.Exec, k StepKey) error {
	lo, ok := x.resume.Leftovers[k]
	if !ok {
		return nil
	}
	conn, err := ex.Connect(ctx)
	if err != nil {
		return err
	}
	wait := x.leftoverWait()
	start := time.Now()
	for announced := false; ; announced = true {
		out, err := conn.Run(ctx, &transport.Command{Line: transport.GroupCheck(lo.PID)})
		if err != nil {
			return fmt.Errorf("checking for the command of the interrupted attempt: %w", err)
		}
		if !leftoverRuns(strings.TrimSpace(string(out.Stdout)), time.Since(lo.Since)) {
			return nil
		}
		if !announced && ex.Progress != nil {
			ex.Progress(fmt.Sprintf("the command of the interrupted attempt still runs (process group %d): waiting for it to end", lo.PID))
		}
		if time.Since(start) >= wait {
			return &LeftoverError{Key: k, PID: lo.PID, Wait: wait}
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// leftoverWait is how long a resume waits for work an interrupted attempt
// left running (--wait-leftovers, 10 minutes by default).
func (x *run) leftoverWait() time.Duration {
	if x.resume == nil || x.resume.LeftoverWait <= 0 {
		return 10 * time.Minute
	}
	return x.resume.LeftoverWait
}

// tag names a step of this run on a host for the work it leaves there
// (steps.Exec.Tag).
func (x *run) tag(k StepKey) string {
	if x.runID == "" {
		return ""
	}
	t := fmt.Sprintf("runbook %s step %d", x.runID, k.Index)
	if k.Item > 0 {
		t += fmt.Sprintf(".%d", k.Item)
	}
	t += " " + k.Host
	if len(t) > 63 {
		t = t[:63]
	}
	return t
}

// leftoverRuns reads transport.GroupCheck's answer about a process group
// recorded age ago: a group younger than that reuses the id, and is not
// the one the attempt started.
func leftoverRuns(state string, age time.Duration) bool {
	switch {
	case state == "gone":
		return false
	case strings.HasPrefix(state, "running "):
		n, err := strconv.Atoi(strings.TrimPrefix(state, "running "))
		if err != nil {
			return true // cannot tell its age: assume it is ours
		}
		// ps counts whole seconds; the record was written as it started.
		return time.Duration(n+2)*time.Second >= age
	default:
		return true
	}
}

// rechecks says whether a step may be run again after a lost attempt.
func rechecks(s *Step) bool {
	r, ok := s.Body.(steps.Rechecker)
	return ok && r.Rechecks()
}

// checkResume refuses, before anything runs, a resume whose in-doubt steps
// cannot be run again safely, and one whose recorded steps no longer match
// the playbook.
func (x *run) checkResume() error {
	rs := x.resume
	if rs == nil {
		return nil
	}
	for k, o := range rs.Done {
		if k.Index < 1 || k.Index > len(x.pb.Steps) {
			return fmt.Errorf("the run recorded step %d, and the playbook has %d steps now", k.Index, len(x.pb.Steps))
		}
		if s := x.pb.Steps[k.Index-1]; o.ID != s.Key() {
			return fmt.Errorf("the run recorded step %d with id %q, and it has id %q now: the steps moved", k.Index, o.ID, s.Key())
		}
	}
	if rs.RetryInDoubt || rs.SkipInDoubt {
		return nil
	}
	var unsafe []string
	for i := 1; i <= rs.Watermark && i <= len(x.pb.Steps); i++ {
		s := x.pb.Steps[i-1]
		if x.stepDone(i, s) || rechecks(s) {
			continue
		}
		if s.Batch != nil && rs.Reached != nil {
			// The batches of hosts are journaled: only the hosts reached
			// without an outcome of the step may have run it.
			unsafe = append(unsafe, x.reachedUndone(i, s)...)
			continue
		}
		if !x.mayHaveStarted(i) {
			// A batch before it never reached its last hosts.
			continue
		}
		// Which hosts it reached, the records that were lost would say.
		unsafe = append(unsafe, fmt.Sprintf("[%d] %s [hosts not recorded: the journal lost its last records]", i, s.Label()))
	}
	for k, name := range rs.InDoubt {
		if k.Index < 1 || k.Index > len(x.pb.Steps) {
			return fmt.Errorf("the run recorded step %d, and the playbook has %d steps now", k.Index, len(x.pb.Steps))
		}
		if !rechecks(x.pb.Steps[k.Index-1]) {
			unsafe = append(unsafe, fmt.Sprintf("[%d] %s [%s]", k.Index, name, k.Host))
		}
	}
	repeats := x.repeats()
	if len(unsafe) > 0 || len(repeats) > 0 {
		sort.Strings(unsafe)
		return &InDoubtError{Steps: unsafe, Repeats: repeats}
	}
	return nil
}

// repeats names the changes recorded done that this resume would make
// again (a step before them runs again on their host: a failed one, or
// one in doubt that is checked again) and whose type cannot check whether
// its change is there. A health check after a restart that runs again is
// right to run again; an append, a grant or a POST is not.
func (x *run) repeats() []string {
	first := map[string]StepKey{}
	note := func(k StepKey) {
		if k.Index < 1 || k.Index > len(x.pb.Steps) {
			return
		}
		if f, ok := first[k.Host]; !ok || k.Index < f.Index {
			first[k.Host] = k
		}
	}
	for k := range x.resume.Failed {
		note(k)
	}
	for k := range x.resume.InDoubt {
		note(k)
	}
	var out []string
	for k, o := range x.resume.Done {
		f, ok := first[k.Host]
		if !ok || f.Index >= k.Index || !x.keepsDone(k, o) {
			continue
		}
		s, fs := x.pb.Steps[k.Index-1], x.pb.Steps[f.Index-1]
		out = append(out, fmt.Sprintf("[%d] %s [%s] (done; [%d] %s runs again there before it)", k.Index, s.Label(), k.Host, f.Index, fs.Label()))
	}
	sort.Strings(out)
	return out
}

// keepsDone says whether the outcome o recorded for k stands even when
// stale: a change whose step cannot recheck its host, which only
// --retry-in-doubt makes again (checkResume asks the operator first).
func (x *run) keepsDone(k StepKey, o Outcome) bool {
	return o.Status == StatusChanged && !rechecks(x.pb.Steps[k.Index-1]) && !x.resume.RetryInDoubt
}

// reachedUndone names, as InDoubtError lists them, the hosts batch step
// s (index i) reached with no outcome of it recorded, nor in doubt (those
// are listed from InDoubt).
func (x *run) reachedUndone(i int, s *Step) []string {
	var out []string
	for h := range x.resume.Reached[s.Batch.First] {
		found := false
		for k := range x.resume.Done {
			found = found || k.Index == i && k.Host == h
		}
		for k := range x.resume.InDoubt {
			found = found || k.Index == i && k.Host == h
		}
		if !found {
			out = append(out, fmt.Sprintf("[%d] %s [%s]", i, s.Label(), h))
		}
	}
	return out
}

// resumed reports, with its recorded outcome, a target that an earlier
// attempt finished, or that the operator took as done (a step that cannot
// recheck its host: one that can is always checked again).
func (x *run) resumed(t *target) (hostOutcome, bool) {
	o, why, ok := x.resumedOutcome(t.key, t.step)
	if !ok {
		return hostOutcome{}, false
	}
	t.name = x.label(t)
	e := t.event(EventStepEnd)
	e.Status, e.Result, e.Message, e.Resumed = o.Status, o.Result, why, true
	x.sink.Emit(e)
	return hostOutcome{host: t.key.Host, status: o.Status, result: o.Result}, true
}

// runsAgain notes that this resume runs step k again (or for the first
// time) on its host: the later steps' outcomes there are stale.
func (x *run) runsAgain(k StepKey) {
	if x.resume == nil {
		return
	}
	x.rerunMu.Lock()
	defer x.rerunMu.Unlock()
	if i, ok := x.rerun[k.Host]; !ok || k.Index < i {
		x.rerun[k.Host] = k.Index
	}
}

// stale says whether the outcome recorded for k predates a step this
// resume ran on the same host before it: a check made before a change
// that is made again (a restart that failed, was tolerated, and runs
// now) says nothing about the host as it is, so it runs again too.
func (x *run) stale(k StepKey) bool {
	x.rerunMu.Lock()
	defer x.rerunMu.Unlock()
	i, ok := x.rerun[k.Host]
	return ok && i < k.Index
}

// resumedOutcome returns the outcome recorded for k, and why it stands.
func (x *run) resumedOutcome(k StepKey, s *Step) (Outcome, string, bool) {
	if x.resume == nil {
		return Outcome{}, "", false
	}
	if o, ok := x.resume.Done[k]; ok {
		if !x.stale(k) {
			return o, "done by an earlier attempt; not run again", true
		}
		if x.keepsDone(k, o) {
			// A step before it ran again on the host; its change cannot be
			// checked, so it stands (--skip-in-doubt) rather than be made twice.
			return o, "done by an earlier attempt; not run again (it cannot check whether its change is there)", true
		}
	}
	if x.resume.SkipInDoubt && !rechecks(s) && x.inDoubt(k) {
		return Outcome{Status: StatusChanged, Result: steps.Result{}}, "in doubt, taken as done (--skip-in-doubt)", true
	}
	return Outcome{}, "", false
}

// recheck prepares a target whose earlier attempt's outcome was lost for
// being checked again, which its plan then does (applying only what is
// not there yet): it waits for the work that attempt left running on the
// host to end.
func (x *run) recheck(ctx context.Context, t *target) error {
	if !x.inDoubt(t.key) {
		return nil
	}
	e := t.event(EventStepProgress)
	e.Message = "in doubt after an interrupted attempt: checking the host again"
	x.sink.Emit(e)
	if err := x.awaitLeftover(ctx, t.ex, t.key); err != nil {
		return err
	}
	if st, ok := t.step.Body.(steps.Settler); ok {
		return st.Settle(ctx, t.ex, x.leftoverWait())
	}
	return nil
}

// madeByLostAttempt turns the outcome of a target whose lost attempt was
// making the change, and whose recheck finds it made, into changed: the
// run changed the host, as an uninterrupted run reports.
func (x *run) madeByLostAttempt(t *target, o hostOutcome, plan *steps.Plan) (hostOutcome, *steps.Plan) {
	if !x.inDoubt(t.key) || !x.resume.Applying[t.key] && x.resume.Watermark <= 0 || o.status != StatusSkipped && o.status != StatusOK {
		return o, plan
	}
	o.status = StatusChanged
	if plan != nil {
		p := *plan
		p.Summary = "made by the interrupted attempt (found on recheck): " + p.Summary
		plan = &p
	}
	return o, plan
}

// inDoubt says whether an earlier attempt of a step may have made its
// change.
func (x *run) inDoubt(k StepKey) bool {
	if x.resume == nil {
		return false
	}
	if _, ok := x.resume.InDoubt[k]; ok {
		return true
	}
	_, done := x.resume.Done[k]
	return k.Index <= x.resume.Watermark && !done && !x.resume.StepsDone[k.Index] && x.mayHaveReached(k.Index, k.Host)
}

// mayHaveReached says whether step i may have run on host in a lost
// attempt, as far as the journal can tell: for a step of a batch, when
// the batch started on the host's batch (Resume.Reached); for any other
// step, always.
func (x *run) mayHaveReached(i int, host string) bool {
	s := x.pb.Steps[i-1]
	if x.resume.Reached == nil {
		return true
	}
	if s.Batch == nil {
		return x.mayHaveStarted(i)
	}
	return x.resume.Reached[s.Batch.First][host]
}

// mayHaveStarted says whether step i, not of a batch, may have started in
// a lost attempt: not when a batch of steps before it has not reached its
// last batch of hosts, whose record is on disk before any of its steps
// runs, and so before any step after the batch. A batch whose split the
// journal does not have (none of it is on disk, or it had no hosts) does
// not tell.
func (x *run) mayHaveStarted(i int) bool {
	if x.resume.Reached == nil {
		return true
	}
	for j := 0; j < i-1; j++ {
		b := x.pb.Steps[j].Batch
		if b == nil || b.First != j+1 || b.Last >= i {
			continue
		}
		split := x.resume.Batches[b.First]
		if len(split) == 0 {
			continue
		}
		for _, h := range split[len(split)-1] {
			if !x.resume.Reached[b.First][h] {
				return false
			}
		}
	}
	return true
}

// stepDone says whether the journal shows step i ended on all its hosts:
// a step-done record, or for a step that runs once its outcome.
func (x *run) stepDone(i int, s *Step) bool {
	if x.resume.StepsDone[i] {
		return true
	}
	if !s.single() {
		return false
	}
	for k := range x.resume.Done {
		if k.Index == i {
			return true
		}
	}
	return false
}
