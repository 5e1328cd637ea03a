// Package transport runs commands, moves files and dials TCP on a host,
// over SSH or on this machine, behind one interface.
package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	pathpkg "path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pkg/sftp"
)

// Conn is a connection to one host, shared by every step that runs there.
// All methods are safe for concurrent use.
type Conn interface {
	// Run runs a command line with /bin/sh and waits for it. Cancelling ctx
	// kills the command.
	Run(ctx context.Context, c *Command) (*Output, error)
	// ReadFile returns a file's content; a missing file gives an error
	// matching fs.ErrNotExist.
	ReadFile(ctx context.Context, path string) ([]byte, error)
	// Stat describes a file; a missing file gives fs.ErrNotExist.
	Stat(ctx context.Context, path string) (*FileInfo, error)
	// Resolve returns the file a path names once symbolic links are
	// followed: the path itself when it is no link or does not exist. A
	// link whose target does not exist is an error.
	Resolve(ctx context.Context, path string) (string, error)
	// WriteFile replaces a file atomically: a temporary file in the
	// directory of the file the path resolves to (a symbolic link is
	// followed, never replaced), synced, then renamed over it. The new
	// file keeps the old one's mode, owner and group, ACLs and other
	// extended attributes (an SELinux context).
	WriteFile(ctx context.Context, path string, data []byte, opt WriteOptions) error
	// Remove deletes a file; a missing file is not an error.
	Remove(ctx context.Context, path string) error
	// MkdirAll creates a directory and its parents (mode 0755).
	MkdirAll(ctx context.Context, path string) error
	// Dial opens a TCP connection from the host, so that a service that
	// listens only on the host's own interfaces can be reached.
	Dial(ctx context.Context, network, addr string) (net.Conn, error)
	// Stream starts a command and returns its standard input and output
	// as a connection; closing it ends the command.
	Stream(ctx context.Context, c *Command) (net.Conn, error)
	// Close releases the connection.
	Close() error
}

// Command is a command to run on a host.
type Command struct {
	// Line is a shell command line. It must not contain secrets: the
	// process table shows it. Pass them in Env or Stdin.
	Line string
	// Become runs the command as another user.
	Become string
	// Env is added to the command's environment.
	Env map[string]string
	// Stdin is fed to the command's standard input.
	Stdin []byte
	// MaxOutput bounds each of stdout and stderr; 0 means DefaultMaxOutput.
	MaxOutput int
	// StopAtLimit stops the command (TERM, then KILL, to its process
	// group) once it prints more than MaxOutput, instead of reading on
	// until it ends: for a command that only reads (tail -f, yes would
	// otherwise run until a timeout, or forever). The output comes back
	// Truncated.
	StopAtLimit bool
	// Stdout, when set, receives the standard output as it arrives instead
	// of Output.Stdout keeping it (capture saves a large file without
	// holding it in memory). MaxOutput bounds it as it bounds the kept
	// output: past it nothing more is written and Output.Truncated is set.
	// Its write errors are its own to keep: the command is not stopped.
	Stdout io.Writer
	// Started, if set, is called with the id of the command's process group
	// on its host once it runs, so that a journal can find the command again
	// if this process dies while the command still runs.
	Started func(pgid int)
}

// GroupCheck is a read-only shell line that tells whether process group
// pgid runs on a host, and since when: it prints "gone", or "running N"
// with N the seconds since its oldest live process started ("running ?"
// where pgrep is missing). Processes of any owner count; zombies do not
// (they can change nothing, and an init that is slow to reap leaves them).
func GroupCheck(pgid int) string {
	g := strconv.Itoa(pgid)
	return `if command -v pgrep >/dev/null 2>&1; then max=-1; ` +
		`for p in $(pgrep -g ` + g + `); do set -- $(ps -o stat=,etimes= -p "$p" 2>/dev/null); ` +
		`case "$1" in Z*|"") continue;; esac; [ "$2" -gt "$max" ] && max=$2; done; ` +
		`if [ "$max" -lt 0 ]; then echo gone; else echo "running $max"; fi; ` +
		`elif kill -0 -- -` + g + ` 2>/dev/null; then echo "running ?"; else echo gone; fi`
}

// DefaultMaxOutput bounds what is kept of a command's output.
const DefaultMaxOutput = 1 << 20

// Output is what a command printed and how it exited.
type Output struct {
	Stdout, Stderr []byte
	ExitCode       int
	// Truncated is set when output beyond MaxOutput was dropped.
	Truncated bool
}

// FileInfo is what Stat reports.
type FileInfo struct {
	Mode     fs.FileMode
	UID, GID int
	Size     int64
	IsDir    bool
}

