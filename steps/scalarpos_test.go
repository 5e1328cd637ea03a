package steps

import (
	"strings"
	"testing"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/diag"
)

// scalarDocs hold a scalar, the value of key x, in every style YAML has.
var scalarDocs = []string{
	"x: echo $a b\n",
	"x: echo é $a\n",
	"x: 'it''s $a'\n",
	"x: \"say \\\"hi\\\" \\t $a \\u00e9 $b\"\n",
	"x: {command: echo $a b, y: 1}\n",
	"x: {command: \"echo \\\"$a\\\"\", y: 1}\n",
	"- {command: 'echo ''$a''', y: 1}\n",
	"x: plain text\n  folded on\n\n  three lines $a\n",
	"x: 'quoted text\n  folded $a\n\n\n  again'\n",
	"x: \"double \\\n  joined $a\n  folded\"\n",
	"x: |\n  if [ -f $a ]; then\n    echo yes\n\n  fi\n",
	"x: |-\n    two\n    lines $a\n",
	"x: >\n  folded $a\n  words\n\n  para\n    indented $b\n  back\n",
	"x: >-\n  a\n  b $a\n",
	"steps:\n  - id: a\n    ssh-exec:\n      command: |\n        set -e\n        echo \"$a\"\n",
	"steps:\n  - command: |2\n       indented first $a\n      then\n",
	"x: |+\n  kept $a\n\n",
	"x: |\n\n  after a blank $a\n",
	"x: >\n  a\n  \ttab after indent $a\n  next\n",
	"x: |\n  é ü $a\n",
	// Properties before the value: yaml.v3 places the node at the first.
	"x: &a echo é $a\n",
	"x: !!str \"echo é \\t $a\"\n",
	"x: !!str 'it''s $a'\n",
	"x: &a !!str |\n  echo one\n  é $a\n",
	"x: !!str >\n  a\n  b $a\n",
	"x: &a\n  plain on the next line $a\n",
	"x: {command: &c !!str echo $a, y: 1}\n",
}

// TestScalarPosReadsBack: every character of a value maps to the same
// character in the source (an escape to its backslash, a doubled quote
// to its first quote), for every style of scalar.
func TestScalarPosReadsBack(t *testing.T) {
	for _, src := range scalarDocs {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		lines := strings.Split(src, "\n")
		for _, n := range scalars(&doc) {
			for off, r := range n.Value {
				if r == ' ' || r == '\n' {
					continue
				}
				p, ok := scalarPos(lines, n, off)
				if !ok {
					t.Errorf("%q: value %q: offset %d not found", src, n.Value, off)
					break
				}
				got := runeAt(lines, p)
				if got != r && !(n.Style&^yaml.TaggedStyle == yaml.DoubleQuotedStyle && got == '\\') {
					t.Errorf("%q: value %q: offset %d (%q) at %v, which holds %q", src, n.Value, off, r, p, got)
				}
			}
			if _, ok := scalarPos(lines, n, len(n.Value)); !ok {
				t.Errorf("%q: value %q: its end not found", src, n.Value)
			}
		}
	}
}

func TestScalarPos(t *testing.T) {
	tests := []struct {
		src  string
		find string
		want diag.Pos
	}{
		{"x: echo $a b\n", "$a", diag.Pos{Line: 1, Col: 9}},
		{"x: \"echo $a\"\n", "$a", diag.Pos{Line: 1, Col: 10}},
		{"x: {command: 'a ''b'' $a'}\n", "$a", diag.Pos{Line: 1, Col: 23}},
		{"x: |\n  one\n  two $a\n", "$a", diag.Pos{Line: 3, Col: 7}},
		{"x: >\n  one\n  two $a\n", "$a", diag.Pos{Line: 3, Col: 7}},
		{"x: >\n  one\n\n    two $a\n", "$a", diag.Pos{Line: 4, Col: 9}},
		{"x: plain\n  next $a\n", "$a", diag.Pos{Line: 2, Col: 8}},
		{"x: \"a\\tb $a\"\n", "$a", diag.Pos{Line: 1, Col: 10}},
		{"x: |\n  é $a\n", "$a", diag.Pos{Line: 2, Col: 5}},
	}
	for _, tt := range tests {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(tt.src), &doc); err != nil {
			t.Fatal(err)
		}
		n := scalars(&doc)[0]
		p, ok := scalarPos(strings.Split(tt.src, "\n"), n, strings.Index(n.Value, tt.find))
		if !ok || p != tt.want {
			t.Errorf("%q: %s at %v (%v), want %v", tt.src, tt.find, p, ok, tt.want)
		}
	}
}

// scalars returns the scalar values of mappings and sequences in n.
func scalars(n *yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind == yaml.ScalarNode {
				out = append(out, c)
			} else {
				out = append(out, scalars(c)...)
			}
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			if c := n.Content[i]; c.Kind == yaml.ScalarNode {
				out = append(out, c)
			} else {
				out = append(out, scalars(c)...)
			}
		}
	}
	return out
}

func runeAt(lines []string, p diag.Pos) rune {
	if p.Line < 1 || p.Line > len(lines) {
		return 0
	}
	i := byteIndex(lines[p.Line-1], p.Col-1)
	if i < 0 || i >= len(lines[p.Line-1]) {
		return 0
	}
	r, _ := utf8.DecodeRuneInString(lines[p.Line-1][i:])
	return r
}
