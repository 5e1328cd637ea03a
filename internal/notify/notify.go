// Package notify tells people about runs: hooks (a command, an HTTP
// webhook) given a JSON summary when a run starts and when it ends. A hook
// never changes a run's outcome: each has a time limit, and its failure is
// only logged.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/runbook-dev/runbook/internal/redact"
)

// Outcome is what a summary reports: the start of a run, or how it ended.
type Outcome string

// The outcomes, as hooks' events: name them in a hook's events.
const (
	Start Outcome = "start"
	// Success is a run that went through all its steps.
	Success Outcome = "success"
	// Failure is a run a step (or anything else) failed.
	Failure Outcome = "failure"
	// Refused is a run stopped before any change: a guard failed, a
	// confirmation was not given, or its lock is held.
	Refused Outcome = "refused"
	// Interrupted is a run stopped by Ctrl-C or SIGTERM.
	Interrupted Outcome = "interrupted"
	// Partial is a run that went through its steps with failures the
	// playbook tolerates (exit status 4).
	Partial Outcome = "partial"
)

var outcomes = []Outcome{Start, Success, Failure, Refused, Interrupted, Partial}

// Valid reports whether o is one of the outcomes.
func (o Outcome) Valid() bool {
	for _, x := range outcomes {
		if o == x {
			return true
		}
	}
	return false
}

// OutcomeList names the outcomes, for messages.
func OutcomeList() string {
	s := make([]string, len(outcomes))
	for i, o := range outcomes {
		s[i] = string(o)
	}
	return strings.Join(s, ", ")
}

// DefaultTimeout is a hook's time limit when its configuration gives none.
const DefaultTimeout = 10 * time.Second

// Summary is what a hook is given, as JSON.
type Summary struct {
	// Event is start, or the outcome of the run.
	Event    Outcome `json:"event"`
	RunID    string  `json:"run_id"`
	Playbook string  `json:"playbook"`
	// Params are the run's parameter values; secrets are never among
	// them (and are masked should a value hold one).
	Params map[string]any `json:"params"`
	// Operator is who ran it (the user behind sudo), Host the machine
	// runbook ran on.
	Operator string `json:"operator"`
	Host     string `json:"host"`
	// Resumed is set for a resume of an earlier run.
	Resumed bool `json:"resumed,omitempty"`
	// FailedStep and FailedHost name the step that failed and where;
	// Message says why the run failed or was refused.
	FailedStep string `json:"failed_step,omitempty"`
	FailedHost string `json:"failed_host,omitempty"`
	Message    string `json:"message,omitempty"`
	// Started is when the run (or resume) started; DurationSeconds how
	// long it took, 0 at the start.
	Started         time.Time `json:"started"`
	DurationSeconds float64   `json:"duration_seconds"`
	// Text is the summary in one line, for chat webhooks (Slack,
	// Mattermost and Rocket.Chat show a payload's text).
	Text string `json:"text"`
}

// Hook is a command to run and/or a URL to post to.
type Hook struct {
	// Name names the hook in messages.
	Name string
	// Command is run (without a shell) with the summary as JSON on its
	// stdin and in RUNBOOK_EVENT, RUNBOOK_RUN_ID, RUNBOOK_PLAYBOOK and
	// RUNBOOK_TEXT; it gets PATH, HOME, USER, LANG and TZ of runbook's
	// environment and nothing else (no secret a run reads from it).
	Command []string
	// URL is posted the summary as JSON (Content-Type application/json).
	URL     string
	Headers map[string]string
	// Events are the outcomes the hook wants; none is all.
	Events []Outcome
	// Playbooks are the playbook names (path.Match patterns: pg-ha/*) the
	// hook is for; none is all.
	Playbooks []string
	// Timeout bounds the hook's work: the command is killed (its process
	// group) and the request abandoned when it passes.
	Timeout time.Duration
}

// Check reports what is wrong with a hook's configuration.
func (h *Hook) Check() error {
	if len(h.Command) == 0 && h.URL == "" {
		return fmt.Errorf("hook %s: give a command, a url or both", h.Name)
	}
	if h.URL != "" && !strings.HasPrefix(h.URL, "http://") && !strings.HasPrefix(h.URL, "https://") {
		return fmt.Errorf("hook %s: url %q: want an http:// or https:// URL", h.Name, h.URL)
	}
	for _, p := range h.Playbooks {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("hook %s: playbooks: %q: %v", h.Name, p, err)
		}
	}
	return nil
}

// wants reports whether the hook is for this summary.
func (h *Hook) wants(s *Summary) bool {
	if len(h.Events) > 0 && !contains(h.Events, s.Event) {
		return false
	}
	if len(h.Playbooks) == 0 {
		return true
	}
	for _, p := range h.Playbooks {
		if ok, _ := path.Match(p, s.Playbook); ok {
			return true
		}
	}
	return false
}

func contains(list []Outcome, o Outcome) bool {
	for _, x := range list {
		if x == o {
			return true
		}
	}
	return false
}

// Notifier sends summaries to its hooks.
type Notifier struct {
	Hooks []Hook
	// Redactor masks the run's secrets in every field of a summary.
	Redactor *redact.Redactor
	// Log is told of each hook that fails or passes its time limit.
	Log io.Writer
	// Getenv gives the variables a hook command inherits.
	Getenv func(string) string

	logMu sync.Mutex
}

