// Package journal is an append-only, checksummed record log: each record is
// one line, "<crc32c> <json>". The writer decides per record how far it
// goes before the caller goes on: kept in memory for the next write
// (Stage), handed to the kernel (Write), or synced to disk (Append). A
// reader detects a torn last record (a crash mid-write) and a damaged one
// (a flipped byte), reports them, and never returns a record it cannot
// vouch for. It is the storage of durable runs.
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
	mu      sync.Mutex
	f       *os.File
	seq     int64  // the last record numbered (staged or written)
	written int64  // the last record written to the file
	size    int64  // bytes in the file
	staged  []byte // lines numbered and not yet written
	// stale writes the staged lines once the first has waited staleAfter;
	// lateErr is its failure, returned by the next call.
	stale   *time.Timer
	lateErr error

	syncMu sync.Mutex
	synced int64
	// syncDir makes a new file's directory entry durable; nil once done.
	syncDir func() error
}

// ErrBusy is returned by Open for a journal that another writer, a run
// still going, holds.
var ErrBusy = errors.New("the journal is in use by a running writer")

// Create starts a new journal in f, an empty file just created for it
// (O_EXCL), open for reading and appending; syncDir makes the file's
// directory entry durable, with the journal's first sync. The writer holds
// an exclusive lock on the file until Close (or until the process dies),
// so that nobody continues a journal that is still being written. Create
// takes f: it closes it on an error.
func Create(f *os.File, syncDir func() error) (*Writer, error) {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	// The directory is synced with the file's first sync, which a run's
	// first change waits for: until then, losing the file loses nothing.
	return &Writer{f: f, syncDir: syncDir}, nil
}

// Open continues the journal in f, open for reading and appending, and
// returns the records it holds. It returns ErrBusy while another writer
// holds the journal. A torn last record is cut off first (it was never
// acknowledged); a damaged record refuses the open, since what follows it
// could not be trusted. Open takes f: it closes it on an error.
func Open(f *os.File) (*Writer, []Record, error) {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil, ErrBusy
		}
		return nil, nil, err
	}
	recs, valid, prob, err := read(f)
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
		w.written, w.synced = w.seq, w.seq
	}
	return w, recs, nil
}

