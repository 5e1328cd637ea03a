package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Local runs on this machine, without SSH.
type Local struct{}

var _ Conn = Local{}

// Run runs c with /bin/sh in its own process group, so that cancelling ctx
// kills the command and everything it started.
func (Local) Run(ctx context.Context, c *Command) (*Output, error) {
	line, stdin := c.Line, c.Stdin
	var env []string
	if len(c.Env) > 0 {
		if err := checkEnvNames(c.Env); err != nil {
			return nil, err
		}
		if c.Become != "" {
			// sudo resets the environment: the variables go through
			// standard input, as over SSH.
			var pre []byte
			line, pre = envWrapper(line, c.Env)
			stdin = append(pre, stdin...)
		} else {
			env = os.Environ()
			for k, v := range c.Env {
				env = append(env, k+"="+v)
			}
		}
	}
	cmd := exec.Command("/bin/sh", "-c", BecomeLine(line, c.Become, os.Geteuid() == 0))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	stdout, stderr, over := outputBuffers(c)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if c.Started != nil {
		c.Started(cmd.Process.Pid)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-over.reached():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case err = <-done:
		case <-time.After(2 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			err = <-done
		}
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		return nil, context.Cause(ctx)
	}
	return ended(stdout, stderr, err, localExitCode)
}

// localExitCode is the exit status of a process of this machine, 128 + the
// signal's number for one killed by a signal, as a shell reports it.
func localExitCode(err error) (int, bool) {
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return 0, false
	}
	code := exitErr.ExitCode()
	if code < 0 {
		code = 128 + int(exitErr.Sys().(syscall.WaitStatus).Signal())
	}
	return code, true
}

// ReadFile reads a file of this machine.
func (Local) ReadFile(_ context.Context, path string) ([]byte, error) {
	return os.ReadFile(path)
}

// Stat describes a file of this machine.
func (Local) Stat(_ context.Context, path string) (*FileInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	return fileInfo(fi), nil
}

// Resolve follows symbolic links of this machine.
func (Local) Resolve(_ context.Context, path string) (string, error) {
	return resolveLinks(path, func(p string) (string, bool, error) {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) || err == nil && fi.Mode()&fs.ModeSymlink == 0 {
			return "", false, nil
		}
		if err != nil {
			return "", false, err
		}
		t, err := os.Readlink(p)
		return t, err == nil, err
	}, func(p string) (bool, error) {
		_, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return err == nil, err
	})
}

// WriteFile replaces the file path resolves to atomically, keeping an
// existing file's mode, owner and extended attributes (ACLs, SELinux
// context).
func (l Local) WriteFile(ctx context.Context, path string, data []byte, opt WriteOptions) error {
	r, err := opt.replacing(ctx, l, path)
	if err != nil {
		return err
	}
	path = r.path
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".runbook-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if err := r.own(f, os.Geteuid() == 0); err != nil {
		return err
	}
	if r.exists {
		if err := copyXattrs(path, f); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w; nothing was changed", path, err)
		}
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// Sync the directory so the rename survives a crash.
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// copyXattrs gives f the extended attributes of the file at from: its
// ACLs (system.posix_acl_*), SELinux context (security.selinux) and
// others, so that a replaced file stays readable by whom it was and keeps
// its label. A file system without extended attributes has none to copy.
func copyXattrs(from string, f *os.File) error {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(from, buf)
	if errors.Is(err, unix.ERANGE) {
		if n, err = unix.Llistxattr(from, nil); err == nil {
			buf = make([]byte, n)
			n, err = unix.Llistxattr(from, buf)
		}
	}
	if errors.Is(err, unix.ENOTSUP) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list the extended attributes: %w", err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		sz, err := unix.Lgetxattr(from, name, nil)
		if err != nil {
			return fmt.Errorf("read the extended attribute %s: %w", name, err)
		}
		v := make([]byte, sz)
		if sz, err = unix.Lgetxattr(from, name, v); err != nil {
			return fmt.Errorf("read the extended attribute %s: %w", name, err)
		}
		if err := unix.Fsetxattr(int(f.Fd()), name, v[:sz], 0); err != nil {
			return fmt.Errorf("copy the extended attribute %s (ACL, SELinux context) to the new file: %w", name, err)
		}
	}
	return nil
}

// Remove deletes a file of this machine.
func (Local) Remove(_ context.Context, path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// MkdirAll creates a directory of this machine and its parents.
func (Local) MkdirAll(_ context.Context, path string) error { return os.MkdirAll(path, 0o755) }

// Dial connects from this machine.
func (Local) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// Close does nothing: a local connection holds no resources.
func (Local) Close() error { return nil }

// Stream runs c with its standard input and output as a connection.
func (Local) Stream(ctx context.Context, c *Command) (net.Conn, error) {
	cmd := exec.Command("/bin/sh", "-c", BecomeLine(c.Line, c.Become, os.Geteuid() == 0))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	w, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	r, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr boundedBuffer
	stderr.max = 4096
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &streamConn{w: w, r: r, closer: func() error {
		// A relay ends at the end of its input, which Close has just
		// closed; TERM is for one that does not. (runuser, which become
		// uses as root, waits 2 seconds after a TERM before it exits.)
		// Wait closes the output pipe: it starts only now, when nothing
		// reads from it any more.
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			<-done
		}
		return nil
	}}, nil
}
