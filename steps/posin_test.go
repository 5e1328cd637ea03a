package steps

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/diag"
)

// valueNode returns the first scalar value in src that holds find.
func valueNode(t *testing.T, src, find string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("%q: %v", src, err)
	}
	for _, n := range scalars(&doc) {
		if strings.Contains(n.Value, find) {
			return n
		}
	}
	t.Fatalf("%q: no value holds %q", src, find)
	return nil
}

// textAt returns the source text from p to the end of its line, with the
// line breaks of a CRLF file taken as YAML takes them.
func textAt(src string, p diag.Pos) string {
	lines := strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n")
	if p.Line < 1 || p.Line > len(lines) {
		return ""
	}
	i := byteIndex(lines[p.Line-1], p.Col-1)
	if i < 0 {
		return ""
	}
	return lines[p.Line-1][i:]
}

// TestPosIn: Decoder.PosIn places a byte of a scalar's value at its line
// and column (1-based, in characters) in the file, for every style of
// scalar, nested in a playbook, after escapes, doubled quotes, folded and
// blank lines, multi-byte characters and in a file with CRLF line breaks.
// Each wanted position is checked against the source too: the text there
// is what the value holds at the offset (or, after an escape, the escape).
func TestPosIn(t *testing.T) {
	tests := []struct {
		name string
		src  string
		// find is the text looked for in the value; at, when set, is the
		// source text expected at the position instead of find.
		find, at string
		want     diag.Pos
	}{
		{"plain", "x: echo $a b\n", "$a", "", diag.Pos{Line: 1, Col: 9}},
		{"plain folded on two lines", "x: plain\n  next $a\n", "$a", "", diag.Pos{Line: 2, Col: 8}},
		{"double-quoted after escapes and é", "x: \"tab\\there é $a\"\n", "$a", "", diag.Pos{Line: 1, Col: 17}},
		{"double-quoted escape itself", "x: \"a\\u00e9b\"\n", "é", `\u00e9b"`, diag.Pos{Line: 1, Col: 6}},
		{"double-quoted escaped line break", "x: \"double \\\n  joined $a\"\n", "$a", "", diag.Pos{Line: 2, Col: 10}},
		{"single-quoted after a doubled quote", "x: 'it''s $a'\n", "$a", "", diag.Pos{Line: 1, Col: 11}},
		{"double-quoted in a flow mapping", "x: {command: \"echo \\\"$a\\\"\", y: 1}\n", "$a", "", diag.Pos{Line: 1, Col: 22}},
		{"literal in a step, header comment", "steps:\n  - id: a\n    ssh-exec:\n      command: | # a comment\n        if true; then\n          echo $a\n        fi\n",
			"$a", "", diag.Pos{Line: 6, Col: 16}},
		{"literal after blank lines", "x: |\n\n\n  after $a\n", "$a", "", diag.Pos{Line: 4, Col: 9}},
		{"literal with é ü", "x: |\n  é ü $a\n", "$a", "", diag.Pos{Line: 2, Col: 7}},
		{"literal with an indentation indicator", "steps:\n  - command: |2\n       indented first $a\n      then\n", "$a", "", diag.Pos{Line: 3, Col: 23}},
		{"folded, a more-indented line", "x: >\n  one\n    two $a\n  three\n", "$a", "", diag.Pos{Line: 3, Col: 9}},
		{"folded, the line after a more-indented one", "x: >\n  one\n    two\n  three $a\n", "$a", "", diag.Pos{Line: 4, Col: 9}},
		{"CRLF line breaks", "steps:\r\n  - id: a\r\n    ssh-exec:\r\n      command: |\r\n        set -e\r\n        echo $a\r\n", "$a", "", diag.Pos{Line: 6, Col: 14}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := valueNode(t, tt.src, tt.find)
			off := strings.Index(n.Value, tt.find)
			d := &Decoder{Source: []byte(tt.src)}
			got := d.PosIn(n, off)
			if got != tt.want {
				t.Errorf("value %q: %q at %v, want %v", n.Value, tt.find, got, tt.want)
			}
			at := tt.at
			if at == "" {
				at = tt.find
			}
			if s := textAt(tt.src, tt.want); !strings.HasPrefix(s, at) {
				t.Errorf("the source at %v reads %q, not %q: the wanted position is wrong", tt.want, s, at)
			}
		})
	}
}

