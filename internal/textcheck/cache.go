package textcheck

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cacheFormat is the first line's tag of a cache entry. A change of what
// an entry holds, or of how findings are read from it, changes the tag:
// entries of another format are misses, and are overwritten.
const cacheFormat = "runbook-shellcheck-findings 1"

// DefaultCacheMax bounds the shellcheck cache's disk use (blocks, as du
// counts them): a clean command's entry is small, but takes a block of
// its own (4 KiB on most file systems), so this keeps about 25,000
// commands.
const DefaultCacheMax = 100 << 20

// trimEvery is how often a run looks at the cache's size; a run that
// wrote no entry never does. touchAfter: an entry read is marked as used
// (its mtime set) only when it was last marked longer ago, so that a
// warm run writes almost nothing.
const (
	trimEvery  = time.Hour
	touchAfter = time.Hour
)

// resultCache keeps shellcheck's findings on a text between runs, in a
// directory of files named by the SHA-256 of everything that makes the
// findings what they are (the key): the format of the entry, shellcheck's
// version, its arguments, the environment it reads (the locale), and the
// text exactly as shellcheck reads it, stand-ins of ${{ }} included. An
// entry holds the findings relative to the text, as shellcheck gave them;
// they are mapped to the YAML as on a miss.
//
// Several validate processes may share the directory: an entry is written
// to a temporary file and renamed into place, so a reader sees a whole
// entry or none, and a reader checks an entry (format, key, checksum of
// its findings) before trusting it: a damaged entry is a miss, and is
// written again.
//
// The checksum finds damage, not intent: anyone who can write the
// directory can write an entry that hides findings. So the cache is used
// only in a directory no one but the user can write (see open), as
// OpenSSH's StrictModes trusts a key file; the user's own processes are
// trusted, as by Go's build cache.
//
// Not github.com/rogpeppe/go-internal/cache (Go's build cache, already a
// dependency of the tests): it writes two files per entry (an index and
// the data), where creating a file is most of a write's cost (160–200 µs
// of system time here, 10,000 commands a tree), and it trims by age only,
// with no bound on size.
type resultCache struct {
	dir   string   // the real directory, once open: no link in it
	root  *os.Root // dir, opened once it was checked: every use goes through it
	max   int64
	every time.Duration // trim interval; 0 trims after every run that wrote

	mu      sync.Mutex
	err     error // why the cache is off (it is after the first)
	putErr  error // the first entry that could not be written
	putFail int   // how many could not
	wrote   int
	prefix  []byte // the key's beginning: format, shellcheck, arguments
}

// newResultCache keeps entries in dir, which must be private, and every
// directory above it (open).
func newResultCache(dir string, max int64) *resultCache {
	if max <= 0 {
		max = DefaultCacheMax
	}
	return &resultCache{dir: dir, max: max, every: trimEvery}
}

