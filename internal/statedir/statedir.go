// Package statedir opens runbook's state directory, where the locks, the
// lock audit log and the journals of runs live, so that nobody but the
// user running runbook can have put anything there or can change it.
//
// The directory is created with mode 0700 and refused when it, or one of
// its parents, belongs to another user (root excepted for parents) or is
// writable by group or others (a parent may be, with the sticky bit, as
// /tmp is). Every file in it is opened relative to the directory's own
// descriptor (openat), never following a symbolic link (O_NOFOLLOW), and
// refused unless it is a regular file of this user, with one link,
// writable by nobody else: a link planted there cannot make runbook write
// to a file elsewhere, and a journal a resume reads is one runbook wrote.
package statedir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is an opened and checked state directory, or a directory in it.
type Dir struct {
	path string
	fd   int
}

// UnsafeError is a state directory, or a file in it, that another user
// could have written or could change: runbook does not use it.
type UnsafeError struct {
	Path   string
	Reason string
	Fix    string
}

func (e *UnsafeError) Error() string {
	return fmt.Sprintf("%s %s; %s", e.Path, e.Reason, e.Fix)
}

const useOwn = "keep runbook's state in a directory of your own (--state-dir, or XDG_STATE_HOME)"

// Open opens the state directory at path, creating it (and its missing
// parents) with mode 0700 when create is set. A missing directory, when
// create is not set, is an error matching fs.ErrNotExist.
func Open(path string, create bool) (*Dir, error) {
	if path == "" {
		return nil, errors.New("no state directory: set XDG_STATE_HOME or HOME, or pass --state-dir")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	parent, missing, err := resolveParent(abs)
	if err != nil {
		return nil, err
	}
	// Walk down from / without following links, checking each parent.
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "/", Err: err}
	}
	cur := "/"
	if err := checkParent(fd, cur); err != nil {
		unix.Close(fd)
		return nil, err
	}
	comps := strings.Split(strings.TrimPrefix(parent, "/"), "/")
	if parent == "/" {
		comps = nil
	}
	comps = append(comps, missing...)
	for i, c := range comps {
		last := i == len(comps)-1
		next, err := openDir(fd, c, create)
		unix.Close(fd)
		cur = filepath.Join(cur, c)
		if err != nil {
			return nil, pathErr(cur, err, last)
		}
		fd = next
		if last {
			break
		}
		if err := checkParent(fd, cur); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}
	d := &Dir{path: cur, fd: fd}
	if err := d.checkOwn("state directory"); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// resolveParent returns the longest existing prefix of abs's parent with
// its symbolic links resolved, and the names below it that do not exist
// yet: links among the parents (/var/run to /run) are the system's, and
// each directory they lead to is checked.
func resolveParent(abs string) (string, []string, error) {
	dir, base := filepath.Dir(abs), filepath.Base(abs)
	missing := []string{base}
	for {
		r, err := filepath.EvalSymlinks(dir)
		if err == nil {
			return r, missing, nil
		}
		if !errors.Is(err, fs.ErrNotExist) || dir == "/" {
			return "", nil, err
		}
		missing = append([]string{filepath.Base(dir)}, missing...)
		dir = filepath.Dir(dir)
	}
}

// openDir opens the directory name in dirfd without following a link,
// creating it with mode 0700 when it is missing and create is set.
func openDir(dirfd int, name string, create bool) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if !errors.Is(err, unix.ENOENT) || !create {
			return fd, err
		}
		if err := unix.Mkdirat(dirfd, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, err
		}
	}
}

func pathErr(path string, err error, last bool) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		what := "a parent of the state directory"
		if last {
			what = "the state directory"
		}
		return &UnsafeError{Path: path, Reason: "is a symbolic link or not a directory, where " + what + " should be", Fix: "pass the directory itself with --state-dir"}
	}
	return &os.PathError{Op: "open", Path: path, Err: err}
}

// checkParent refuses a parent of the state directory that someone else
// could rename the state directory in: one owned by another user than
// root or this one, or writable by group or others without the sticky
// bit.
func checkParent(fd int, path string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	uid := uint32(os.Geteuid())
	if st.Uid != 0 && st.Uid != uid {
		return &UnsafeError{Path: path, Reason: fmt.Sprintf("(a parent of the state directory) is owned by uid %d, not by root or this user (uid %d), who could replace the state directory", st.Uid, uid), Fix: useOwn}
	}
	if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return &UnsafeError{Path: path, Reason: fmt.Sprintf("(a parent of the state directory) is writable by group or others (mode %04o) without the sticky bit, so they could replace the state directory", st.Mode&0o7777), Fix: "chmod go-w " + path + ", or " + useOwn}
	}
	return nil
}

