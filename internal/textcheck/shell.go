package textcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Dialect is the shell commands are checked as. runbook runs every command
// with /bin/sh -c, also under become (runuser or sudo -u USER -- /bin/sh
// -c): dash on Debian, bash in POSIX mode on RHEL. So a #! line in a
// command is a comment, not a choice of shell, and a command must be
// POSIX sh to run the same on both; shellcheck -s overrides any shebang or
// shell directive in the text.
const Dialect = "sh"

// excluded are the shellcheck codes that are never a problem in a
// playbook. SC1091: a sourced file (". /etc/os-release") is on the target
// host, never beside the playbook, so shellcheck can never follow it.
const excluded = "SC1091"

// maxBatch bounds the scripts one shellcheck process reads. Its own work
// per script grows with the number of scripts it has read (about 0.9 ms
// each up to a few hundred, twice that at 10,000), and starting it costs
// about 5 ms: 100 is past the knee of both.
const maxBatch = 100

// Limits bound what a shellcheck process may take: shellcheck is
// exponential on some texts (command substitutions nested in quotes 20
// deep: 309 bytes it never finishes) and superlinear on large ones (5 MB:
// minutes and gigabytes).
type Limits struct {
	// MaxText is the largest command read, in bytes; a larger one is
	// not checked, and a warning says so.
	MaxText int
	// Timeout bounds one shellcheck process.
	Timeout time.Duration
	// Memory bounds one shellcheck process's address space, in bytes
	// (ulimit -v); 0 for no bound.
	Memory int64
}

// DefaultLimits are validate's: shellcheck reads a 64 KiB command in
// about half a second with 35 MB.
var DefaultLimits = Limits{MaxText: 64 << 10, Timeout: 30 * time.Second, Memory: 2 << 30}