// open makes the cache's directory, resolves its links once, opens it,
// and checks that the directory opened can be trusted: it is owned by
// the user (or root) and writable by no one else, and so is every
// directory above it up to /, as OpenSSH checks a file's path
// (auth_secure_path): whoever can write a directory above could rename
// the cache's away and put one of theirs by its name. A directory above
// that others can write is accepted when sticky (/tmp): no one else can
// then rename or remove what is the user's in it. Every later use of the
// cache is relative to the directory opened (rc.root), never by its
// path: a directory renamed or replaced by a link after the check
// redirects nothing, and a link inside it cannot lead out of it.
//
// A directory that holds files tracked by git is not trusted either
// (inGitTree): its entries come from the commits being checked.
//
// The error says where and what to do; the cache is then off, and the
// checks are whole without it.
func (rc *resultCache) open() error {
	var err error
	if rc.dir, err = filepath.Abs(rc.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(rc.dir, 0o700); err != nil {
		return fmt.Errorf("cannot make %s: %w (give a writable directory with --cache-dir or RUNBOOK_CACHE_DIR, or --no-cache)", rc.dir, err)
	}
	real, err := filepath.EvalSymlinks(rc.dir)
	if err != nil {
		return fmt.Errorf("resolving the links of %s: %w", rc.dir, err)
	}
	shown := real
	if real != filepath.Clean(rc.dir) {
		shown = fmt.Sprintf("%s (%s)", rc.dir, real)
	}
	root, err := os.OpenRoot(real)
	if err != nil {
		return fmt.Errorf("opening %s: %w (give a directory with --cache-dir or RUNBOOK_CACHE_DIR, or --no-cache)", shown, err)
	}
	if err := checkDirs(root, real, shown); err != nil {
		root.Close()
		return err
	}
	if err := gitTracked(real, shown); err != nil {
		root.Close()
		return err
	}
	rc.dir, rc.root = real, root
	return nil
}

// checkDirs checks root, opened at real, and every directory above real
// up to /; and that real, by its path, is still the directory opened
// once its ancestors were checked (else one of them was changed
// meanwhile).
func checkDirs(root *os.Root, real, shown string) error {
	st, err := root.Stat(".")
	if err != nil {
		return err
	}
	if err := privateDir(st, shown, real, true); err != nil {
		return err
	}
	for d := filepath.Dir(real); ; d = filepath.Dir(d) {
		st, err := os.Lstat(d)
		if err != nil {
			return err
		}
		if err := privateDir(st, d, d, false); err != nil {
			return err
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	byPath, err := os.Lstat(real)
	if err != nil {
		return err
	}
	if !os.SameFile(st, byPath) {
		return fmt.Errorf("%s changed while it was checked: a directory above it was renamed (use a directory of your own with --cache-dir or RUNBOOK_CACHE_DIR, or --no-cache)", shown)
	}
	return nil
}

// gitTracked refuses a cache directory inside a git work tree that holds
// files tracked by git: a checkout makes them the user's, with private
// modes, so the checks above trust them, though they come from whoever
// could commit (entries are named by public data: anyone can compute
// them). Not a check of emptiness on first use: a run cannot tell its
// first use, and entries left by earlier runs look the same as those of
// a checkout. When git cannot tell (not installed, or it fails), the
// directory is refused too: it cannot be told apart from a checkout.
func gitTracked(real, shown string) error {
	tree := ""
	for d := real; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			tree = d
			break
		}
		if filepath.Dir(d) == d {
			return nil // not in a work tree
		}
	}
	const advice = "keep the cache outside the repository's work tree, or not committed, with --cache-dir or RUNBOOK_CACHE_DIR, or --no-cache"
	git, err := exec.LookPath("git")
	if err != nil {
		return fmt.Errorf("%s is inside the git work tree %s, and git is not installed to tell whether files in it come from the repository, whose entries anyone who can commit could forge (%s)", shown, tree, advice)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, git, "-C", real, "ls-files", "-z", "--", ".")
	// The environment's GIT_DIR or GIT_WORK_TREE would make git
	// answer of another repository than the one the directory is in.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s is inside the git work tree %s, and git could not tell whether files in it come from the repository (%v: %s), whose entries anyone who can commit could forge (%s)", shown, tree, err, strings.TrimSpace(stderr.String()), advice)
	}
	if len(out) > 0 {
		first, _, _ := bytes.Cut(out, []byte{0})
		return fmt.Errorf("%s holds files tracked by git (%s first): entries committed to the repository would be trusted, and anyone who can commit can forge them (%s)", shown, first, advice)
	}
	return nil
}

