// Package confedit edits configuration text in place: postgresql.conf-style
// key = value files, ini sections and whole lines. Every edit is pure (text
// in, text out), keeps what it does not touch byte for byte, and changes
// nothing when the file already says what is wanted.
package confedit

import (
	"fmt"
	"regexp"
	"strings"
)

// confLine matches an assignment in a postgresql.conf-style file, active or
// commented out: the prefix up to the key, the key, the separator, the
// value and what follows it.
var confLine = regexp.MustCompile(`^(\s*)(#\s*)?([A-Za-z_][A-Za-z0-9_.\-]*)(\s*=\s*|\s+)('(?:[^'\\]|''|\\.)*'|[^\s#']*)(.*)$`)

type assignment struct {
	indent, comment, key, sep, value, rest string
}

func parseConf(l string) (assignment, bool) {
	m := confLine.FindStringSubmatch(l)
	if m == nil {
		return assignment{}, false
	}
	a := assignment{indent: m[1], comment: m[2], key: m[3], sep: m[4], value: m[5], rest: m[6]}
	// A commented line is only a commented-out assignment when it has an
	// '=': "# connection settings" is prose.
	if a.comment != "" && !strings.Contains(a.sep, "=") {
		return assignment{}, false
	}
	if a.comment == "" && a.value == "" && !strings.Contains(a.sep, "=") {
		return assignment{}, false
	}
	return a, true
}

// Unquote returns the value of a postgresql.conf value as PostgreSQL reads it.
func Unquote(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		inner := v[1 : len(v)-1]
		var b strings.Builder
		for i := 0; i < len(inner); i++ {
			c := inner[i]
			if (c == '\'' || c == '\\') && i+1 < len(inner) {
				b.WriteByte(inner[i+1])
				i++
				continue
			}
			b.WriteByte(c)
		}
		return b.String()
	}
	return v
}