// shellComment is one finding of shellcheck (its json1 format).
type shellComment struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Level   string `json:"level"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// shellJob is one distinct script: done is closed once comments (or
// limit, when shellcheck could not finish it) are set.
type shellJob struct {
	text     string
	done     chan struct{}
	comments []shellComment
	limit    string
}

// shellRunner checks scripts with shellcheck, each distinct text once.
// Scripts submitted while every process is busy wait in a queue, and the
// next process to start takes them (up to maxBatch): one process per
// text would spend more time starting than checking. The scripts reach
// shellcheck through pipes (/dev/fd/N), so no file holds a command's text
// on the disk, even after validate is killed.
type shellRunner struct {
	ctx    context.Context
	path   string
	limits Limits
	env    []string
	// args are shellcheck's arguments before the scripts.
	args []string
	// results is nil without a cache between runs; identify sets its
	// key's beginning, once, before the first look-up.
	results  *resultCache
	identify sync.Once

	mu      sync.Mutex
	cache   map[string]*shellJob
	queue   []*shellJob
	running int
	err     error
	stats   Stats
}

// Stats count what became of the distinct shell texts of a run.
type Stats struct {
	// Checked is the number given to shellcheck; Cached the number
	// whose findings were read from the cache instead.
	Checked, Cached int
}

func newShellRunner(ctx context.Context, path string, limits Limits) *shellRunner {
	// SHELLCHECK_OPTS would change what shellcheck reports (--severity,
	// --exclude, --enable): the findings of validate must not depend on
	// the environment it runs in, as --norc makes them not depend on a
	// .shellcheckrc.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHELLCHECK_OPTS=") {
			env = append(env, kv)
		}
	}
	args := []string{"--norc", "--format=json1", "--shell=" + Dialect, "--exclude=" + excluded}
	return &shellRunner{ctx: ctx, path: path, limits: limits, env: env, args: args, cache: map[string]*shellJob{}}
}

// localeVars are the variables that choose how shellcheck decodes a text
// (GHC's runtime reads files in the locale's encoding).
var localeVars = []string{"LC_ALL", "LC_CTYPE", "LANG"}

// identity is what, besides a text, makes shellcheck's findings on it
// what they are: its version, the program itself (its real path, size
// and modification time: two builds or wrappers saying the same version
// are two programs; a hash of it would cost 50 ms a run for 19 MB), its
// arguments and its locale.
func (r *shellRunner) identity() ([]string, error) {
	real, err := filepath.EvalSymlinks(r.path)
	if err != nil {
		return nil, fmt.Errorf("shellcheck: %w (the cache of its findings names entries by it)", err)
	}
	st, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("shellcheck: %w (the cache of its findings names entries by it)", err)
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.limits.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.path, "--version")
	cmd.Env = r.env
	boundProcess(cmd)
	out, err := cmd.Output()
	if err != nil {
		if r.ctx.Err() != nil {
			return nil, fmt.Errorf("shellcheck --version stopped: %w (validate was interrupted)", r.ctx.Err())
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("did not finish within %s", r.limits.Timeout)
		}
		return nil, fmt.Errorf("%s --version: %v (the cache of its findings names entries by its version)", r.path, err)
	}
	id := []string{string(out), fmt.Sprintf("%s %d %d", real, st.Size(), st.ModTime().UnixNano()), strings.Join(r.args, " ")}
	for _, kv := range r.env {
		for _, v := range localeVars {
			if strings.HasPrefix(kv, v+"=") {
				id = append(id, kv)
			}
		}
	}
	return id, nil
}

// cached returns the findings the cache holds on text.
func (r *shellRunner) cached(text string) ([]shellComment, bool) {
	if r.results == nil {
		return nil, false
	}
	r.identify.Do(func() {
		if err := r.results.open(); err != nil {
			r.results.fail(err)
			return
		}
		id, err := r.identity()
		if err != nil {
			r.results.fail(err)
			return
		}
		r.results.setIdentity(id...)
	})
	return r.results.get(text)
}

// submit queues text for checking, once, and returns its job: done at
// once when the cache holds its findings.
func (r *shellRunner) submit(text string) *shellJob {
	r.mu.Lock()
	if j, ok := r.cache[text]; ok {
		r.mu.Unlock()
		return j
	}
	j := &shellJob{text: text, done: make(chan struct{})}
	r.cache[text] = j
	r.mu.Unlock()
	// Another caller of the same text waits on j.done meanwhile.
	if cs, ok := r.cached(text); ok {
		j.comments = cs
		r.mu.Lock()
		r.stats.Cached++
		r.mu.Unlock()
		close(j.done)
		return j
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Checked++
	r.queue = append(r.queue, j)
	if r.running < runtime.GOMAXPROCS(0) {
		r.running++
		go r.work()
	}
	return j
}

// work runs batches until the queue is empty.
func (r *shellRunner) work() {
	for {
		r.mu.Lock()
		if len(r.queue) == 0 {
			r.running--
			r.mu.Unlock()
			return
		}
		n := min(len(r.queue), maxBatch)
		batch := r.queue[:n:n]
		r.queue = r.queue[n:]
		r.mu.Unlock()
		err := r.check(batch)
		if err != nil {
			r.mu.Lock()
			if r.err == nil {
				r.err = err
			}
			r.mu.Unlock()
		}
		for _, j := range batch {
			// What shellcheck could not finish under a limit, or
			// at all, is not kept: another run may finish it.
			if err == nil && j.limit == "" && r.results != nil {
				r.results.put(j.text, j.comments)
			}
			close(j.done)
		}
	}
}

// check checks a batch. When shellcheck runs out of time or memory, each
// script of the batch is checked alone, so that the one it could not
// finish is named and the others are still checked.
func (r *shellRunner) check(batch []*shellJob) error {
	limit, err := r.run(batch)
	if err != nil || limit == "" {
		return err
	}
	if len(batch) == 1 {
		batch[0].limit = limit
		return nil
	}
	for _, j := range batch {
		j.comments = nil
		if err := r.check([]*shellJob{j}); err != nil {
			return err
		}
	}
	return nil
}

// run checks a batch of scripts with one shellcheck process. It returns
// the limit the process hit (time, memory), or a failure of shellcheck
// itself.
func (r *shellRunner) run(batch []*shellJob) (limit string, err error) {
	ctx, cancel := context.WithTimeout(r.ctx, r.limits.Timeout)
	defer cancel()
	args := slices.Clone(r.args)
	files := make(map[string]*shellJob, len(batch))
	var extra, writers []*os.File
	defer func() {
		for _, f := range append(extra, writers...) {
			f.Close()
		}
	}()
	for i, j := range batch {
		pr, pw, err := os.Pipe()
		if err != nil {
			return "", err
		}
		extra, writers = append(extra, pr), append(writers, pw)
		// The child's descriptor 3+i is the i-th of ExtraFiles.
		f := "/dev/fd/" + strconv.Itoa(3+i)
		files[f] = j
		args = append(args, f)
	}
	name, args := r.path, args
	if r.limits.Memory > 0 {
		// shellcheck's runtime accepts no heap limit (+RTS -M is
		// disabled in its builds), and Go cannot set a child's rlimit:
		// the shell sets it, then becomes shellcheck.
		args = append([]string{"-c", `ulimit -v "$1" 2>/dev/null; shift; exec "$0" "$@"`, r.path, strconv.FormatInt(r.limits.Memory>>10, 10)}, args...)
		name = "/bin/sh"
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = r.env
	cmd.ExtraFiles = extra
	boundProcess(cmd)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		if r.ctx.Err() != nil {
			return "", fmt.Errorf("shellcheck stopped: %w (validate was interrupted)", r.ctx.Err())
		}
		return "", fmt.Errorf("shellcheck: %w", err)
	}
	for _, f := range extra {
		f.Close()
	}
	extra = nil
	var wg sync.WaitGroup
	for i, w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// An error here is shellcheck gone early: its exit says why.
			w.WriteString(batch[i].text)
			w.Close()
		}()
	}
	err = cmd.Wait()
	for _, w := range writers {
		w.Close() // unblocks a writer shellcheck stopped reading
	}
	wg.Wait()
	writers = nil
	switch {
	case r.ctx.Err() != nil:
		return "", fmt.Errorf("shellcheck stopped: %w (validate was interrupted)", r.ctx.Err())
	case ctx.Err() != nil:
		return fmt.Sprintf("did not finish within %s", r.limits.Timeout), nil
	case bytes.Contains(stderr.Bytes(), []byte("out of memory")):
		return fmt.Sprintf("ran out of memory (limit %d MiB)", r.limits.Memory>>20), nil
	}
	// Exit status 1 means it found something; anything else is a failure
	// of shellcheck itself.
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		return "", fmt.Errorf("shellcheck: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	var out struct {
		Comments []shellComment `json:"comments"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return "", fmt.Errorf("shellcheck: its report does not read as json1: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	for _, c := range out.Comments {
		if j, ok := files[c.File]; ok {
			j.comments = append(j.comments, c)
		}
	}
	return "", nil
}

// boundProcess makes cmd's end, when its context ends (a limit, or
// validate interrupted), the end of every process it started: it runs in
// a process group of its own, killed whole, and Wait returns at most a
// second after the kill even if a process outside the group (one that
// left it) still holds its output. shellcheck run by a wrapper script
// (docker run, nix) is a child of the shell, which a kill of the shell
// alone would leave running, and Wait waiting on its output.
func boundProcess(cmd *exec.Cmd) {
	cmd.SysProcAttr = procAttr()
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = time.Second
}

func (r *shellRunner) failure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}