// TestPosInLineBreaksAndEnds: the offset of a line break of a block
// scalar is the end of the line it ends; the end of the value is the end
// of its last line of content, also when chomping keeps the blank lines
// after it (|+).
func TestPosInLineBreaksAndEnds(t *testing.T) {
	tests := []struct {
		src    string
		offset func(v string) int
		want   diag.Pos
	}{
		// "one\ntwo\n": the break after "one" is after "  one" on line 2.
		{"x: |\n  one\n  two\n", func(v string) int { return strings.IndexByte(v, '\n') }, diag.Pos{Line: 2, Col: 6}},
		{"x: |\n  one\n  two\n", func(v string) int { return len(v) }, diag.Pos{Line: 3, Col: 6}},
		{"x: |+\n  kept $a\n\n", func(v string) int { return len(v) }, diag.Pos{Line: 2, Col: 10}},
		{"x: >-\n  a\n  b $a\n", func(v string) int { return len(v) }, diag.Pos{Line: 3, Col: 7}},
		{"x: echo $a\n", func(v string) int { return len(v) }, diag.Pos{Line: 1, Col: 11}},
	}
	for _, tt := range tests {
		n := valueNode(t, tt.src, "")
		off := tt.offset(n.Value)
		if got := (&Decoder{Source: []byte(tt.src)}).PosIn(n, off); got != tt.want {
			t.Errorf("%q: offset %d of %q at %v, want %v", tt.src, off, n.Value, got, tt.want)
		}
	}
}

// TestPosInWithoutSource: a decoder without the file's text (the
// inventory's) estimates from the node's own position, which is exact on
// a scalar's first line: plain, and quoted past the opening quote. An
// offset past the value is its end.
func TestPosInWithoutSource(t *testing.T) {
	tests := []struct {
		src, find string
		want      diag.Pos
		at        string // the source there
	}{
		{"x: echo $a b\n", "$a", diag.Pos{Line: 1, Col: 9}, "$a b"},
		{"hosts:\n  pg1: {address: \"10.0.0.$a\"}\n", "$a", diag.Pos{Line: 2, Col: 26}, "$a\"}"},
		{"x: 'abc'\n", "", diag.Pos{Line: 1, Col: 8}, "'"},
	}
	for _, tt := range tests {
		n := valueNode(t, tt.src, tt.find)
		off := strings.Index(n.Value, tt.find)
		if tt.find == "" {
			off = 100
		}
		if got := (&Decoder{}).PosIn(n, off); got != tt.want {
			t.Errorf("%q: offset %d of %q at %v, want %v", tt.src, off, n.Value, got, tt.want)
		}
		if s := textAt(tt.src, tt.want); s != tt.at {
			t.Errorf("the source at %v reads %q, not %q: the wanted position is wrong", tt.want, s, tt.at)
		}
	}
}

// TestBlockIndent: the indentation of a block scalar's content comes from
// its first line that is not blank, or from an indentation indicator
// counted from the parent's indentation (a "- " counts as indentation);
// a comment after the header is not an indicator.
func TestBlockIndent(t *testing.T) {
	tests := []struct {
		src  string
		want int
	}{
		{"x: |\n  a\n", 2},
		{"x: |\n\n   \n    a\n", 4},
		{"x: | # 3 lines\n    a\n", 4},
		{"x: |1-\n  a\n", 1},
		{"  - |2\n       a\n", 6},
		{"  key: >+3\n        a\n", 5},
		{"x: |\n", -1},
	}
	for _, tt := range tests {
		lines := strings.Split(tt.src, "\n")
		bi := strings.IndexAny(lines[0], "|>")
		if got := blockIndent(lines, 0, bi); got != tt.want {
			t.Errorf("%q: indentation %d, want %d", tt.src, got, tt.want)
		}
	}
}

// TestEscapeLen: an escape of a double-quoted scalar reads as its
// character and takes its bytes of the source; a malformed one is refused.
func TestEscapeLen(t *testing.T) {
	tests := []struct {
		src  string
		out  string
		n    int
		okay bool
	}{
		{`\n rest`, "\n", 2, true},
		{`\"`, `"`, 2, true},
		{`\x41z`, "A", 4, true},
		{`\u00e9`, "é", 6, true},
		{`\U0001F600`, "😀", 10, true},
		{`\L`, "\u2028", 2, true},
		{`\q`, "", 0, false},
		{`\x4`, "", 0, false},
		{`\xZZ`, "", 0, false},
		{`\`, "", 0, false},
	}
	for _, tt := range tests {
		e, ok := escapeLen(tt.src)
		if ok != tt.okay || e.out != tt.out || e.src != tt.n {
			t.Errorf("%q: %q, %d bytes, %v; want %q, %d, %v", tt.src, e.out, e.src, ok, tt.out, tt.n, tt.okay)
		}
	}
}

// TestByteIndex: columns count characters, not bytes.
func TestByteIndex(t *testing.T) {
	for _, tt := range []struct {
		s         string
		col, want int
	}{
		{"aé b", 0, 0}, {"aé b", 2, 3}, {"aé b", 4, 5}, {"ab", 2, 2}, {"ab", 3, -1}, {"", 1, -1},
	} {
		if got := byteIndex(tt.s, tt.col); got != tt.want {
			t.Errorf("byteIndex(%q, %d) = %d, want %d", tt.s, tt.col, got, tt.want)
		}
	}
}
