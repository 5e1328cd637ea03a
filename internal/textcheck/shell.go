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
	"strconv"
	"sync"
)

// Dialect is the shell commands are checked as. runbook runs every command
// with /bin/sh -c, also under become (runuser or sudo -u USER -- /bin/sh
// -c): dash on Debian, bash in POSIX mode on RHEL. So a #! line in a
// command is a comment, not a choice of shell, and a command must be
// POSIX sh to run the same on both; shellcheck -s overrides any shebang or
// shell directive in the text.
const Dialect = "sh"

// maxBatch bounds the scripts one shellcheck process reads: small enough
// that the processes share the work of a large tree, large enough that
// starting them costs little.
const maxBatch = 200

// shellComment is one finding of shellcheck (its json1 format).
type shellComment struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Level   string `json:"level"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// shellJob is one distinct script: done is closed once comments are set.
type shellJob struct {
	text     string
	done     chan struct{}
	comments []shellComment
}

// shellRunner checks scripts with shellcheck, each distinct text once.
// Scripts submitted while every process is busy wait in a queue, and the
// next process to start takes them all (up to maxBatch): one process per
// text would spend more time starting than checking.
type shellRunner struct {
	ctx  context.Context
	path string
	dir  string

	mu      sync.Mutex
	cache   map[string]*shellJob
	queue   []*shellJob
	running int
	batches int
	err     error
}

func newShellRunner(ctx context.Context, path string) (*shellRunner, error) {
	dir, err := os.MkdirTemp("", "runbook-shellcheck-")
	if err != nil {
		return nil, err
	}
	return &shellRunner{ctx: ctx, path: path, dir: dir, cache: map[string]*shellJob{}}, nil
}

// submit queues text for checking, once, and returns its job.
func (r *shellRunner) submit(text string) *shellJob {
	r.mu.Lock()
	defer r.mu.Unlock()
	if j, ok := r.cache[text]; ok {
		return j
	}
	j := &shellJob{text: text, done: make(chan struct{})}
	r.cache[text] = j
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
		r.batches++
		seq := r.batches
		r.mu.Unlock()
		err := r.run(seq, batch)
		if err != nil {
			r.mu.Lock()
			if r.err == nil {
				r.err = err
			}
			r.mu.Unlock()
		}
		for _, j := range batch {
			close(j.done)
		}
	}
}

// run checks a batch of scripts with one shellcheck process.
func (r *shellRunner) run(seq int, batch []*shellJob) error {
	files := make(map[string]*shellJob, len(batch))
	args := []string{"--norc", "--format=json1", "--shell=" + Dialect}
	for i, j := range batch {
		f := filepath.Join(r.dir, strconv.Itoa(seq)+"-"+strconv.Itoa(i)+".sh")
		if err := os.WriteFile(f, []byte(j.text), 0o600); err != nil {
			return err
		}
		files[f] = j
		args = append(args, f)
	}
	defer func() {
		for f := range files {
			os.Remove(f)
		}
	}()
	cmd := exec.CommandContext(r.ctx, r.path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	// Exit status 1 means it found something; anything else is a failure
	// of shellcheck itself.
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		return fmt.Errorf("shellcheck: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	var out struct {
		Comments []shellComment `json:"comments"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return fmt.Errorf("shellcheck: its report does not read as json1: %v", err)
	}
	for _, c := range out.Comments {
		if j, ok := files[c.File]; ok {
			j.comments = append(j.comments, c)
		}
	}
	return nil
}

func (r *shellRunner) failure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *shellRunner) close() error { return os.RemoveAll(r.dir) }
