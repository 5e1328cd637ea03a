package textcheck

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
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
// Not github.com/rogpeppe/go-internal/cache (Go's build cache, already a
// dependency of the tests): it writes two files per entry (an index and
// the data), where creating a file is most of a write's cost (160–200 µs
// of system time here, 10,000 commands a tree), and it trims by age only,
// with no bound on size.
type resultCache struct {
	dir   string
	max   int64
	every time.Duration // trim interval; 0 trims after every run that wrote

	mu     sync.Mutex
	err    error // the first failure; the cache is off after it
	wrote  int
	prefix []byte // the key's beginning: format, shellcheck, arguments
}

func newResultCache(dir string, max int64) *resultCache {
	if max <= 0 {
		max = DefaultCacheMax
	}
	return &resultCache{dir: dir, max: max, every: trimEvery}
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

func (rc *resultCache) path(key string) string {
	return filepath.Join(rc.dir, key[:2], key)
}

// fail turns the cache off for the rest of the run, keeping the first
// reason.
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
	f, err := os.Open(p)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() > maxEntry {
		return nil, false
	}
	b := make([]byte, st.Size()+1) // +1: an entry that grew is not read cut
	n, err := io.ReadFull(f, b)
	if err != io.ErrUnexpectedEOF {
		return nil, false
	}
	cs, ok := decodeEntry(b[:n], filepath.Base(p))
	if !ok {
		return nil, false
	}
	if time.Since(st.ModTime()) > touchAfter {
		now := time.Now()
		_ = os.Chtimes(p, now, now) // only the order of eviction depends on it
	}
	return cs, true
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
	if err := writeAtomic(p, encodeEntry(key, cs)); err != nil {
		rc.fail(err)
		return
	}
	rc.mu.Lock()
	rc.wrote++
	rc.mu.Unlock()
}

func writeAtomic(p string, b []byte) error {
	dir := filepath.Dir(p)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o700); err == nil {
			f, err = os.CreateTemp(dir, ".tmp-*")
		}
	}
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
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
	mark := filepath.Join(rc.dir, trimMark)
	big := int64(wrote)*entryBlock > rc.max/4
	if st, err := os.Stat(mark); err == nil && time.Since(st.ModTime()) < rc.every && !big {
		return nil
	}
	lock := filepath.Join(rc.dir, ".trimming")
	l, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		// Another process trims; a lock left by a killed one is
		// taken over once it is old.
		if st, serr := os.Stat(lock); serr == nil && time.Since(st.ModTime()) > 10*time.Minute {
			os.Remove(lock)
		}
		return nil
	}
	l.Close()
	defer os.Remove(lock)
	if err := rc.trim(); err != nil {
		return err
	}
	if err := os.WriteFile(mark, nil, 0o600); err != nil {
		return err
	}
	now := time.Now()
	return os.Chtimes(mark, now, now)
}

// trim removes the entries used longest ago until the cache takes at
// most three quarters of its bound, so that it is not trimmed again at
// once, and temporary files a killed process left.
func (rc *resultCache) trim() error {
	type entry struct {
		path  string
		mtime time.Time
		size  int64
	}
	var entries []entry
	var total int64
	err := filepath.WalkDir(rc.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed by another process meanwhile
			}
			return err
		}
		if d.IsDir() {
			if p != rc.dir && filepath.Dir(p) != rc.dir {
				return filepath.SkipDir // not the cache's
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			if time.Since(fi.ModTime()) > time.Hour {
				os.Remove(p)
			}
			return nil
		}
		if filepath.Dir(p) == rc.dir {
			return nil // the mark and the lock
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
		if err := os.Remove(e.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("trimming the shellcheck cache: %w", err)
		}
		total -= e.size
	}
	return nil
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
