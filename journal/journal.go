// Package journal is an append-only, checksummed record log: each record is
// one line, "<crc32c> <json>", written and fsynced before the writer goes
// on. A reader detects a torn last record (a crash mid-write) and a
// damaged one (a flipped byte), reports them, and never returns a record
// it cannot vouch for. It is the storage of durable runs.
package journal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record is one entry of a journal.
type Record struct {
	Seq  int64           `json:"seq"`
	Time time.Time       `json:"time"`
	Kind string          `json:"kind"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Problem is what a reader found wrong at the end of a journal.
type Problem struct {
	// Line is the 1-based line of the first record not returned.
	Line int
	// Torn is true for an incomplete last line: a write that a crash
	// interrupted, never acknowledged, safe to ignore.
	Torn   bool
	Reason string
}

func (p *Problem) Error() string {
	if p.Torn {
		return fmt.Sprintf("line %d: torn record (an interrupted write), ignored", p.Line)
	}
	return fmt.Sprintf("line %d: damaged record (%s); the records after it are not read", p.Line, p.Reason)
}

// Writer appends records to a journal file. Concurrent appends share
// their fsync (group commit): each Append still returns only once its own
// record is on disk.
type Writer struct {
	mu   sync.Mutex
	f    *os.File
	seq  int64
	size int64 // bytes in the file

	syncMu sync.Mutex
	synced int64
}

// ErrBusy is returned by Open for a journal that another writer, a run
// still going, holds.
var ErrBusy = errors.New("the journal is in use by a running writer")

// Create starts a new journal; it refuses to overwrite one. The writer
// holds an exclusive lock on the file until Close (or until the process
// dies), so that nobody continues a journal that is still being written.
func Create(path string) (*Writer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	syncDir(filepath.Dir(path))
	return &Writer{f: f}, nil
}

// Open continues an existing journal and returns the records it holds. It
// returns ErrBusy while another writer holds the journal. A torn last
// record is cut off first (it was never acknowledged); a damaged record
// refuses the open, since what follows it could not be trusted.
func Open(path string) (*Writer, []Record, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil, ErrBusy
		}
		return nil, nil, err
	}
	recs, valid, prob, err := read(path)
	if err == nil && prob != nil && !prob.Torn {
		err = prob
	}
	if err == nil && prob != nil {
		if err = f.Truncate(valid); err == nil {
			err = f.Sync()
		}
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	w := &Writer{f: f, size: valid}
	if len(recs) > 0 {
		w.seq = recs[len(recs)-1].Seq
		w.synced = w.seq
	}
	return w, recs, nil
}

// Busy reports whether a writer holds the journal at path.
func Busy(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// Append writes a record and syncs it to disk before returning: with it,
// every record written before it is on disk too.
func (w *Writer) Append(kind string, data any) (Record, error) {
	return w.append(kind, data, true)
}

// Write writes a record without waiting for the disk: the next Append
// makes it durable. For a record whose loss a reader tolerates (a step's
// outcome, re-probed on resume), it saves an fsync.
func (w *Writer) Write(kind string, data any) (Record, error) {
	return w.append(kind, data, false)
}

func (w *Writer) append(kind string, data any, sync bool) (Record, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Record{}, err
	}
	w.mu.Lock()
	rec := Record{Seq: w.seq + 1, Time: time.Now().UTC(), Kind: kind, Data: raw}
	body, err := json.Marshal(rec)
	if err != nil {
		w.mu.Unlock()
		return Record{}, err
	}
	line := fmt.Sprintf("%08x %s\n", crc32.Checksum(body, castagnoli), body)
	if _, err := w.f.WriteString(line); err != nil {
		w.mu.Unlock()
		return Record{}, err
	}
	w.seq = rec.Seq
	w.size += int64(len(line))
	w.mu.Unlock()
	if !sync {
		return rec, nil
	}
	return rec, w.syncTo(rec.Seq)
}

// Sync makes every record written so far durable.
func (w *Writer) Sync() error {
	w.mu.Lock()
	seq := w.seq
	w.mu.Unlock()
	return w.syncTo(seq)
}

// syncTo returns once record seq is on disk: an fsync that started after
// it was written covers it, and concurrent callers share one.
func (w *Writer) syncTo(seq int64) error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	if w.synced >= seq {
		return nil
	}
	w.mu.Lock()
	upTo, size := w.seq, w.size
	w.mu.Unlock()
	if err := w.f.Sync(); err != nil {
		return err
	}
	w.synced = upTo
	afterSync(w.f.Name(), size)
	return nil
}

// Close syncs what Write left and closes the journal file.
func (w *Writer) Close() error {
	serr := w.Sync()
	if err := w.f.Close(); err != nil {
		return err
	}
	return serr
}

// Read returns the records of a journal that can be trusted, and the
// problem that ended the reading, if any.
func Read(path string) ([]Record, *Problem, error) {
	recs, _, prob, err := read(path)
	return recs, prob, err
}

// read also returns the byte length of the trusted part.
func read(path string) ([]Record, int64, *Problem, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var recs []Record
	var valid int64
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			if len(line) > 0 {
				return recs, valid, &Problem{Line: n, Torn: true, Reason: "no end of line"}, nil
			}
			return recs, valid, nil, nil
		}
		if err != nil {
			return nil, 0, nil, err
		}
		rec, reason := parse(line[:len(line)-1], int64(len(recs))+1)
		if reason != "" {
			return recs, valid, &Problem{Line: n, Reason: reason}, nil
		}
		recs = append(recs, rec)
		valid += int64(len(line))
	}
}

func parse(line []byte, wantSeq int64) (Record, string) {
	sum, body, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(sum) != 8 {
		return Record{}, "no checksum"
	}
	want, err := strconv.ParseUint(string(sum), 16, 32)
	if err != nil {
		return Record{}, "no checksum"
	}
	if crc32.Checksum(body, castagnoli) != uint32(want) {
		return Record{}, "checksum mismatch"
	}
	var rec Record
	if err := json.Unmarshal(body, &rec); err != nil {
		return Record{}, "not a record: " + err.Error()
	}
	if rec.Seq != wantSeq {
		return Record{}, fmt.Sprintf("sequence %d where %d was due", rec.Seq, wantSeq)
	}
	return rec, ""
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
