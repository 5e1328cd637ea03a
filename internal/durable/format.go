package durable

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/journal"
	"github.com/runbook-dev/runbook/steps"
)

// The records of a run's journal whose data is an event (intent, apply,
// process, outcome, guard, confirm, batch, end) hold the event's JSON: encoded by
// appendEvent, decoded by decodeEvent.

// eventData is an event as the data of a record. It encodes itself, for a
// local journal (journal.Appender) and for the shared store
// (json.Marshaler): a journal writes a few records for every step, and
// encoding/json's reflection was most of their cost.
type eventData struct{ ev *engine.Event }

// AppendJSON implements journal.Appender.
func (d eventData) AppendJSON(b []byte) ([]byte, error) { return appendEvent(b, d.ev) }

// MarshalJSON implements json.Marshaler.
func (d eventData) MarshalJSON() ([]byte, error) { return appendEvent(nil, d.ev) }

var (
	_ journal.Appender = eventData{}
	_ json.Marshaler   = eventData{}
)

// appendEvent appends the event's JSON to b: the bytes json.Marshal gives
// for it, built without reflection. Values of a result that are not plain
// JSON (strings, numbers, booleans, lists and maps of them) are encoded by
// encoding/json.
func appendEvent(b []byte, e *engine.Event) ([]byte, error) {
	b = append(b, '{')
	if !e.Time.IsZero() {
		b = append(b, `"time":`...)
		if y := e.Time.Year(); y < 0 || y > 9999 {
			raw, err := e.Time.MarshalJSON()
			if err != nil {
				return nil, err
			}
			b = append(b, raw...)
		} else {
			b = append(b, '"')
			b = e.Time.AppendFormat(b, time.RFC3339Nano)
			b = append(b, '"')
		}
		b = append(b, ',')
	}
	// "type" is never left out: every field after it starts with a comma.
	b = append(b, `"type":`...)
	b = appendJSONString(b, string(e.Type))
	b = appendJSONField(b, "playbook", e.Playbook)
	b = appendJSONInt(b, "index", int64(e.Index))
	b = appendJSONField(b, "id", e.ID)
	b = appendJSONField(b, "name", e.Name)
	b = appendJSONField(b, "host", e.Host)
	b = appendJSONInt(b, "pid", int64(e.PID))
	b = appendJSONInt(b, "item", int64(e.Item))
	b = appendJSONField(b, "status", string(e.Status))
	b = appendJSONInt(b, "duration_ns", int64(e.Duration))
	b = appendJSONField(b, "message", e.Message)
	b = appendJSONField(b, "print", e.Print)
	b = appendJSONField(b, "diff", e.Diff)
	b = appendJSONField(b, "warning", e.Warning)
	if e.DryRun {
		b = append(b, `,"dry_run":true`...)
	}
	if len(e.Result) > 0 {
		b = append(b, `,"result":`...)
		var err error
		if b, err = appendJSONValue(b, map[string]any(e.Result)); err != nil {
			return nil, err
		}
	}
	if len(e.Batches) > 0 {
		b = append(b, `,"batches":`...)
		// No element fails: the error is always nil.
		b, _ = appendJSONSeq(b, '[', ']', len(e.Batches), func(b []byte, i int) ([]byte, error) {
			hosts := e.Batches[i]
			if hosts == nil {
				return append(b, "null"...), nil
			}
			return appendJSONSeq(b, '[', ']', len(hosts), func(b []byte, j int) ([]byte, error) {
				return appendJSONString(b, hosts[j]), nil
			})
		})
	}
	if e.Resumed {
		b = append(b, `,"resumed":true`...)
	}
	b = appendJSONField(b, "word", e.Word)
	b = appendJSONField(b, "answer", e.Answer)
	if e.Yes {
		b = append(b, `,"yes":true`...)
	}
	b = appendJSONField(b, "operator", e.Operator)
	return append(b, '}'), nil
}

// appendJSONField appends a string field tagged omitempty.
func appendJSONField(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendJSONString(b, v)
}

// appendJSONInt appends an integer field tagged omitempty.
func appendJSONInt(b []byte, name string, v int64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

// appendJSONSeq appends n elements between open and close, separated by
// commas, each appended by elem; the first error stops it.
func appendJSONSeq(b []byte, open, close byte, n int, elem func(b []byte, i int) ([]byte, error)) ([]byte, error) {
	b = append(b, open)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = elem(b, i); err != nil {
			return nil, err
		}
	}
	return append(b, close), nil
}

// appendJSONValue appends v as encoding/json encodes it.
func appendJSONValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendJSONString(b, v), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			break // encoding/json's error
		}
		return appendJSONFloat(b, v), nil
	case steps.Result:
		return appendJSONValue(b, map[string]any(v))
	case map[string]any:
		if v == nil {
			return append(b, "null"...), nil
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return appendJSONSeq(b, '{', '}', len(keys), func(b []byte, i int) ([]byte, error) {
			b = appendJSONString(b, keys[i])
			b = append(b, ':')
			return appendJSONValue(b, v[keys[i]])
		})
	case []any:
		if v == nil {
			return append(b, "null"...), nil
		}
		return appendJSONSeq(b, '[', ']', len(v), func(b []byte, i int) ([]byte, error) {
			return appendJSONValue(b, v[i])
		})
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, raw...), nil
}

// appendJSONFloat formats like encoding/json: the shortest form that reads
// back as f, in exponent form only for very large or small magnitudes.
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 is written e-9.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendJSONString quotes s as encoding/json does: HTML characters and
// the line and paragraph separators escaped, invalid UTF-8 replaced.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Entry is a record of a run's journal with its data decoded by its kind:
// Header for a run record, Attempt for a resume record, Index (the step)
// for mark and step-done records, Event for every other kind.
type Entry struct {
	journal.Record
	Header  *Header
	Attempt *Attempt
	Index   int
	Event   *engine.Event
}

// Decode reads a record's data by its kind. On an error, the entry holds
// what could be read. A kind it does not know decodes to an entry with
// none of them set.
func Decode(r journal.Record) (Entry, error) {
	e := Entry{Record: r}
	var err error
	switch r.Kind {
	case KindRun:
		e.Header = &Header{}
		err = json.Unmarshal(r.Data, e.Header)
	case KindResume:
		e.Attempt = &Attempt{}
		err = json.Unmarshal(r.Data, e.Attempt)
	case KindMark, KindDone:
		var m struct {
			Index int `json:"index"`
		}
		err = json.Unmarshal(r.Data, &m)
		e.Index = m.Index
	case KindGuard, KindConfirm, KindIntent, KindApply, KindProcess, KindOutcome, KindEnd, KindBatch:
		e.Event, err = decodeEvent(r.Data)
	}
	return e, err
}

// decodeEvent reads an event with its result's numbers as int where they
// are whole, as the step types produce them, so that expressions of a
// resumed run compare them as before. On an error, the event holds what
// could be read.
func decodeEvent(data []byte) (*engine.Event, error) {
	var ev engine.Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return &ev, err
	}
	if ev.Result != nil {
		var raw struct {
			Result map[string]any `json:"result"`
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&raw); err != nil {
			return &ev, err
		}
		ev.Result = numbers(raw.Result).(map[string]any)
	}
	return &ev, nil
}

func numbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return int(i)
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		for k, e := range v {
			v[k] = numbers(e)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = numbers(e)
		}
		return v
	default:
		return v
	}
}