// Notify gives s to every hook that wants it, all at once, and returns
// once each is done or has passed its time limit: it takes no longer than
// the largest limit of those hooks. It never fails; a hook's failure is
// written to Log.
func (n *Notifier) Notify(ctx context.Context, s Summary) {
	n.NotifySince(ctx, s, time.Now())
}

// NotifySince is Notify with each hook's time limit counted from since
// (the moment the event happened) rather than from when its call starts:
// a call that waited for an earlier one (a run's end behind its start)
// still ends within its limit of the event.
func (n *Notifier) NotifySince(ctx context.Context, s Summary, since time.Time) {
	if n == nil || len(n.Hooks) == 0 {
		return
	}
	s = n.redacted(s)
	if s.Text == "" {
		s.Text = Text(&s)
	}
	body, err := json.Marshal(s)
	if err != nil {
		n.logf("hooks: summary: %v", err)
		return
	}
	var wg sync.WaitGroup
	for i := range n.Hooks {
		h := &n.Hooks[i]
		if !h.wants(&s) {
			continue
		}
		wg.Go(func() {
			if err := n.send(ctx, h, &s, body, since); err != nil {
				n.logf("hook %s (%s): %v; the run's outcome is unchanged", h.Name, s.Event, err)
			}
		})
	}
	wg.Wait()
}

// logf writes a line to Log; hooks end at once, each on its goroutine.
func (n *Notifier) logf(format string, args ...any) {
	n.logMu.Lock()
	defer n.logMu.Unlock()
	if n.Log != nil {
		fmt.Fprintf(n.Log, "runbook: "+format+"\n", args...)
	}
}

// redacted masks the secrets in every text of s.
func (n *Notifier) redacted(s Summary) Summary {
	r := n.Redactor
	if r.Empty() {
		return s
	}
	if p, ok := r.Value(s.Params).(map[string]any); ok {
		s.Params = p
	}
	for _, f := range []*string{&s.RunID, &s.Playbook, &s.Operator, &s.Host, &s.FailedStep, &s.FailedHost, &s.Message, &s.Text} {
		*f = r.String(*f)
	}
	return s
}

// send gives the summary to one hook within its time limit.
func (n *Notifier) send(ctx context.Context, h *Hook, s *Summary, body []byte, since time.Time) error {
	limit := h.Timeout
	if limit <= 0 {
		limit = DefaultTimeout
	}
	ctx, cancel := context.WithDeadlineCause(ctx, since.Add(limit), fmt.Errorf("passed its time limit of %s", limit))
	defer cancel()
	var errs []error
	if len(h.Command) > 0 {
		if err := n.run(ctx, h, s, body); err != nil {
			errs = append(errs, fmt.Errorf("command %s: %w", h.Command[0], err))
		}
	}
	if h.URL != "" {
		if err := post(ctx, h, body); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// run runs a hook's command with the summary on its stdin. At the limit
// its whole process group is killed, and what it left holding its output
// is not waited for.
func (n *Notifier) run(ctx context.Context, h *Hook, s *Summary, body []byte) error {
	cmd := exec.CommandContext(ctx, h.Command[0], h.Command[1:]...)
	cmd.Stdin = bytes.NewReader(body)
	var out bytes.Buffer
	// One writer for both: exec then writes to it from one goroutine.
	w := &limited{w: &out, n: 4096}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 100 * time.Millisecond
	getenv := n.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	for _, k := range []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ"} {
		if v := getenv(k); v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.Env = append(cmd.Env, "RUNBOOK_EVENT="+string(s.Event), "RUNBOOK_RUN_ID="+s.RunID, "RUNBOOK_PLAYBOOK="+s.Playbook, "RUNBOOK_TEXT="+s.Text)
	err := cmd.Run()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if err != nil {
		if o := strings.TrimSpace(out.String()); o != "" {
			return fmt.Errorf("%w: %s", err, n.Redactor.String(o))
		}
		return err
	}
	return nil
}

// post posts the summary to a hook's URL; any status but 2xx fails.
func post(ctx context.Context, h *Hook, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return errors.New("url: not a valid URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "runbook")
	for k, v := range h.Headers {
		req.Header.Set(k, v)
	}
	// A webhook's URL is a credential (chat services put the token in its
	// path): messages name its scheme and host only, and the client's
	// errors, which quote the URL, are unwrapped.
	where := req.URL.Scheme + "://" + req.URL.Host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("post %s: %w", where, context.Cause(ctx))
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("post %s: %w", where, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post %s: %s: %s", where, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// Text is a summary in one line.
func Text(s *Summary) string {
	who := s.Operator + "@" + s.Host
	switch s.Event {
	case Start:
		verb := "started"
		if s.Resumed {
			verb = "resumed"
		}
		return fmt.Sprintf("runbook: %s %s (run %s) by %s", s.Playbook, verb, s.RunID, who)
	case Success:
		return fmt.Sprintf("runbook: %s succeeded (run %s) by %s in %.1fs", s.Playbook, s.RunID, who, s.DurationSeconds)
	}
	t := fmt.Sprintf("runbook: %s %s (run %s) by %s after %.1fs", s.Playbook, strings.ToUpper(string(s.Event)), s.RunID, who, s.DurationSeconds)
	if s.FailedStep != "" {
		t += fmt.Sprintf(" at step %q", s.FailedStep)
		if s.FailedHost != "" {
			t += " on " + s.FailedHost
		}
	}
	if s.Message != "" {
		t += ": " + s.Message
	}
	return t
}

// limited writes up to n bytes to w and drops the rest.
type limited struct {
	w io.Writer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	k := min(len(p), l.n)
	if k > 0 {
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