// Busy reports whether a writer holds the journal in f.
func Busy(f *os.File) bool {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// Append writes a record and syncs it to disk before returning: with it,
// every record written before it is on disk too. It returns the record's
// sequence number.
func (w *Writer) Append(kind string, data any) (int64, error) {
	seq, err := w.add(kind, data, true)
	if err != nil {
		return 0, err
	}
	return seq, w.syncTo(seq)
}

// Write writes a record (and the staged ones before it) to the file
// without waiting for the disk: a process killed after Write loses none
// of them, a power cut may; the next Append or Sync makes them durable.
func (w *Writer) Write(kind string, data any) (int64, error) {
	return w.add(kind, data, true)
}

// Stage numbers a record and keeps it in memory until the next Write,
// Append or Sync writes it, after the records before it and before the
// ones after it, or until it has waited staleAfter. It is for a record
// whose loss, with everything after it, a reader tolerates: one that
// nothing has acted on yet. It saves a write.
func (w *Writer) Stage(kind string, data any) (int64, error) {
	return w.add(kind, data, false)
}

// Appender is data that encodes itself as JSON, appending to b, the
// bytes json.Marshal would give, without reflection: the records a run
// writes for each step.
type Appender interface {
	AppendJSON(b []byte) ([]byte, error)
}

// add numbers a record, adds its line to the staged ones and, if write is
// set, writes them all to the file in one write.
func (w *Writer) add(kind string, data any, write bool) (int64, error) {
	if !plainKind(kind) {
		return 0, fmt.Errorf("journal: record kind %q: only lower-case letters and '-'", kind)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lateErr != nil {
		return 0, w.lateErr
	}
	first := len(w.staged) == 0
	staged, err := appendLine(w.staged, w.seq+1, time.Now().UTC(), kind, data)
	if err != nil {
		return 0, err
	}
	w.staged = staged
	w.seq++
	if write {
		return w.seq, w.flushLocked()
	}
	if first {
		if w.stale == nil {
			w.stale = time.AfterFunc(staleAfter, w.flushStale)
		} else {
			w.stale.Reset(staleAfter)
		}
	}
	return w.seq, nil
}

// staleAfter bounds how long a staged record waits for the next one
// written: whoever reads the journal of a run still going (runbook
// show-run) sees a step start within it.
const staleAfter = 200 * time.Millisecond

func (w *Writer) flushStale() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.flushLocked(); err != nil && w.lateErr == nil {
		w.lateErr = err
	}
}

// flushLocked writes the staged lines to the file. w.mu is held.
func (w *Writer) flushLocked() error {
	if len(w.staged) == 0 {
		return nil
	}
	n, err := w.f.Write(w.staged)
	w.size += int64(n)
	if err != nil {
		// Whatever part reached the file ends in a torn line, which a
		// reader ignores; the records are not written again.
		w.staged = w.staged[:0]
		return err
	}
	w.written = w.seq
	w.staged = w.staged[:0]
	return nil
}

// appendLine appends the line of a record to b: "<crc32c> <json>\n", the
// JSON of the record built by hand around its data's, so that the data is
// encoded once, straight into b. On an error b is returned as it was.
func appendLine(b []byte, seq int64, at time.Time, kind string, data any) ([]byte, error) {
	start := len(b)
	b = append(b, "00000000 "...)
	body := len(b)
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"time":"`...)
	b = at.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","kind":"`...)
	b = append(b, kind...)
	b = append(b, `","data":`...)
	var out, raw []byte
	var err error
	if a, ok := data.(Appender); ok {
		out, err = a.AppendJSON(b)
	} else if raw, err = json.Marshal(data); err == nil {
		out = append(b, raw...)
	}
	if err != nil {
		return b[:start], err
	}
	b = out
	b = append(b, '}')
	sum := crc32.Checksum(b[body:], castagnoli)
	const hex = "0123456789abcdef"
	for i := 7; i >= 0; i-- {
		b[start+i] = hex[sum&0xf]
		sum >>= 4
	}
	return append(b, '\n'), nil
}

// plainKind reports whether a record kind needs no quoting in JSON.
func plainKind(kind string) bool {
	if kind == "" {
		return false
	}
	for _, r := range kind {
		if !(r >= 'a' && r <= 'z' || r == '-') {
			return false
		}
	}
	return true
}

// Sync makes every record written or staged so far durable.
func (w *Writer) Sync() error {
	w.mu.Lock()
	err := w.lateErr
	if err == nil {
		err = w.flushLocked()
	}
	seq := w.seq
	w.mu.Unlock()
	if err != nil {
		return err
	}
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
	upTo, size := w.written, w.size
	w.mu.Unlock()
	if err := w.f.Sync(); err != nil {
		return err
	}
	if w.syncDir != nil {
		if err := w.syncDir(); err != nil {
			return err
		}
		w.syncDir = nil
	}
	w.synced = upTo
	afterSync(w.f.Name(), size)
	return nil
}

// Close syncs what Write and Stage left and closes the journal file.
func (w *Writer) Close() error {
	serr := w.Sync()
	w.mu.Lock()
	if w.stale != nil {
		w.stale.Stop()
	}
	w.mu.Unlock()
	if err := w.f.Close(); err != nil {
		return err
	}
	return serr
}

// Read returns the records of the journal in f that can be trusted, and
// the problem that ended the reading, if any. It reads from the start of
// the file, whatever f's offset.
func Read(f *os.File) ([]Record, *Problem, error) {
	recs, _, prob, err := read(f)
	return recs, prob, err
}

// read also returns the byte length of the trusted part.
func read(f *os.File) ([]Record, int64, *Problem, error) {
	br := bufio.NewReader(io.NewSectionReader(f, 0, 1<<62))
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
