package steps

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/diag"
)

// scalarPos finds the position in the source of the byte at offset of a
// scalar's value by reading the scalar's text again the way YAML reads it:
// quotes, escapes, line folding, block indentation. lines are the source's
// lines without their line breaks. It returns false when the source does
// not give the node's value back (an explicit indentation indicator it
// guessed wrong), and the caller falls back on an estimate.
func scalarPos(lines []string, n *yaml.Node, offset int) (diag.Pos, bool) {
	if n.Line < 1 || n.Line > len(lines) || offset < 0 || offset > len(n.Value) {
		return diag.Pos{}, false
	}
	li := n.Line - 1
	bi := byteIndex(lines[li], n.Column-1)
	if bi < 0 {
		return diag.Pos{}, false
	}
	// yaml.v3 places a node at its first property (&anchor, !tag), not
	// at its value.
	li, bi = skipProperties(lines, li, bi)
	if li >= len(lines) {
		return diag.Pos{}, false
	}
	// A tag adds TaggedStyle to the style of the value.
	style := n.Style &^ yaml.TaggedStyle
	switch style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		return blockPos(lines, li, bi, n.Value, style, offset)
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		bi++
	}
	w := &flowWalker{lines: lines, li: li, bi: bi, value: n.Value, style: style}
	return w.find(offset)
}

// skipProperties moves past the anchor and the tag that may come before
// a node's value (&a !!str "..."), on its line or the lines after.
func skipProperties(lines []string, li, bi int) (int, int) {
	for li < len(lines) {
		line := lines[li]
		if bi >= len(line) || line[bi] == '#' {
			// The value is on a line after its properties.
			li++
			if li < len(lines) {
				bi = len(lines[li]) - len(strings.TrimLeft(lines[li], " \t"))
			}
			continue
		}
		if line[bi] != '&' && line[bi] != '!' {
			return li, bi
		}
		for bi < len(line) && line[bi] != ' ' && line[bi] != '\t' {
			bi++
		}
		for bi < len(line) && (line[bi] == ' ' || line[bi] == '\t') {
			bi++
		}
	}
	return li, bi
}

// byteIndex returns the byte index of the rune at col (0-based) in s, or -1.
func byteIndex(s string, col int) int {
	i := 0
	for c := 0; c < col; c++ {
		if i >= len(s) {
			return -1
		}
		_, w := utf8.DecodeRuneInString(s[i:])
		i += w
	}
	return i
}

func posAt(lines []string, li, bi int) diag.Pos {
	return diag.Pos{Line: li + 1, Col: utf8.RuneCountInString(lines[li][:bi]) + 1}
}

// flowWalker reads a plain, single-quoted or double-quoted scalar from
// its first character, keeping the value's offset in step.
type flowWalker struct {
	lines  []string
	li, bi int
	value  string
	vi     int
	style  yaml.Style
}

func (w *flowWalker) find(offset int) (diag.Pos, bool) {
	for {
		if w.vi >= offset {
			if w.vi > offset {
				return diag.Pos{}, false
			}
			return posAt(w.lines, w.li, w.bi), true
		}
		line := w.lines[w.li]
		if strings.TrimRight(line[w.bi:], " \t") == "" {
			if !w.fold() {
				return diag.Pos{}, false
			}
			continue
		}
		c := line[w.bi]
		switch {
		case w.style == yaml.DoubleQuotedStyle && c == '\\':
			if w.bi+1 == len(line) {
				// An escaped line break: the next line joins without a space.
				if !w.nextLine() {
					return diag.Pos{}, false
				}
				continue
			}
			n, ok := escapeLen(line[w.bi:])
			if !ok || w.vi+len(n.out) > len(w.value) || w.value[w.vi:w.vi+len(n.out)] != n.out {
				return diag.Pos{}, false
			}
			if offset < w.vi+len(n.out) {
				return posAt(w.lines, w.li, w.bi), true
			}
			w.vi += len(n.out)
			w.bi += n.src
		case w.style == yaml.SingleQuotedStyle && c == '\'':
			if !strings.HasPrefix(line[w.bi:], "''") || w.value[w.vi] != '\'' {
				return diag.Pos{}, false
			}
			w.vi++
			w.bi += 2
		default:
			if w.value[w.vi] != c {
				return diag.Pos{}, false
			}
			w.vi++
			w.bi++
		}
	}
}

// fold consumes a line break of a flow scalar and the blank lines after
// it: one break reads as a space, each blank line after it as a newline.
func (w *flowWalker) fold() bool {
	blank := 0
	for {
		if w.li+1 >= len(w.lines) {
			return false
		}
		w.li++
		if strings.TrimSpace(w.lines[w.li]) != "" {
			break
		}
		blank++
	}
	want := " "
	if blank > 0 {
		want = strings.Repeat("\n", blank)
	}
	if !strings.HasPrefix(w.value[w.vi:], want) {
		return false
	}
	w.vi += len(want)
	w.bi = len(w.lines[w.li]) - len(strings.TrimLeft(w.lines[w.li], " \t"))
	return true
}