// privateDir checks one directory: the cache's own (own) must be
// writable by no one else; one above it may be, when sticky.
func privateDir(st fs.FileInfo, shown, d string, own bool) error {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil // no owner to check on this system
	}
	euid := os.Geteuid()
	switch {
	case !st.IsDir():
		return fmt.Errorf("%s is not a directory (give a directory with --cache-dir or RUNBOOK_CACHE_DIR, or --no-cache)", shown)
	case int(sys.Uid) != euid && sys.Uid != 0:
		return fmt.Errorf("%s belongs to user %d, not to this one (%d): its owner could write entries that hide findings (use a directory of your own with --cache-dir or RUNBOOK_CACHE_DIR, or --no-cache)", shown, sys.Uid, euid)
	case st.Mode().Perm()&0o022 != 0 && (own || st.Mode()&fs.ModeSticky == 0):
		return fmt.Errorf("%s can be written by others (mode %04o): they could write entries that hide findings (chmod go-w %s, or use another directory with --cache-dir or RUNBOOK_CACHE_DIR, or --no-cache)", shown, st.Mode().Perm(), d)
	}
	return nil
}

// setIdentity sets what, besides the text, a key covers.
func (rc *resultCache) setIdentity(parts ...string) {
	var b bytes.Buffer
	b.WriteString(cacheFormat)
	for _, p := range parts {
		b.WriteByte(0)
		b.WriteString(p)
	}
	b.WriteByte(0)
	rc.prefix = b.Bytes()
}

// key is the name of text's entry.
func (rc *resultCache) key(text string) string {
	h := sha256.New()
	h.Write(rc.prefix)
	h.Write([]byte(text))
	return hex.EncodeToString(h.Sum(nil))
}

// path is the name of key's entry, relative to the cache's directory.
func (rc *resultCache) path(key string) string {
	return key[:2] + "/" + key
}

// close lets go of the cache's directory.
func (rc *resultCache) close() {
	if rc.root != nil {
		rc.root.Close()
	}
}

// fail turns the cache off for the rest of the run, keeping the first
// reason: the directory cannot be used, or entries cannot be named.
func (rc *resultCache) fail(err error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.err == nil {
		rc.err = err
	}
}

func (rc *resultCache) failure() error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.err
}

// putFailure says how many entries could not be written, and why the
// first could not; the cache stays on meanwhile (one bad entry is one
// miss).
func (rc *resultCache) putFailure() (int, error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.putFail, rc.putErr
}

