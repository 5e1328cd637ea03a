// Package redact keeps secret values out of everything runbook shows and
// stores. A secret rarely appears as its plain text only: a shell quotes it,
// PostgreSQL doubles its quotes in an error, postgresql.conf and conninfo
// escape it, JSON and Go's %q escape it, a URL encodes it. A Redactor knows
// every such form of every secret, and masks all of them wherever they
// overlap, so that no part of a secret shows.
//
// Redact values before they are formatted: text that was cut, trimmed or
// joined before redaction may hold a piece of a secret that no form matches.
package redact

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
)

// Mask replaces a secret value.
const Mask = "********"

// MinLength is the shortest secret that can be redacted safely: a shorter
// value occurs by chance in ordinary output (a hex id, an LSN, a word), and
// masking it there both mangles the output and tells a reader what the
// secret is.
const MinLength = 8

// Redactor masks secret values, in every form they take, in text and in
// values. A nil Redactor masks only password verifiers. It is safe for
// concurrent use.
type Redactor struct {
	entries []entry
}

// entry is one text to mask, with its forms.
type entry struct {
	// base is the text whose forms these are.
	base string
	// anchor is a piece of text that every form contains (the longest run
	// of characters no encoding changes), so that text without it is
	// skipped cheaply; "" when there is none worth checking.
	anchor string
	forms  []string
}

// New returns a redactor of the given secret values; empty values are
// ignored. Every fragment of a value that output may show on its own (see
// Fragments) is masked, however short: the caller refuses values with a
// short fragment before they get here (see Weakness), unless the operator
// accepted that they mangle the output.
func New(secrets []string) *Redactor {
	return (*Redactor)(nil).with(secrets, 1)
}

// With returns a redactor that masks what r masks and the given values
// too, each in all its forms; r is not changed, and comes back as it is
// when it knows every value already. A run adds the values it computes
// from secrets (see tmpl.Taint) as it goes; their fragments are masked
// when they are MinLength bytes or more.
func (r *Redactor) With(secrets ...string) *Redactor {
	return r.with(secrets, MinLength)
}

func (r *Redactor) with(secrets []string, minFragment int) *Redactor {
	seen := map[string]bool{}
	var entries []entry
	if r != nil {
		entries = r.entries
		for _, e := range r.entries {
			seen[e.base] = true
		}
	}
	n := len(entries)
	add := func(base string) {
		if base == "" || seen[base] {
			return
		}
		seen[base] = true
		if len(entries) == n {
			// Copied before the first append: r's slice is shared.
			entries = append([]entry(nil), entries...)
		}
		entries = append(entries, entry{base: base, anchor: anchor(base), forms: Forms(base)})
	}
	for _, s := range secrets {
		add(s)
	}
	for _, s := range secrets {
		for _, f := range Fragments(s) {
			if len(f) >= minFragment {
				add(f)
			}
		}
	}
	if len(entries) == n && r != nil {
		return r
	}
	return &Redactor{entries: entries}
}

// Fragments returns the pieces of a secret that output may show on their
// own, which the redactor masks apart from the whole: the value without
// the blanks around it (a tool trims it), the value without any blank or
// line break, and each line of a value of several lines, trimmed (a diff,
// a log, a tool printing one line).
func Fragments(s string) []string {
	var out []string
	t := strings.TrimSpace(s)
	if t != s {
		out = append(out, t)
	}
	// Without any blank or line break: what the redactor finds in output
	// read without them (a command that folded or spaced the value).
	if c := strings.Join(strings.Fields(s), ""); c != s && c != t && c != "" {
		out = append(out, c)
	}
	if strings.ContainsAny(s, "\r\n") {
		for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
	}
	return out
}

// Weakness says why a secret's value cannot be masked safely by its
// length alone, or "": the value, or a fragment of it that output may
// show on its own (a line), is shorter than MinLength, so that it turns
// up by chance in output and would leak when shown apart.
func Weakness(s string) string {
	if len(s) < MinLength {
		return fmt.Sprintf("is %d bytes long, shorter than %d: so short a value turns up by chance in output", len(s), MinLength)
	}
	if t := strings.TrimSpace(s); len(t) < MinLength {
		return fmt.Sprintf("is %d bytes long without the blanks around it, shorter than %d: a tool that trims it would show it, and so short a value turns up by chance in output", len(t), MinLength)
	}
	if why := guessable(strings.TrimSpace(s)); why != "" {
		return why
	}
	if strings.ContainsAny(s, "\r\n") {
		for i, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
			if l = strings.TrimSpace(l); l != "" && len(l) < MinLength {
				return fmt.Sprintf("has a line (the %s) of %d bytes, shorter than %d: output that shows the lines apart (a diff, a log) would show it, and so short a line turns up by chance: use a value whose every line is at least %d bytes", ordinal(i+1), len(l), MinLength, MinLength)
			}
		}
	}
	return ""
}