// nextLine moves past an escaped line break of a double-quoted scalar.
func (w *flowWalker) nextLine() bool {
	if w.li+1 >= len(w.lines) {
		return false
	}
	w.li++
	w.bi = len(w.lines[w.li]) - len(strings.TrimLeft(w.lines[w.li], " \t"))
	return true
}

type escape struct {
	out string
	src int
}

// escapeLen decodes the escape sequence of a double-quoted scalar at the
// start of s: what it reads as, and how many bytes of the source it takes.
func escapeLen(s string) (escape, bool) {
	if len(s) < 2 {
		return escape{}, false
	}
	simple := map[byte]string{'0': "\x00", 'a': "\a", 'b': "\b", 't': "\t", '\t': "\t", 'n': "\n", 'v': "\v", 'f': "\f",
		'r': "\r", 'e': "\x1b", ' ': " ", '"': `"`, '/': "/", '\\': `\`, 'N': "\u0085", '_': "\u00a0", 'L': "\u2028", 'P': "\u2029"}
	if out, ok := simple[s[1]]; ok {
		return escape{out, 2}, true
	}
	digits := map[byte]int{'x': 2, 'u': 4, 'U': 8}[s[1]]
	if digits == 0 || len(s) < 2+digits {
		return escape{}, false
	}
	r, err := strconv.ParseUint(s[2:2+digits], 16, 32)
	if err != nil {
		return escape{}, false
	}
	return escape{string(rune(r)), 2 + digits}, true
}

// blockPos finds offset in a literal (|) or folded (>) block scalar whose
// indicator is at lines[li][bi]: its content starts on the next line.
func blockPos(lines []string, li, bi int, v string, style yaml.Style, offset int) (diag.Pos, bool) {
	indent := blockIndent(lines, li, bi)
	if indent < 0 {
		return diag.Pos{}, false
	}
	vi, last := 0, -1
	prevNormal, blank := false, 0
	for j := li + 1; j < len(lines); j++ {
		line := lines[j]
		lead := len(line) - len(strings.TrimLeft(line, " "))
		if strings.TrimSpace(line) == "" && len(line) <= indent {
			blank++
			continue
		}
		if lead < indent {
			break
		}
		content := line[indent:]
		normal := content != "" && content[0] != ' ' && content[0] != '\t'
		var brk string
		switch {
		case last < 0:
			brk = strings.Repeat("\n", blank)
		case style == yaml.FoldedStyle && prevNormal && normal && blank == 0:
			brk = " "
		case style == yaml.FoldedStyle && prevNormal && normal:
			brk = strings.Repeat("\n", blank)
		default:
			brk = strings.Repeat("\n", blank+1)
		}
		if !strings.HasPrefix(v[vi:], brk) {
			return diag.Pos{}, false
		}
		if offset < vi+len(brk) {
			// A line break itself: the end of the line before it.
			return diag.Pos{Line: j, Col: utf8.RuneCountInString(lines[j-1]) + 1}, true
		}
		vi += len(brk)
		if offset <= vi+len(content) {
			if !strings.HasPrefix(v[vi:], content[:offset-vi]) {
				return diag.Pos{}, false
			}
			return posAt(lines, j, indent+offset-vi), true
		}
		if !strings.HasPrefix(v[vi:], content) {
			return diag.Pos{}, false
		}
		vi += len(content)
		last, prevNormal, blank = j, normal, 0
	}
	// Past the last line of content: the line breaks the chomping kept.
	if last < 0 || strings.Trim(v[vi:], "\n") != "" {
		return diag.Pos{}, false
	}
	return diag.Pos{Line: last + 1, Col: utf8.RuneCountInString(lines[last]) + 1}, true
}

// blockIndent returns the indentation of a block scalar's content: from
// its indentation indicator (|2), counted from the parent's indentation,
// or else from its first line that is not blank.
func blockIndent(lines []string, li, bi int) int {
	header := lines[li][bi+1:]
	if i := strings.Index(header, "#"); i >= 0 {
		header = header[:i]
	}
	for _, c := range strings.TrimSpace(header) {
		if c >= '1' && c <= '9' {
			parent := 0
			for {
				rest := lines[li][parent:]
				switch {
				case strings.HasPrefix(rest, " "):
					parent++
					continue
				case strings.HasPrefix(rest, "- "):
					parent += 2
					continue
				}
				break
			}
			return parent + int(c-'0')
		}
	}
	for j := li + 1; j < len(lines); j++ {
		if strings.TrimSpace(lines[j]) != "" {
			return len(lines[j]) - len(strings.TrimLeft(lines[j], " "))
		}
	}
	return -1
}