// cachedComment is a finding as an entry holds it: shellcheck's, without
// the name of the file it read.
type cachedComment struct {
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Level   string `json:"level"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// get returns the findings kept for text, and whether there were any
// (none found, a damaged entry, or another format's, is a miss).
func (rc *resultCache) get(text string) ([]shellComment, bool) {
	if rc.failure() != nil {
		return nil, false
	}
	p := rc.path(rc.key(text))
	// Without blocking (a FIFO would block the open until a writer
	// comes) and without following a link; what is not a regular file
	// of the user's is a miss, and is replaced.
	f, err := rc.root.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || !ownFile(st) || st.Size() > maxEntry {
		return nil, false
	}
	b := make([]byte, st.Size()+1) // +1: an entry that grew is not read cut
	n, err := io.ReadFull(f, b)
	if err != io.ErrUnexpectedEOF {
		return nil, false
	}
	cs, ok := decodeEntry(b[:n], path.Base(p))
	if !ok {
		return nil, false
	}
	if time.Since(st.ModTime()) > touchAfter {
		now := time.Now()
		// Through the file opened: by name, a link put in its place
		// meanwhile would be followed. Only the order of eviction
		// depends on it.
		_ = touch(f, now)
	}
	return cs, true
}

// ownFile reports whether the file is the user's.
func ownFile(st fs.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	return !ok || int(sys.Uid) == os.Geteuid()
}

// maxEntry bounds what is read of an entry: shellcheck's findings on a
// 64 KiB text (the most it is given) take far less.
const maxEntry = 16 << 20

// decodeEntry reads an entry: its first line is the format, the key and
// the SHA-256 of the rest, the findings as JSON.
func decodeEntry(b []byte, key string) ([]shellComment, bool) {
	head, body, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		return nil, false
	}
	sum := sha256.Sum256(body)
	if string(head) != cacheFormat+" "+key+" "+hex.EncodeToString(sum[:]) {
		return nil, false
	}
	var ccs []cachedComment
	if err := json.Unmarshal(body, &ccs); err != nil {
		return nil, false
	}
	cs := make([]shellComment, len(ccs))
	for i, c := range ccs {
		cs[i] = shellComment{Line: c.Line, Column: c.Column, Level: c.Level, Code: c.Code, Message: c.Message}
	}
	return cs, true
}

func encodeEntry(key string, cs []shellComment) []byte {
	ccs := make([]cachedComment, len(cs))
	for i, c := range cs {
		ccs[i] = cachedComment{Line: c.Line, Column: c.Column, Level: c.Level, Code: c.Code, Message: c.Message}
	}
	body, _ := json.Marshal(ccs) // plain strings and numbers: it cannot fail
	sum := sha256.Sum256(body)
	return append([]byte(cacheFormat+" "+key+" "+hex.EncodeToString(sum[:])+"\n"), body...)
}

// put keeps the findings on text: written to a temporary file of the
// entry's directory, then renamed over the entry, so that a process
// reading it at the same time sees the old entry, the new one or none.
func (rc *resultCache) put(text string, cs []shellComment) {
	if rc.failure() != nil {
		return
	}
	key := rc.key(text)
	p := rc.path(key)
	err := entryDir(rc.root, path.Dir(p))
	if err == nil {
		err = writeAtomic(rc.root, p, encodeEntry(key, cs))
	}
	if err != nil {
		err = fmt.Errorf("%s: %w", filepath.Join(rc.dir, p), err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err != nil {
		rc.putFail++
		if rc.putErr == nil {
			rc.putErr = err
		}
		return
	}
	rc.wrote++
}

// entryDir makes sure dir, an entry's directory in the cache, is a
// directory and not a link (which would write the entry elsewhere):
// anything else by its name is replaced.
func entryDir(root *os.Root, dir string) error {
	st, err := root.Lstat(dir)
	switch {
	case err == nil && st.IsDir():
		return nil
	case err == nil:
		if err := root.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	if err := root.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// writeAtomic writes b to a temporary file of p's directory in root
// (created anew, never through a link) and renames it over p. Whatever
// held p's name (an entry, a FIFO, a link, a directory) is replaced.
func writeAtomic(root *os.Root, p string, b []byte) error {
	f, tmp, err := createTemp(root, path.Dir(p))
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, p)
		if err != nil {
			if st, serr := root.Lstat(p); serr == nil && st.IsDir() {
				// A rename does not replace a directory.
				if err = root.RemoveAll(p); err == nil {
					err = root.Rename(tmp, p)
				}
			}
		}
	}
	if err != nil {
		root.Remove(tmp)
	}
	return err
}

// createTemp is os.CreateTemp(dir, ".tmp-*") within root, which has
// none.
func createTemp(root *os.Root, dir string) (*os.File, string, error) {
	for range 100 {
		var r [8]byte
		_, _ = rand.Read(r[:]) // never fails (crypto/rand)
		name := path.Join(dir, ".tmp-"+hex.EncodeToString(r[:]))
		f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY|syscall.O_NOFOLLOW, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, name, err
	}
	return nil, "", fmt.Errorf("creating a temporary file in %s: too many exist", path.Join(filepath.ToSlash(root.Name()), dir))
}

// trimMark is the file whose mtime is the cache's last trim.
const trimMark = "trimmed"

// entryBlock is what an entry takes on the disk, about: a block.
const entryBlock = 4 << 10

// maybeTrim trims the cache when this run wrote to it and the last trim
// is older than the interval, or this run alone wrote more than a
// quarter of the bound. Of several processes finishing at once, one
// trims: the one that creates the lock file.
func (rc *resultCache) maybeTrim() error {
	rc.mu.Lock()
	wrote, off := rc.wrote, rc.err != nil
	rc.mu.Unlock()
	if wrote == 0 || off {
		return nil
	}
	mark := trimMark
	big := int64(wrote)*entryBlock > rc.max/4
	// Lstat, and a mark that is not a regular file is none: it is
	// replaced by a file after the trim (written to a FIFO, the mark
	// would block until a reader came).
	if st, err := rc.root.Lstat(mark); err == nil && st.Mode().IsRegular() && time.Since(st.ModTime()) < rc.every && !big {
		return nil
	}
	lock := ".trimming"
	l, err := rc.root.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		// Another process trims; a lock left by a killed one is
		// taken over once it is old.
		if st, serr := rc.root.Lstat(lock); serr == nil && time.Since(st.ModTime()) > 10*time.Minute {
			rc.root.Remove(lock)
		}
		return nil
	}
	l.Close()
	defer rc.root.Remove(lock)
	if err := rc.trim(); err != nil {
		return err
	}
	if err := writeAtomic(rc.root, mark, nil); err != nil {
		return fmt.Errorf("marking the shellcheck cache as trimmed: %w", err)
	}
	return nil
}

// trim removes the entries used longest ago until the cache takes at
// most three quarters of its bound, so that it is not trimmed again at
// once, and temporary files a killed process left. Only what has the
// name of an entry (KK/KEY, KEY the 64 hex digits of a key beginning
// with KK) or of a temporary file is counted or removed: whatever else
// is in the directory is not the cache's.
func (rc *resultCache) trim() error {
	type entry struct {
		path  string
		mtime time.Time
		size  int64
	}
	var entries []entry
	var total int64
	err := fs.WalkDir(rc.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed by another process meanwhile
			}
			return fmt.Errorf("%s: %w", filepath.Join(rc.dir, p), err)
		}
		if p == "." {
			return nil
		}
		parent := path.Base(path.Dir(p))
		if d.IsDir() {
			if path.Dir(p) != "." || !isHex(d.Name(), 2) {
				return filepath.SkipDir // not the cache's
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil // a link or a FIFO
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			if time.Since(fi.ModTime()) > time.Hour {
				rc.root.Remove(p)
			}
			return nil
		}
		if path.Dir(p) == "." {
			return nil // the mark and the lock
		}
		if !isHex(d.Name(), sha256.Size*2) || !strings.HasPrefix(d.Name(), parent) {
			return nil // not an entry
		}
		e := entry{p, fi.ModTime(), diskUse(fi)}
		entries = append(entries, e)
		total += e.size
		return nil
	})
	if err != nil {
		return fmt.Errorf("trimming the shellcheck cache: %w", err)
	}
	if total <= rc.max {
		return nil
	}
	slices.SortFunc(entries, func(a, b entry) int { return a.mtime.Compare(b.mtime) })
	for _, e := range entries {
		if total <= rc.max/4*3 {
			break
		}
		if err := rc.root.Remove(e.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("trimming the shellcheck cache: %w", err)
		}
		total -= e.size
	}
	return nil
}

// isHex reports whether s is n lowercase hexadecimal digits, as the
// names of keys are.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// diskUse is what a file takes on the disk: its blocks, or its size
// where the system does not say or keeps it with the file's metadata
// (no block).
func diskUse(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Blocks > 0 {
		return st.Blocks * 512
	}
	return fi.Size()
}

// touch sets f's times to t, through its descriptor.
func touch(f *os.File, t time.Time) error {
	c, err := f.SyscallConn()
	if err != nil {
		return err
	}
	tv := syscall.NsecToTimeval(t.UnixNano())
	var ferr error
	if err := c.Control(func(fd uintptr) {
		ferr = syscall.Futimes(int(fd), []syscall.Timeval{tv, tv})
	}); err != nil {
		return err
	}
	return ferr
}
