package redact

import (
	"html"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The forms of Forms are the ones a syntax writes by default. An encoder
// may also escape more than it must: every byte as %XX (in either case),
// a quote as &apos;, &#39; or &#x27;, / as \/ in JSON, é as \u00e9 or
// \xE9. Those variants multiply with the length of a secret and cannot be
// listed, so the redactor also reads output through decoders, each
// undoing one family of escapes, and through two of them in turn (a
// percent-encoded value inside JSON): a secret found in the decoded text
// is masked over the escapes it was decoded from.

// decoded is a text with escapes undone; from[i] and to[i] are the span
// of the original text that byte i of text came from.
type decoded struct {
	text     string
	from, to []int
}

// decoder undoes one family of escapes, or returns false when s has none.
type decoder struct {
	has    func(s string) bool // whether s may hold an escape of the family
	decode func(s string) decoded
}

func holds(sub string) func(string) bool {
	return func(s string) bool { return strings.Contains(s, sub) }
}

var decoders = []decoder{
	{holds("%"), percentDecode},
	{holds("&"), entityDecode},
	{holds(`\`), backslashDecode},
	{holds(`\x`), backslashRuneDecode},
	{holds("\x1b"), ansiDecode},
	{hasLayout, layoutDecode},
}

// ansiDecode removes terminal escape sequences (ECMA-48: CSI "ESC [
// parameters intermediates final", OSC "ESC ] ... BEL or ESC \\", and
// the two-byte ones): grep --color and ls --color put them inside words.
func ansiDecode(s string) decoded {
	var d builder
	for i := 0; i < len(s); {
		if s[i] != 0x1b || i+1 >= len(s) {
			d.add(s[i:i+1], i, i+1)
			i++
			continue
		}
		j := i + 2
		switch c := s[i+1]; {
		case c >= 0x20 && c <= 0x2f:
			// nF: intermediate bytes, then a final byte (ESC ( B, tput
			// sgr0's charset reset).
			j = i + 1
			for j < len(s) && s[j] >= 0x20 && s[j] <= 0x2f {
				j++
			}
			if j < len(s) {
				j++
			}
		case c == '[':
			for j < len(s) && s[j] >= 0x20 && s[j] <= 0x3f {
				j++
			}
			if j < len(s) {
				j++ // the final byte
			}
		case c == ']':
			for j < len(s) && s[j] != 0x07 && !(s[j] == 0x1b && j+1 < len(s) && s[j+1] == '\\') {
				j++
			}
			switch {
			case j < len(s) && s[j] == 0x07:
				j++
			case j < len(s):
				j += 2
			}
		}
		i = j
	}
	return d.done()
}

// hasLayout reports whether s has line breaks or blanks that could split
// a secret: a remote command that folds its output (fold, od -c, sed
// 's/./& /g'), or runbook's own " / " between the lines of an error.
func hasLayout(s string) bool { return strings.ContainsAny(s, " \t\r\n") }

// compact is s as layoutDecode reads it, without the map back.
func compact(s string) string {
	s = strings.ReplaceAll(s, " / ", "")
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
}

// layoutDecode removes blanks, line breaks and " / " (the join of an
// error's lines).
func layoutDecode(s string) decoded {
	var d builder
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], " / "):
			i += 3
		case s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n':
			i++
		default:
			d.add(s[i:i+1], i, i+1)
			i++
		}
	}
	return d.done()
}

// builder collects a decoded text and where each of its bytes came from.
type builder struct {
	b        strings.Builder
	from, to []int
}

func (d *builder) add(s string, from, to int) {
	d.b.WriteString(s)
	for range len(s) {
		d.from = append(d.from, from)
		d.to = append(d.to, to)
	}
}

func (d *builder) done() decoded { return decoded{d.b.String(), d.from, d.to} }

// percentDecode undoes URL encoding: %XX in either case, + as a space.
func percentDecode(s string) decoded {
	var d builder
	for i := 0; i < len(s); {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				d.add(string([]byte{byte(v)}), i, i+3)
				i += 3
				continue
			}
		}
		if s[i] == '+' {
			d.add(" ", i, i+1)
		} else {
			d.add(s[i:i+1], i, i+1)
		}
		i++
	}
	return d.done()
}

// entityDecode undoes HTML and XML character references: named ones
// (&apos;, &quot;, &amp;), decimal and hexadecimal ones (&#39;, &#x27;),
// with or without the closing ;.
func entityDecode(s string) decoded {
	var d builder
	for i := 0; i < len(s); {
		if s[i] == '&' {
			if out, n := entity(s[i:]); n > 0 {
				d.add(out, i, i+n)
				i += n
				continue
			}
		}
		d.add(s[i:i+1], i, i+1)
		i++
	}
	return d.done()
}

// entity decodes the character reference s starts with, and its length.
func entity(s string) (string, int) {
	if len(s) > 2 && s[1] == '#' {
		j, base := 2, 10
		if s[2] == 'x' || s[2] == 'X' {
			j, base = 3, 16
		}
		k := j
		for k < len(s) && k-j < 8 && (isDigit(s[k]) || base == 16 && isHex(s[k])) {
			k++
		}
		if k == j {
			return "", 0
		}
		v, err := strconv.ParseUint(s[j:k], base, 32)
		if err != nil || v > utf8.MaxRune {
			return "", 0
		}
		if k < len(s) && s[k] == ';' {
			k++
		}
		return string(rune(v)), k
	}
	end := strings.IndexByte(s, ';')
	if end < 2 || end > 32 {
		return "", 0
	}
	if out := html.UnescapeString(s[:end+1]); out != s[:end+1] {
		return out, end + 1
	}
	return "", 0
}

// backslashDecode undoes backslash escapes as JSON, YAML, Go, Python, C
// and the shell write them: \n and the other letters of control
// characters, \uXXXX (surrogate pairs too), \UXXXXXXXX, \xHH, octal \NNN,
// and a backslash before any other character (\/, \", \', \:, \$).
func backslashDecode(s string) decoded { return backslashes(s, false) }

// backslashRuneDecode is backslashDecode where \xHH is the character
// U+00HH, as YAML and Python's str write it (é as \xe9), not a byte.
func backslashRuneDecode(s string) decoded { return backslashes(s, true) }

func backslashes(s string, xRune bool) decoded {
	var d builder
	for i := 0; i < len(s); {
		if s[i] != '\\' || i+1 == len(s) {
			d.add(s[i:i+1], i, i+1)
			i++
			continue
		}
		out, n := backslash(s[i:])
		if xRune && s[i+1] == 'x' && n == 4 {
			out = string(rune(out[0]))
		}
		d.add(out, i, i+n)
		i += n
	}
	return d.done()
}

// backslash decodes the escape s starts with, and its length.
func backslash(s string) (string, int) {
	c := s[1]
	if v, ok := controls[c]; ok {
		return v, 2
	}
	hexRune := func(n int) (rune, bool) {
		if len(s) < 2+n {
			return 0, false
		}
		v, err := strconv.ParseUint(s[2:2+n], 16, 32)
		return rune(v), err == nil
	}
	switch c {
	case 'u':
		if r, ok := hexRune(4); ok {
			if r >= 0xd800 && r < 0xdc00 && len(s) >= 12 && s[6] == '\\' && s[7] == 'u' {
				if lo, err := strconv.ParseUint(s[8:12], 16, 32); err == nil && lo >= 0xdc00 && lo < 0xe000 {
					return string(0x10000 + (r-0xd800)<<10 + (rune(lo) - 0xdc00)), 12
				}
			}
			return string(r), 6
		}
	case 'U':
		if r, ok := hexRune(8); ok {
			return string(r), 10
		}
	case 'x':
		if len(s) >= 4 {
			if v, err := strconv.ParseUint(s[2:4], 16, 8); err == nil {
				return string([]byte{byte(v)}), 4
			}
		}
	}
	if c >= '0' && c <= '7' {
		k := 2
		for k < len(s) && k < 4 && s[k] >= '0' && s[k] <= '7' {
			k++
		}
		v, _ := strconv.ParseUint(s[1:k], 8, 16)
		return string([]byte{byte(v)}), k
	}
	_, n := utf8.DecodeRuneInString(s[1:])
	return s[1 : 1+n], 1 + n
}

var controls = map[byte]string{
	'n': "\n", 't': "\t", 'r': "\r", 'b': "\b", 'f': "\f", 'v': "\v", 'a': "\a", 'e': "\x1b", 'E': "\x1b",
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// decodings returns s read through each decoder whose escapes it holds,
// and through two of them in turn, with the map of each back to s. A
// decoding that changes nothing, or gives a text seen already, is left
// out.
func decodings(s string) []decoded {
	return decodingsExcept(s, nil)
}

// decodingsExcept is decodings without the decoder skip, when it is
// not nil.
func decodingsExcept(s string, skip func(string) decoded) []decoded {
	var out []decoded
	seen := map[string]bool{s: true}
	for _, d1 := range decoders {
		if !d1.has(s) || skip != nil && reflect.ValueOf(d1.decode).Pointer() == reflect.ValueOf(skip).Pointer() {
			continue
		}
		one := d1.decode(s)
		if seen[one.text] {
			continue
		}
		seen[one.text] = true
		out = append(out, one)
		for _, d2 := range decoders {
			if !d2.has(one.text) {
				continue
			}
			two := d2.decode(one.text)
			if seen[two.text] {
				continue
			}
			seen[two.text] = true
			// Map the second layer through the first.
			for i := range two.from {
				two.from[i], two.to[i] = one.from[two.from[i]], one.to[two.to[i]-1]
			}
			out = append(out, two)
		}
	}
	return out
}

// Decodings returns s read through every decoder the redactor uses, one
// and two in turn: what a reader decoding the output could see. For tests
// that look for secrets in output.
func Decodings(s string) []string {
	var out []string
	for _, d := range decodings(s) {
		out = append(out, d.text)
	}
	return out
}