// common are values that lists of leaked passwords start with, and the
// defaults of the tools around runbook: whoever guesses one unmasks
// every place it stands.
var common = map[string]bool{
	"password": true, "password1": true, "passw0rd": true, "12345678": true, "123456789": true,
	"1234567890": true, "qwertyui": true, "qwerty123": true, "qwertyuiop": true, "iloveyou": true,
	"letmein1": true, "admin123": true, "administrator": true, "changeme": true, "welcome1": true,
	"postgres1": true, "replicator": true, "inmanta1": true, "runbook1": true, "secret12": true, "secretpw": true,
	"trustno1": true, "sunshine": true, "football": true, "baseball": true, "superman": true,
	"p@ssw0rd": true, "p@ssword": true, "qwerty12": true, "abcd1234": true, "1q2w3e4r": true,
	"1qaz2wsx": true, "zaq12wsx": true, "postgres123": true, "password123": true, "admin1234": true,
	"welcome123": true, "changeme1": true, "letmein123": true, "master12": true, "monkey12": true,
}

// guessable says why a value, long enough, is still found by chance or
// guessed: only digits (a date, a number: runbook's own run ids hold
// the date), one character repeated, a run of the alphabet or the
// digits, or a well-known password.
func guessable(s string) string {
	switch {
	case s == "":
		return ""
	case common[strings.ToLower(s)]:
		return "is a well-known password: whoever guesses it unmasks every place it stands"
	case strings.Trim(s, "0123456789") == "" && len(s) < 16:
		return fmt.Sprintf("is only digits (%d): a number or a date turns up by chance in output (runbook's own run ids hold the date)", len(s))
	case strings.Trim(s, "0123456789-/:.T ") == "" && len(s) < 26:
		return "is a date or a time: it turns up by chance in output (runbook's own run ids hold the date)"
	case strings.Trim(s, s[:1]) == "":
		return "is one character repeated"
	case strings.Contains("abcdefghijklmnopqrstuvwxyz0123456789", strings.ToLower(s)) || strings.Contains("zyxwvutsrqponmlkjihgfedcba9876543210", strings.ToLower(s)):
		return "is a run of the alphabet or of the digits"
	}
	return ""
}

func ordinal(n int) string {
	switch {
	case n%100 >= 11 && n%100 <= 13:
		return fmt.Sprintf("%dth", n)
	case n%10 == 1:
		return fmt.Sprintf("%dst", n)
	case n%10 == 2:
		return fmt.Sprintf("%dnd", n)
	case n%10 == 3:
		return fmt.Sprintf("%drd", n)
	}
	return fmt.Sprintf("%dth", n)
}

// Empty reports whether the redactor knows no secret.
func (r *Redactor) Empty() bool { return r == nil || len(r.entries) == 0 }

// String returns s with every form of every secret masked, and password
// verifiers too. Overlapping matches (one secret the prefix of another,
// two forms that overlap) are masked as one.
func (r *Redactor) String(s string) string {
	if s == "" {
		return s
	}
	var spans []span
	if r != nil {
		spans = r.find(s, nil, spans)
		// The same text with the escapes of a syntax undone: a form that
		// escaped more than it had to.
		if strings.ContainsAny(s, "%&\\\x1b \t\r\n") {
			// Reading without blanks and line breaks finds only what holds
			// a secret's anchor once they are gone (every form holds it,
			// unescaped): checked on the text first, which is cheap.
			var skip func(string) decoded
			plain := s
			if strings.Contains(s, "\x1b") {
				plain = ansiDecode(s).text
			}
			if hasLayout(s) && !r.anchored(compact(plain)) {
				skip = layoutDecode
			}
			for _, d := range decodingsExcept(s, skip) {
				spans = r.find(d.text, &d, spans)
			}
		}
	}
	if len(spans) > 0 {
		s = mask(s, spans)
	}
	// A password verifier read back from pg_authid is as good as a hash of
	// the password: kept out of outputs and journals too.
	if strings.Contains(s, "SCRAM-SHA-256$") {
		s = scramVerifier.ReplaceAllString(s, "SCRAM-SHA-256$"+Mask)
	}
	return s
}

