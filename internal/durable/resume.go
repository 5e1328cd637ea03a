package durable

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/runbook-dev/runbook/engine"
)

// The resume policy: which playbook a resume runs, when it is refused,
// and what the engine's resume receives from a run's state.

// ResumeOptions are the operator's choices for one resume (the flags of
// runbook resume). None is carried over to a later resume.
type ResumeOptions struct {
	// RetryInDoubt and SkipInDoubt are engine.Resume's: at most one.
	RetryInDoubt, SkipInDoubt bool
	// Yes answers the confirmation gates without asking.
	Yes bool
	// LeftoverWait bounds the wait for a command an interrupted attempt
	// left running (engine.Resume.LeftoverWait; 0: 10 minutes).
	LeftoverWait time.Duration
	// Hash is the SHA-256 of the playbook the resume runs; one other than
	// the run's was allowed by CheckPlaybook, and is recorded.
	Hash string
}

// NewAttempt describes a resume by operator, started now by this process
// on this machine (host name and boot id).
func NewAttempt(operator string) Attempt {
	a := Attempt{Operator: operator, PID: os.Getpid(), Started: time.Now(), BootID: BootID()}
	a.Host, _ = os.Hostname()
	return a
}

// PlaybookRef is what loads the playbook the run ran: the bundled
// playbook of that name, or its file by its absolute path (a resume may
// start from another directory), or as it was named.
func (h Header) PlaybookRef() string {
	if strings.HasPrefix(h.File, "bundled:") {
		return strings.TrimSuffix(strings.TrimPrefix(h.File, "bundled:"), ".yaml")
	}
	if h.Path != "" {
		return h.Path
	}
	return h.File
}

// Finished reports whether the run's last attempt ended well: there is
// nothing to resume.
func (st *State) Finished() bool { return st.Status == string(engine.StatusOK) }

// ChangedPlaybookError refuses to resume a run with a playbook that
// changed since the run started: the steps the run recorded may not be
// the steps it would run now.
type ChangedPlaybookError struct {
	RunID, File string
	// Then and Now are the playbook's SHA-256 when the run started and now.
	Then, Now string
}

func (e *ChangedPlaybookError) Error() string {
	return fmt.Sprintf("%s changed since run %s started (sha256 %.12s then, %.12s now): the steps the run recorded may not be the steps it would run now (the hash covers the vars files it lists and the playbooks it runs)",
		e.File, e.RunID, e.Then, e.Now)
}

// CheckPlaybook returns a *ChangedPlaybookError when the playbook file,
// whose SHA-256 is hash, is not the one the run started with, unless
// allowChanged (the operator compared them). Even then, a recorded step
// whose id moved refuses the resume (engine.Runner).
func (st *State) CheckPlaybook(file, hash string, allowChanged bool) error {
	if hash == st.Header.Hash || allowChanged {
		return nil
	}
	return &ChangedPlaybookError{RunID: st.Header.RunID, File: file, Then: st.Header.Hash, Now: hash}
}

// Resume returns what the engine's resume receives (engine.Runner.Resume)
// from the run's state, and the record of this attempt, a completed with
// the options that change what runs and the journal's lost window, which
// the resume writes before it runs anything. lost reports that the journal
// may have lost its last records (written before a reboot, or kept by a
// store that buffers them in the process): every step up to the run's
// watermark without a recorded outcome is then in doubt. A window an
// earlier resume found lost stays lost for every later one.
func (st *State) Resume(store Store, a Attempt, o ResumeOptions) (r *engine.Resume, rec Attempt, lost bool) {
	r = &engine.Resume{Done: st.Done, InDoubt: st.InDoubt, Failed: st.Failed, Applying: st.Applying, Leftovers: st.Leftovers, LeftoverWait: o.LeftoverWait,
		RetryInDoubt: o.RetryInDoubt, SkipInDoubt: o.SkipInDoubt, Confirmed: st.Confirmed,
		Watermark: st.LostWatermark, StepsDone: st.StepsDone, Batches: st.Batches}
	if st.Header.BatchRecords {
		r.Reached = st.Reached
	}
	if !st.Complete(keepsKilledWrites(store), a.Host, a.BootID) {
		r.Watermark = max(r.Watermark, st.Watermark)
		lost = true
	}
	if o.RetryInDoubt {
		a.Flags = append(a.Flags, "--retry-in-doubt")
	}
	if o.SkipInDoubt {
		a.Flags = append(a.Flags, "--skip-in-doubt")
	}
	if o.Yes {
		a.Flags = append(a.Flags, "--yes")
	}
	if o.Hash != "" && o.Hash != st.Header.Hash {
		a.Flags, a.Hash = append(a.Flags, "--allow-changed-playbook"), o.Hash
	}
	a.Watermark = r.Watermark
	return r, a, lost
}

// keepsKilledWrites reports whether a store's records written by a process
// that was killed are kept (by the kernel, until the machine stops): the
// local store's are, the shared store's wait in the process.
func keepsKilledWrites(s Store) bool {
	_, local := s.(*Local)
	return local
}