var plainValue = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?[a-zA-Z]*$`)

// Quote writes v as a postgresql.conf value: numbers (with a unit) and
// booleans as they are, everything else in single quotes with quotes
// doubled.
func Quote(v string) string {
	switch strings.ToLower(v) {
	case "on", "off", "true", "false":
		return v
	}
	if plainValue.MatchString(v) {
		return v
	}
	// Backslash is an escape character in postgresql.conf strings: it is
	// doubled too, or a value with \' in it would end the string early.
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(v) + "'"
}

// Change describes one edit, for the step's result.
type Change string

// Set makes key = value active. It replaces the active assignment (the last
// one, which is the one PostgreSQL uses), or uncomments the commented-out
// default in place, and appends only when the key appears nowhere.
func Set(text, key, value string) (string, []Change) {
	lines := split(text)
	lastActive, firstCommented := -1, -1
	for i, l := range lines {
		a, ok := parseConf(l)
		if !ok || !strings.EqualFold(a.key, key) {
			continue
		}
		if a.comment == "" {
			lastActive = i
		} else if firstCommented < 0 {
			firstCommented = i
		}
	}
	want := Quote(value)
	switch {
	case lastActive >= 0:
		a, _ := parseConf(lines[lastActive])
		if Unquote(a.value) == value {
			return text, nil
		}
		lines[lastActive] = a.indent + a.key + " = " + want + a.rest
		return join(lines, text), []Change{Change(fmt.Sprintf("set %s = %s (was %s)", key, want, a.value))}
	case firstCommented >= 0:
		a, _ := parseConf(lines[firstCommented])
		lines[firstCommented] = a.indent + a.key + " = " + want + a.rest
		return join(lines, text), []Change{Change(fmt.Sprintf("set %s = %s (uncommented line %d)", key, want, firstCommented+1))}
	default:
		lines = append(lines, key+" = "+want)
		return join(lines, text), []Change{Change(fmt.Sprintf("set %s = %s (appended)", key, want))}
	}
}

// SetAt makes key = value on line (1-based), the assignment PostgreSQL
// takes the key from, keeping what follows the value (a comment). When
// that line is not an active assignment of key, it falls back to Set.
func SetAt(text string, line int, key, value string) (string, []Change) {
	lines := split(text)
	if line < 1 || line > len(lines) {
		return Set(text, key, value)
	}
	a, ok := parseConf(lines[line-1])
	if !ok || a.comment != "" || !strings.EqualFold(a.key, key) {
		return Set(text, key, value)
	}
	if Unquote(a.value) == value {
		return text, nil
	}
	want := Quote(value)
	lines[line-1] = a.indent + a.key + " = " + want + a.rest
	return join(lines, text), []Change{Change(fmt.Sprintf("set %s = %s (was %s, line %d)", key, want, a.value, line))}
}

// Comment comments out every active assignment of key.
func Comment(text, key string) (string, []Change) {
	lines := split(text)
	var changes []Change
	for i, l := range lines {
		a, ok := parseConf(l)
		if ok && a.comment == "" && strings.EqualFold(a.key, key) {
			lines[i] = a.indent + "#" + strings.TrimPrefix(l, a.indent)
			changes = append(changes, Change(fmt.Sprintf("commented out %s (line %d)", key, i+1)))
		}
	}
	if changes == nil {
		return text, nil
	}
	return join(lines, text), changes
}

// Unset removes every active assignment of key.
func Unset(text, key string) (string, []Change) {
	lines := split(text)
	out := lines[:0:0]
	var changes []Change
	for i, l := range lines {
		a, ok := parseConf(l)
		if ok && a.comment == "" && strings.EqualFold(a.key, key) {
			changes = append(changes, Change(fmt.Sprintf("removed %s (line %d)", key, i+1)))
			continue
		}
		out = append(out, l)
	}
	if changes == nil {
		return text, nil
	}
	return join(out, text), changes
}

// sameFields compares lines by their whitespace-separated fields, so that
// "host  all  all" and "host all all" are the same pg_hba.conf rule.
func sameFields(a, b string) bool {
	fa, fb := strings.Fields(a), strings.Fields(b)
	if len(fa) != len(fb) {
		return false
	}
	for i := range fa {
		if fa[i] != fb[i] {
			return false
		}
	}
	return true
}

// EnsureLine makes line present: when a line with the same fields exists,
// nothing changes; otherwise the first line matching match (when given) is
// replaced, or the line is appended.
func EnsureLine(text, line string, match *regexp.Regexp) (string, []Change) {
	lines := split(text)
	for _, l := range lines {
		if sameFields(l, line) {
			return text, nil
		}
	}
	if match != nil {
		for i, l := range lines {
			if match.MatchString(l) {
				lines[i] = line
				return join(lines, text), []Change{Change(fmt.Sprintf("replaced line %d with %q", i+1, line))}
			}
		}
	}
	lines = append(lines, line)
	return join(lines, text), []Change{Change(fmt.Sprintf("appended %q", line))}
}

// RemoveLine removes every line with the same fields as line, or matching
// match when it is given.
func RemoveLine(text, line string, match *regexp.Regexp) (string, []Change) {
	lines := split(text)
	out := lines[:0:0]
	var changes []Change
	for i, l := range lines {
		if match != nil && match.MatchString(l) || match == nil && sameFields(l, line) {
			changes = append(changes, Change(fmt.Sprintf("removed line %d %q", i+1, l)))
			continue
		}
		out = append(out, l)
	}
	if changes == nil {
		return text, nil
	}
	return join(out, text), changes
}

func split(text string) []string {
	if text == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(text, "\n"), "\n")
}

// join joins lines, ending with a newline unless the original text was
// non-empty and had none.
func join(lines []string, orig string) string {
	s := strings.Join(lines, "\n")
	if orig == "" || strings.HasSuffix(orig, "\n") {
		s += "\n"
	}
	return s
}