// checkOwn refuses a directory of the state that is not this user's alone.
func (d *Dir) checkOwn(what string) error {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: d.path, Err: err}
	}
	uid := uint32(os.Geteuid())
	if st.Uid != uid {
		return &UnsafeError{Path: d.path, Reason: fmt.Sprintf("(the %s) is owned by uid %d, not by this user (uid %d)", what, st.Uid, uid), Fix: useOwn}
	}
	if st.Mode&0o022 != 0 {
		return &UnsafeError{Path: d.path, Reason: fmt.Sprintf("(the %s) is writable by group or others (mode %04o)", what, st.Mode&0o7777), Fix: "chmod go-w " + d.path + ", or " + useOwn}
	}
	return nil
}

// Path returns the directory's path.
func (d *Dir) Path() string { return d.path }

// Sub opens the directory name in d (locks, runs), creating it with mode
// 0700 when create is set, with the same checks as the state directory.
func (d *Dir) Sub(name string, create bool) (*Dir, error) {
	if err := plainName(name); err != nil {
		return nil, err
	}
	path := filepath.Join(d.path, name)
	fd, err := openDir(d.fd, name, create)
	if err != nil {
		return nil, pathErr(path, err, true)
	}
	sub := &Dir{path: path, fd: fd}
	if err := sub.checkOwn("state directory's " + name); err != nil {
		sub.Close()
		return nil, err
	}
	return sub, nil
}

func plainName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%q is not a file name", name)
	}
	return nil
}

// OpenFile opens the file name in d with flag (os.O_RDWR, os.O_CREATE,
// ...), never following a symbolic link, and refuses anything but a
// regular file of this user with one link, writable by nobody else.
func (d *Dir) OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	if err := plainName(name); err != nil {
		return nil, err
	}
	path := filepath.Join(d.path, name)
	// O_NONBLOCK: opening a FIFO must not hang before it is refused.
	fd, err := unix.Openat(d.fd, name, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, uint32(perm.Perm()))
	if errors.Is(err, unix.ELOOP) {
		return nil, &UnsafeError{Path: path, Reason: "is a symbolic link, which runbook never follows in its state directory", Fix: "remove it (and find out who made it)"}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if err := checkFile(fd, path); err != nil {
		unix.Close(fd)
		return nil, err
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
	}
	if err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

func checkFile(fd int, path string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	uid := uint32(os.Geteuid())
	const fix = "remove it (and find out who made it)"
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return &UnsafeError{Path: path, Reason: "is not a regular file", Fix: fix}
	case st.Uid != uid:
		return &UnsafeError{Path: path, Reason: fmt.Sprintf("is owned by uid %d, not by this user (uid %d)", st.Uid, uid), Fix: fix}
	case st.Nlink != 1:
		return &UnsafeError{Path: path, Reason: fmt.Sprintf("has %d hard links: it may be another file's", st.Nlink), Fix: fix}
	case st.Mode&0o022 != 0:
		return &UnsafeError{Path: path, Reason: fmt.Sprintf("is writable by group or others (mode %04o)", st.Mode&0o7777), Fix: "chmod go-w " + path}
	}
	return nil
}

// Remove removes the file name from d (never what a link points to).
func (d *Dir) Remove(name string) error {
	if err := plainName(name); err != nil {
		return err
	}
	if err := unix.Unlinkat(d.fd, name, 0); err != nil {
		return &os.PathError{Op: "remove", Path: filepath.Join(d.path, name), Err: err}
	}
	return nil
}

// Names lists the names in d.
func (d *Dir) Names() ([]string, error) {
	fd, err := unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: d.path, Err: err}
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	return f.Readdirnames(-1)
}

// Sync makes the directory's entries durable: a file created in it
// survives a power cut once Sync returns.
func (d *Dir) Sync() error {
	if err := unix.Fsync(d.fd); err != nil {
		return &os.PathError{Op: "fsync", Path: d.path, Err: err}
	}
	return nil
}

// Close releases the directory.
func (d *Dir) Close() error {
	if d == nil || d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}
