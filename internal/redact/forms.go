package redact

import (
	"encoding/json"
	"fmt"
	"html"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// encoder writes a text the way one syntax escapes it inside a quoted
// string: each turns a character into a fixed sequence, so the escaped
// secret is a substring of the escaped text around it.
type encoder func(string) string

// encoders are the syntaxes a secret passes through on its way to output.
var encoders = []encoder{
	// Shell single quotes, as ShellQuote and bash's xtrace write them, and
	// as dash's xtrace does.
	strings.NewReplacer(`'`, `'\''`).Replace,
	strings.NewReplacer(`'`, `'"'"'`).Replace,
	// Shell double quotes.
	strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`").Replace,
	// Shell words escaped character by character (bash's printf %q), and
	// ANSI-C quoting ($'...', printf %q of a value with a control
	// character).
	shellBackslash,
	ansiC,
	// An SQL string literal, and PostgreSQL quoting it back in an error.
	strings.NewReplacer(`'`, `''`).Replace,
	// An SQL identifier.
	strings.NewReplacer(`"`, `""`).Replace,
	// A conninfo value, an E'' string.
	strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace,
	// A postgresql.conf value (PostgreSQL's escape_quotes does the same).
	strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace,
	// A .pgpass field.
	strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace,
	jsonHTML,
	jsonPlain,
	jsonASCII,
	goQuote,
	goQuoteASCII,
	url.QueryEscape,
	url.PathEscape,
	userinfo,
	html.EscapeString,
}

// outers are the syntaxes that wrap another: a conninfo inside
// postgresql.conf, a Go error quoting a URL or a quoted command, JSON
// holding any of them.
var outers = []encoder{
	strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace,
	goQuote,
	goQuoteASCII,
	jsonHTML,
	jsonPlain,
	jsonASCII,
}

// Forms returns every form s takes in output: as it is, escaped by each
// syntax, and escaped by one syntax inside another. They are distinct and
// longest first.
func Forms(s string) []string {
	if s == "" {
		return nil
	}
	set := map[string]bool{s: true}
	for _, e := range encoders {
		inner := e(s)
		set[inner] = true
		for _, o := range outers {
			set[o(inner)] = true
		}
	}
	for _, o := range outers {
		set[o(s)] = true
	}
	out := make([]string, 0, len(set))
	for f := range set {
		if f != "" {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if len(out[i]) != len(out[j]) {
			return len(out[i]) > len(out[j])
		}
		return out[i] < out[j]
	})
	return out
}

// shellBackslash escapes s as bash's printf %q does a word without
// control characters: a backslash before each character the shell takes
// as syntax, # only at the start and ~ only where a tilde expands.
func shellBackslash(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case strings.IndexByte(" \t\n'\"\\|&;()<>!{}*[?]^$`,", c) >= 0,
			c == '#' && i == 0,
			c == '~' && (i == 0 || s[i-1] == '=' || s[i-1] == ':'):
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// ansiCNamed are the control characters a bash $'...' string writes by
// a letter.
var ansiCNamed = map[byte]string{'\n': `\n`, '\t': `\t`, '\r': `\r`, '\a': `\a`, '\b': `\b`, '\f': `\f`, '\v': `\v`, 0x1b: `\E`}

// ansiC escapes s as the inside of a bash $'...' string.
func ansiC(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch named := ansiCNamed[c]; {
		case c == '\\' || c == '\'':
			b.WriteByte('\\')
			b.WriteByte(c)
		case named != "":
			b.WriteString(named)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func jsonHTML(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

func jsonPlain(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	out := strings.TrimSuffix(b.String(), "\n")
	return out[1 : len(out)-1]
}

// jsonASCII escapes as JSON encoders that keep to ASCII do (Python's
// json.dumps, jq -a): every character outside printable ASCII as \uXXXX.
func jsonASCII(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20 || r == 0x7f || r > 0x7f && r < 0x10000 || r == utf8.RuneError:
			fmt.Fprintf(&b, `\u%04x`, r)
		case r >= 0x10000:
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func goQuote(s string) string {
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

func goQuoteASCII(s string) string {
	q := strconv.QuoteToASCII(s)
	return q[1 : len(q)-1]
}

// userinfo escapes s as the password of a URL's user information.
func userinfo(s string) string {
	u := url.UserPassword("u", s).String()
	return strings.TrimPrefix(u, "u:")
}