// fileInfo is what Stat reports of fi, with the owner and group of a local
// stat or of SFTP's attributes (-1 when it has neither).
func fileInfo(fi fs.FileInfo) *FileInfo {
	info := &FileInfo{Mode: fi.Mode().Perm(), Size: fi.Size(), IsDir: fi.IsDir(), UID: -1, GID: -1}
	switch st := fi.Sys().(type) {
	case *syscall.Stat_t:
		info.UID, info.GID = int(st.Uid), int(st.Gid)
	case *sftp.FileStat:
		info.UID, info.GID = int(st.UID), int(st.GID)
	}
	return info
}

// WriteOptions says how WriteFile creates the file.
type WriteOptions struct {
	// Mode of a new file; an existing file keeps its mode, owner and group
	// unless Replace is set.
	Mode fs.FileMode
	// UID and GID of a new file when >= 0 (only root can set them).
	UID, GID int
	// Replace gives the written file Mode (when not 0), UID and GID (when
	// >= 0) even when it replaces an existing file: the new attributes
	// come with the new content in one rename.
	Replace bool
}

// replacement is the file WriteFile replaces and the attributes the file
// written in its place gets.
type replacement struct {
	// path is the file the path given resolves to.
	path     string
	exists   bool
	mode     fs.FileMode
	uid, gid int
}

// replacing resolves path on a host and reads the file there, if any, for
// the mode, owner and group the written file gets.
func (o WriteOptions) replacing(ctx context.Context, host Conn, path string) (replacement, error) {
	p, err := host.Resolve(ctx, path)
	if err != nil {
		return replacement{}, err
	}
	old, err := host.Stat(ctx, p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return replacement{}, err
	}
	r := replacement{path: p, exists: old != nil}
	r.mode, r.uid, r.gid = o.attrs(old)
	return r, nil
}

// own gives the new file f its mode first, so that the content never sits
// in a file more open than the target (a config file with passwords), then
// its owner and group where asRoot lets them be set; f is closed on failure.
func (r replacement) own(f interface {
	Chmod(fs.FileMode) error
	Chown(uid, gid int) error
	Close() error
}, asRoot bool) error {
	if err := f.Chmod(r.mode); err != nil {
		f.Close()
		return err
	}
	if r.uid >= 0 && r.gid >= 0 && asRoot {
		if err := f.Chown(r.uid, r.gid); err != nil {
			f.Close()
			return err
		}
	}
	return nil
}

// attrs returns the mode, owner and group of the written file, given the
// file it replaces (nil when there is none).
func (o WriteOptions) attrs(old *FileInfo) (fs.FileMode, int, int) {
	mode, uid, gid := o.Mode, o.UID, o.GID
	if mode == 0 {
		mode = 0o644
	}
	if old == nil {
		return mode, uid, gid
	}
	if !o.Replace || o.Mode == 0 {
		mode = old.Mode
	}
	if !o.Replace || uid < 0 {
		uid = old.UID
	}
	if !o.Replace || gid < 0 {
		gid = old.GID
	}
	return mode, uid, gid
}