// anchored reports whether s holds the anchor of a secret, or some
// secret has none.
func (r *Redactor) anchored(s string) bool {
	for _, e := range r.entries {
		if e.anchor == "" || strings.Contains(s, e.anchor) {
			return true
		}
	}
	return false
}

// find appends the spans of s where a form of a secret is; when s is a
// decoded text, the spans are those of the text it was decoded from.
func (r *Redactor) find(s string, d *decoded, spans []span) []span {
	for _, e := range r.entries {
		if e.anchor != "" && !strings.Contains(s, e.anchor) {
			continue
		}
		for _, f := range e.forms {
			for i := 0; i < len(s); {
				j := strings.Index(s[i:], f)
				if j < 0 {
					break
				}
				sp := span{i + j, i + j + len(f)}
				if d != nil {
					sp = span{d.from[sp.from], d.to[sp.to-1]}
				}
				spans = append(spans, sp)
				i += j + 1
			}
		}
	}
	return spans
}

var scramVerifier = regexp.MustCompile(`SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+`)

type span struct{ from, to int }

// mask replaces the union of spans in s, each run of overlapping or
// touching spans by one Mask.
func mask(s string, spans []span) string {
	sort.Slice(spans, func(i, j int) bool { return spans[i].from < spans[j].from })
	var b strings.Builder
	last := 0
	cur := spans[0]
	flush := func() {
		b.WriteString(s[last:cur.from])
		b.WriteString(Mask)
		last = cur.to
	}
	for _, sp := range spans[1:] {
		if sp.from <= cur.to {
			cur.to = max(cur.to, sp.to)
			continue
		}
		flush()
		cur = sp
	}
	flush()
	b.WriteString(s[last:])
	return b.String()
}

// Contains reports whether s holds a form of a secret (or a verifier).
func (r *Redactor) Contains(s string) bool { return r.String(s) != s }

// Value returns v with secrets masked in every string it holds: map keys,
// elements of lists, and numbers whose text is a secret. Maps and lists are
// copied, never changed in place (a run still reads them); a map or list of
// another type comes back as map[string]any or []any.
func (r *Redactor) Value(v any) any {
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		return r.String(v)
	case []byte:
		return r.String(string(v))
	case bool:
		return v
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[r.key(out, k)] = r.Value(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = r.Value(e)
		}
		return out
	case []string:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = r.String(e)
		}
		return out
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		if r.Empty() {
			return v
		}
		if s := fmt.Sprint(v); r.Contains(s) {
			return r.String(s)
		}
		return v
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return v
		}
		out := make(map[string]any, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			out[r.key(out, it.Key().String())] = r.Value(it.Value().Interface())
		}
		return out
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = r.Value(rv.Index(i).Interface())
		}
		return out
	case reflect.String:
		return r.String(rv.String())
	}
	return v
}

// key redacts a map key, keeping it apart from the keys out already has.
func (r *Redactor) key(out map[string]any, k string) string {
	rk := r.String(k)
	if rk == k {
		return k
	}
	for i := 2; ; i++ {
		if _, taken := out[rk]; !taken {
			return rk
		}
		rk = fmt.Sprintf("%s#%d", r.String(k), i)
	}
}

// Error returns err with its message redacted; errors.Is and errors.As
// still see the error it wraps. A nil error stays nil.
func (r *Redactor) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	red := r.String(msg)
	if red == msg {
		return err
	}
	return &redactedError{err: err, msg: red}
}

type redactedError struct {
	err error
	msg string
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// anchor returns the longest run of characters that no encoding of Forms
// changes, or "" when it is too short to be worth a check.
func anchor(s string) string {
	best, start := "", -1
	for i := 0; i <= len(s); i++ {
		if i < len(s) && plain(s[i]) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 && i-start > len(best) {
			best = s[start:i]
		}
		start = -1
	}
	if len(best) < 3 {
		return ""
	}
	return best
}

func plain(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}
