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

// escapeAll escapes every byte (or rune) of s that keep does not keep.
func escapeAll(s string, keep func(rune) bool, esc func(rune) string) string {
	var b strings.Builder
	for _, c := range s {
		if keep(c) {
			b.WriteRune(c)
		} else {
			b.WriteString(esc(c))
		}
	}
	return b.String()
}

func alnum(c rune) bool {
	return c < 0x80 && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9')
}
func none(rune) bool { return false }

// bytesEsc escapes each byte of a character's UTF-8 form with format.
func bytesEsc(format string) func(rune) string {
	return func(c rune) string {
		var b strings.Builder
		for _, x := range []byte(string(c)) {
			fmt.Fprintf(&b, format, x)
		}
		return b.String()
	}
}

// TestEscapeVariants: encoders that escape more than they must, in ways
// no list of forms can hold (every byte as %XX in either case, any
// character as an HTML entity or \uXXXX, / as \/, é as \xE9), alone and
// inside JSON. Each must be masked whole.
func TestEscapeVariants(t *testing.T) {
	r := New(corpus)
	variants := map[string]func(string) string{
		"percent every byte":        func(s string) string { return escapeAll(s, none, bytesEsc("%%%02X")) },
		"percent every byte, lower": func(s string) string { return escapeAll(s, none, bytesEsc("%%%02x")) },
		"percent but alnum, lower":  func(s string) string { return escapeAll(s, alnum, bytesEsc("%%%02x")) },
		"html &apos; &quot;": func(s string) string {
			return strings.NewReplacer("&", "&amp;", "'", "&apos;", `"`, "&quot;", "<", "&lt;", ">", "&gt;").Replace(s)
		},
		"html &#x27;": func(s string) string {
			return escapeAll(s, alnum, func(c rune) string { return fmt.Sprintf("&#x%X;", c) })
		},
		"html &#39;": func(s string) string {
			return escapeAll(s, alnum, func(c rune) string { return fmt.Sprintf("&#%d;", c) })
		},
		"html every &#nn": func(s string) string {
			return escapeAll(s, none, func(c rune) string { return fmt.Sprintf("&#%d;", c) })
		},
		"json \\/ and \\u": func(s string) string {
			return escapeAll(s, func(c rune) bool { return alnum(c) || c == ' ' }, func(c rune) string {
				if c == '/' {
					return `\/`
				}
				if c >= 0x10000 {
					c -= 0x10000
					return fmt.Sprintf(`\u%04X\u%04X`, 0xd800+(c>>10), 0xdc00+(c&0x3ff))
				}
				return fmt.Sprintf(`\u%04x`, c)
			})
		},
		"yaml \\xE9": func(s string) string {
			return escapeAll(s, func(c rune) bool { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\' }, func(c rune) string {
				switch {
				case c < 0x100:
					return fmt.Sprintf(`\x%02X`, c)
				case c >= 0x10000:
					return fmt.Sprintf(`\U%08X`, c)
				}
				return fmt.Sprintf(`\u%04x`, c)
			})
		},
		"python bytes \\xc3": func(s string) string {
			return escapeAll(s, func(c rune) bool { return c >= 0x20 && c < 0x7f && c != '\'' && c != '\\' }, bytesEsc(`\x%02x`))
		},
	}
	for name, v := range variants {
		for _, s := range corpus {
			enc := v(s)
			for _, text := range []string{"before " + enc + " after", "before " + jsonPlain(enc) + " after", "before " + jsonASCII(enc) + " after"} {
				if got := r.String(text); got != "before "+Mask+" after" {
					t.Errorf("%s of %q: got %q", name, s, got)
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

// TestShortLines: a secret of several short lines is refused as weak
// (Weakness), and when the operator runs anyway each line is masked
// wherever it shows on its own.
func TestShortLines(t *testing.T) {
	s := "x9#k\nq7!z\nm2$w"
	if Weakness(s) == "" {
		t.Errorf("%q: not weak", s)
	}
	got := New([]string{s}).String("+x9#k\n+q7!z\n-m2$w\n")
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(got, l) {
			t.Errorf("line %q shows: %q", l, got)
		}
	}
	for _, ok := range []string{"a-fine-secret", "a-long-first-line\nanother-long-line\n"} {
		if w := Weakness(ok); w != "" {
			t.Errorf("%q: %s", ok, w)
		}
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

func BenchmarkStringEscapesNoMatch(b *testing.B) {
	r := New(corpus)
	text := strings.Repeat(`an ordinary line & "quoted\" \\ 50% of it\n`, 100)
	b.ResetTimer()
	for range b.N {
		_ = r.String(text)
	}
}

// TestSplitAndColoured: a secret a command split over lines or blanks
// (fold, sed 's/./& /g'), coloured inside (grep --color), or whose lines
// runbook itself joined with " / ", is masked whole.
func TestSplitAndColoured(t *testing.T) {
	const pw = "Sup3rS3cretPw!Zq"
	r := New([]string{pw, "correct horse battery staple"})
	for _, out := range []string{
		"Sup3rS3\ncretPw!\nZq\n",
		"S u p 3 r S 3 c r e t P w ! Z q",
		"Sup3r\x1b[01;31m\x1b[KS3c\x1b[m\x1b[KretPw!Zq\n",
		"\x1b]8;;http://x\x07Sup3rS3cret\x1b]8;;\x1b\\Pw!Zq",
		"\x1b[1mSup3rS3cret\x1b(B\x1b[mPw!Zq",
		"\x1b[31mSup3rS3\ncretPw!Zq\x1b[0m",
		"exit status 3: Sup3rS3 / cretPw!Zq",
		"correct horse\nbattery staple",
	} {
		got := r.String(out)
		for _, piece := range []string{"S3cret", "cretPw", "Sup3r", "battery"} {
			if strings.Contains(got, piece) {
				t.Errorf("%q: %q shows %q", out, got, piece)
			}
		}
		if !strings.Contains(got, Mask) {
			t.Errorf("%q: nothing masked: %q", out, got)
		}
	}
	if got := r.String("a plain line of output, with words"); got != "a plain line of output, with words" {
		t.Errorf("output without the secret changed: %q", got)
	}
}

// TestGuessable: values long enough that are still found by chance or
// guessed are weak.
func TestGuessable(t *testing.T) {
	for _, s := range []string{"12345678", "20261130", "runbook1", "Password", "aaaaaaaaaa", "abcdefghij", "98765432", "2026-11-30", "P@ssw0rd", "1q2w3e4r"} {
		if Weakness(s) == "" {
			t.Errorf("%q: not weak", s)
		}
	}
	for _, s := range []string{"Sup3rS3cretPw!Zq", "it's a \"good\" one\\", "2026-11-30T19:57:59Z-9f3a"} {
		if w := Weakness(s); w != "" {
			t.Errorf("%q: weak: %s", s, w)
		}
	}
}

// BenchmarkStringNoMatchTypical: the secrets of a run (passwords, a
// token) over output that holds none: the common case of every step.
func BenchmarkStringNoMatchTypical(b *testing.B) {
	r := New([]string{"Sup3rS3cretPw!Zq", "it's a \"good\" one\\", "tok_9f3a77c2e1b04d5a"})
	text := strings.Repeat("an ordinary line of output, nothing secret in it\n", 100)
	b.ResetTimer()
	for range b.N {
		_ = r.String(text)
	}
}