// UnreachableError says that nothing answered at a host's address: the TCP
// connection timed out, or ended in EHOSTUNREACH or ENETUNREACH from
// anyone but the host itself (this machine's kernel when no neighbour
// answered ARP, which NoMachine tells apart; a router; a local route). An
// ICMP "unreachable" from the host's own address is a RejectedError, an
// answer, and never this. It is the
// only connection failure that lets a guard treat a machine as down; guards
// see it as result.reachable == false. A refused connection, a handshake
// that fails or never finishes, an authentication failure and a host key
// mismatch are other errors: the machine answered, so it is up.
type UnreachableError struct {
	Host string
	// Addr is the host:port that did not answer.
	Addr string
	// Via names the jump host the attempt went through, if any.
	Via string
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("host %s is unreachable (nothing answers at its address): %v", e.Host, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// IsUnreachable reports whether err says that nothing answered at a host's
// address (see UnreachableError).
func IsUnreachable(err error) bool {
	var u *UnreachableError
	return errors.As(err, &u)
}

// SessionError is a host that answered but gave no working session: the
// connection was refused, the SSH handshake failed or did not finish in
// time after the TCP connection was accepted (a hung sshd), or the
// connection broke under a command. The machine is up; it is not down.
type SessionError struct {
	Host, Addr string
	// Stage is what failed: "connect", "handshake" or "session".
	Stage string
	Err   error
}

func (e *SessionError) Error() string {
	if e.Stage == "connect" {
		// Refused: for tolerate: [unreachable] the host is out of reach,
		// but a guard must not take the machine for down.
		return fmt.Sprintf("host %s (%s) answered, but no SSH session: %s: %v (the machine is up, so a guard does not take it as down; a step's tolerate: [unreachable] covers it)", e.Host, e.Addr, e.Stage, e.Err)
	}
	return fmt.Sprintf("host %s (%s) answered, but no SSH session: %s: %v (the machine is up; this is not \"unreachable\")", e.Host, e.Addr, e.Stage, e.Err)
}

func (e *SessionError) Unwrap() error { return e.Err }

// ClosedError is a connection found closed as an operation was to begin
// on it (no session or file transfer could be opened, or a read could not
// be done): nothing was started or changed on the host. The host rebooted,
// or its sshd restarted, before a keepalive noticed. A new connection may
// be opened and the operation tried again; that dial says whether the
// host is reachable.
type ClosedError struct {
	Host, Addr string
	Err        error
}

func (e *ClosedError) Error() string {
	return fmt.Sprintf("the connection to host %s (%s) was closed by the host (a reboot, or an sshd restart), and nothing was run on it: %v", e.Host, e.Addr, e.Err)
}

func (e *ClosedError) Unwrap() error { return e.Err }

// ResolveError is a host whose address is a name that does not resolve:
// nothing was asked of any machine, so nothing is known of it (up or
// down). A guard takes it as an error, never as a machine that is down: a
// typo must not pass for a powered-off host.
type ResolveError struct {
	Host string
	// Name is the address that does not resolve.
	Name string
	Err  error
}

func (e *ResolveError) Error() string {
	return fmt.Sprintf("host %s: its address %s does not resolve (%v): no machine was asked, so nothing is known of it; fix the address in the inventory or ~/.ssh/config, or this machine's DNS", e.Host, e.Name, e.Err)
}

func (e *ResolveError) Unwrap() error { return e.Err }

// Unconnected reports whether err says that no connection to a host's
// SSH port could be made: nothing answered (UnreachableError), the
// connection was refused, or the address does not resolve (here or in a
// step's own connection, a database's address). It is what a
// step's tolerate: [unreachable] covers: the host is out of reach, the
// run goes on without it. Only the first lets a guard take the machine as
// down. A handshake, an authentication or a host key that fails, and a
// session lost under a command, are not this: a connection was made.
func Unconnected(err error) bool {
	var se *SessionError
	var re *ResolveError
	var dns *net.DNSError
	return IsUnreachable(err) || errors.As(err, &re) || errors.As(err, &dns) || errors.As(err, &se) && se.Stage == "connect"
}

// IsLost reports whether err says a connection broke while a command ran
// on it (the command may go on on the host).
func IsLost(err error) bool {
	var se *SessionError
	return errors.As(err, &se) && se.Stage == "session"
}

// Silent reports whether a dial error means that nothing answered at the
// address: a timeout, or no route to the host or its network. A refused
// connection (an RST: something answered) is not silent, nor is an ICMP
// "unreachable" sent by the address itself (a RejectedError: a live
// machine's firewall).
func Silent(err error) bool {
	var rej *RejectedError
	if errors.As(err, &rej) {
		return false
	}
	if errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTDOWN) {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// NoMachine reports whether a dial error is the network's definitive word
// that no machine has the address: this machine's kernel found no
// neighbour for it on an attached link (a NoNeighbourError from DialTCP:
// no answer to ARP or neighbour discovery, about 3s for a fresh
// resolution, about 8s for a stale entry, with Linux's defaults). An
// EHOSTUNREACH or ENETUNREACH sent by a router or by the host itself (a
// firewall's REJECT from a live machine) or raised by a local route is
// not, nor is a timeout (silence).
func NoMachine(err error) bool {
	var nn *NoNeighbourError
	return errors.As(err, &nn)
}

// Answers reports whether anything answers at addr (host:port) within
// timeout: a connection accepted or refused. It is false only when the
// attempt is Silent.
func Answers(ctx context.Context, addr string, timeout time.Duration) bool {
	c, err := DialTCP(ctx, net.Dialer{Timeout: timeout}, addr)
	if err == nil {
		c.Close()
		return true
	}
	return !Silent(err)
}

// BecomeLine wraps a command line so that it runs as user. As root it uses
// runuser, which never prompts; otherwise sudo -n, which fails instead of
// prompting for a password.
func BecomeLine(line, user string, asRoot bool) string {
	if user == "" {
		return line
	}
	// cd /: the login user's directory is usually not readable by the
	// other user, and tools complain about it.
	line = "cd / && " + line
	if asRoot {
		return "runuser -u " + quote(user) + " -- /bin/sh -c " + quote(line)
	}
	return "sudo -n -u " + quote(user) + " -- /bin/sh -c " + quote(line)
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// boundedBuffer keeps the first max bytes written to it, or passes them
// to w, and drops the rest.
type boundedBuffer struct {
	buf []byte
	// w, when set, receives the bytes instead of buf; n counts them.
	w       io.Writer
	n       int
	max     int
	dropped bool
	// over, when set, is told the first time output is dropped.
	over *overLimit
}

// outputBuffers returns the buffers for c's stdout and stderr, each keeping
// c.MaxOutput bytes (DefaultMaxOutput when unset), and, when c.StopAtLimit,
// the signal that one of them went over.
func outputBuffers(c *Command) (stdout, stderr *boundedBuffer, over *overLimit) {
	max := c.MaxOutput
	if max <= 0 {
		max = DefaultMaxOutput
	}
	if c.StopAtLimit {
		over = newOverLimit()
	}
	return &boundedBuffer{max: max, over: over, w: c.Stdout}, &boundedBuffer{max: max, over: over}, over
}

// ended is the output of a command that ended with err (nil, or an exit
// status exitCode reads, giving false for any other error): the kept
// output and the exit code, or else err itself.
func ended(stdout, stderr *boundedBuffer, err error, exitCode func(error) (int, bool)) (*Output, error) {
	out := &Output{Stdout: stdout.buf, Stderr: stderr.buf, Truncated: stdout.dropped || stderr.dropped}
	if err == nil {
		return out, nil
	}
	code, ok := exitCode(err)
	if !ok {
		return nil, err
	}
	out.ExitCode = code
	return out, nil
}

// overLimit is closed once a command's output went over its limit.
type overLimit struct {
	once sync.Once
	ch   chan struct{}
}

func newOverLimit() *overLimit { return &overLimit{ch: make(chan struct{})} }

func (o *overLimit) close() { o.once.Do(func() { close(o.ch) }) }

// reached is the limit's channel, or nil (never ready) when o is nil.
func (o *overLimit) reached() <-chan struct{} {
	if o == nil {
		return nil
	}
	return o.ch
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if b.dropped {
		return len(p), nil
	}
	if b.w != nil {
		q := p
		if room := b.max - b.n; len(q) > room {
			q = q[:room]
			b.dropped = true
			if b.over != nil {
				b.over.close()
			}
		}
		if len(q) > 0 {
			_, _ = b.w.Write(q)
			b.n += len(q)
		}
		return len(p), nil
	}
	room := b.max - len(b.buf)
	if room >= len(p) {
		b.buf = append(b.buf, p...)
	} else {
		if room > 0 {
			b.buf = append(b.buf, p[:room]...)
		}
		b.dropped = true
		if b.over != nil {
			b.over.close()
		}
		// Only whole lines are kept: a secret cut at the limit would show
		// its first bytes, which no redactor recognises as the secret.
		if i := bytes.LastIndexByte(b.buf, '\n'); i >= 0 {
			b.buf = b.buf[:i+1]
		} else {
			b.buf = b.buf[:0]
		}
	}
	return len(p), nil
}

// maxLinks bounds the symbolic links followed to resolve a path (Linux's
// own limit is 40).
const maxLinks = 40

// resolveLinks resolves p as the kernel does: component by component, a
// relative link target against the directory the link really lives in
// (which differs from p's textual directory once an earlier component was
// itself a link). It returns p unchanged when its last component is no
// link (the kernel finds the file through p itself), else the path the
// last link names. readlink returns a link's target and true, or false
// when the path is no link (or does not exist); exists says whether a
// path exists.
func resolveLinks(p string, readlink func(string) (string, bool, error), exists func(string) (bool, error)) (string, error) {
	orig := p
	resolved := "/"
	if !pathpkg.IsAbs(p) {
		resolved = "."
	}
	rest := strings.Split(p, "/")
	// viaLastLink: the last component of p is a link, so the file is
	// the one its target names.
	links, viaLastLink := 0, false
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			// resolved holds no link, so its parent is its textual parent.
			resolved = pathpkg.Join(resolved, "..")
			continue
		}
		next := pathpkg.Join(resolved, c)
		target, isLink, err := readlink(next)
		if err != nil {
			return "", fmt.Errorf("resolve %s: %w", orig, err)
		}
		if !isLink {
			resolved = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("resolve %s: more than %d symbolic links (a loop?)", orig, maxLinks)
		}
		if pathpkg.IsAbs(target) {
			resolved = "/"
		}
		if !hasComponent(rest) {
			viaLastLink = true
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	if !viaLastLink {
		return orig, nil
	}
	ok, err := exists(resolved)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", orig, err)
	}
	if !ok {
		return "", fmt.Errorf("%s is a symbolic link to %s, which does not exist: a write would create a file the link may not be meant to name; create the target or fix the link", orig, resolved)
	}
	return resolved, nil
}

// hasComponent says whether parts name anything besides the current
// directory.
func hasComponent(parts []string) bool {
	for _, c := range parts {
		if c != "" && c != "." {
			return true
		}
	}
	return false
}
