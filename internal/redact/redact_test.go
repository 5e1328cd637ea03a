package redact

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// corpus holds secrets that each break a naive redactor somewhere.
var corpus = []string{
	`it's "quoted" \ back\slash`,
	"tab\there and\nnewline",
	`a&b<c>d"e'f`,
	"non-ASCII: pässwörd ✓ 𝄞",
	"prefix-secret",
	"prefix-secret-and-more",
	`semi;colon $dollar` + "`tick`",
	`pgpass:colon\`,
	strings.Repeat("0123456789abcdef'\"\\", 16)[:300],
}

func TestFormsAreMasked(t *testing.T) {
	r := New(corpus)
	for _, s := range corpus {
		for _, f := range Forms(s) {
			text := "before " + f + " after"
			got := r.String(text)
			if !strings.HasPrefix(got, "before ") || !strings.HasSuffix(got, " after") || !strings.Contains(got, Mask) {
				t.Errorf("form %q of %q: got %q", f, s, got)
			}
		}
	}
}

// TestEveryFormHoldsTheAnchor: the cheap check that skips a secret must
// never skip one of its forms.
func TestEveryFormHoldsTheAnchor(t *testing.T) {
	for _, s := range corpus {
		a := anchor(s)
		for _, f := range Forms(s) {
			if a != "" && !strings.Contains(f, a) {
				t.Errorf("form %q of %q lacks its anchor %q", f, s, a)
			}
		}
	}
}

// TestDerivedForms checks the forms the libraries and servers runbook
// talks to really produce.
func TestDerivedForms(t *testing.T) {
	r := New(corpus)
	for _, s := range corpus {
		js, _ := json.Marshal(map[string]string{"v": s})
		u := &url.URL{Scheme: "http", Host: "h", Path: "/p/" + s, RawQuery: url.Values{"t": {s}}.Encode()}
		texts := []string{
			fmt.Sprintf("%q", s),
			fmt.Sprintf("%+q", s),
			string(js),
			fmt.Sprintf("Get %q: refused", u.String()),
			"ERROR: syntax error at or near \"'" + strings.ReplaceAll(s, "'", "''") + "'\"",
			"primary_conninfo = 'password=''" + strings.NewReplacer(`\`, `\\\\`, `'`, `\\''`).Replace(s) + "'' host=x'",
			"+ PGPASSWORD='" + strings.ReplaceAll(s, "'", `'"'"'`) + "'",
			strconv.Quote("export PW='" + strings.ReplaceAll(s, "'", `'\''`) + "'"),
		}
		for _, text := range texts {
			got := r.String(text)
			for _, piece := range []string{s, s[:len(s)/2], s[len(s)/2:]} {
				if len(piece) >= 4 && strings.Contains(got, piece) {
					t.Errorf("%q shows %q of %q", got, piece, s)
				}
			}
		}
	}
}

func TestPrefixAndOverlap(t *testing.T) {
	r := New([]string{"prefix-secret", "prefix-secret-and-more", "more-overlap"})
	cases := map[string]string{
		"x prefix-secret-and-more y":         "x " + Mask + " y",
		"x prefix-secret y":                  "x " + Mask + " y",
		"x prefix-secret-and-more-overlap y": "x " + Mask + " y",
	}
	for in, want := range cases {
		if got := r.String(in); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}

func TestValue(t *testing.T) {
	r := New([]string{"s3cret-value", "12345678901"})
	in := map[string]any{
		"stdout":       "the s3cret-value is here",
		"rows":         []any{map[string]any{"s3cret-value": 1, "n": 12345678901, "ok": true}},
		"list":         []string{"s3cret-value"},
		"s3cret-value": "key",
	}
	out := r.Value(in).(map[string]any)
	b, _ := json.Marshal(out)
	if strings.Contains(string(b), "s3cret") || strings.Contains(string(b), "12345678901") {
		t.Errorf("a secret is left: %s", b)
	}
	if in["stdout"] != "the s3cret-value is here" {
		t.Error("the input was changed in place")
	}
	if out["rows"].([]any)[0].(map[string]any)["ok"] != true {
		t.Errorf("a bool was changed: %s", b)
	}
}

func TestLinesAndTrimmed(t *testing.T) {
	r := New([]string{"  first-line-of-it\nsecond-line-of-it  "})
	got := r.String("+first-line-of-it\n+second-line-of-it\n")
	if strings.Contains(got, "line-of-it") {
		t.Errorf("a line of the secret shows: %q", got)
	}
}

func TestVerifier(t *testing.T) {
	var r *Redactor
	got := r.String("SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy")
	if got != "SCRAM-SHA-256$"+Mask {
		t.Errorf("got %q", got)
	}
}

func BenchmarkStringNoMatch(b *testing.B) {
	r := New(corpus)
	text := strings.Repeat("an ordinary line of output, nothing secret in it\n", 100)
	b.ResetTimer()
	for range b.N {
		_ = r.String(text)
	}
}
