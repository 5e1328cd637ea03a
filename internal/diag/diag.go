// Package diag holds the positions and diagnostics that every part of runbook
// reports problems with, so that a finding always points at file:line:col.
package diag

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is a 1-based line and column in a source file. A zero Col means the
// column is unknown.
type Pos struct {
	Line int `json:"line"`
	Col  int `json:"column"`
}

// String formats the position as line:col.
func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

// Severity says whether a diagnostic fails validation.
type Severity string

// The severities a diagnostic can have.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Diagnostic is one problem found in a file.
type Diagnostic struct {
	File     string   `json:"file"`
	Pos      Pos      `json:"pos"`
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
}

// String formats the diagnostic as file:line:col: message [rule].
func (d *Diagnostic) String() string {
	sev := ""
	if d.Severity == Warning {
		sev = "warning: "
	}
	return fmt.Sprintf("%s:%d:%d: %s%s [%s]", d.File, d.Pos.Line, d.Pos.Col, sev, d.Message, d.Rule)
}

// Error makes a diagnostic usable as an error.
func (d *Diagnostic) Error() string { return d.String() }

// List collects diagnostics for one file.
type List struct {
	File  string
	Items []*Diagnostic
}

// Errorf records an error at pos.
func (l *List) Errorf(pos Pos, rule, format string, args ...any) {
	l.Items = append(l.Items, &Diagnostic{File: l.File, Pos: pos, Rule: rule, Severity: Error, Message: fmt.Sprintf(format, args...)})
}

// Warnf records a warning at pos.
func (l *List) Warnf(pos Pos, rule, format string, args ...any) {
	l.Items = append(l.Items, &Diagnostic{File: l.File, Pos: pos, Rule: rule, Severity: Warning, Message: fmt.Sprintf(format, args...)})
}

// HasErrors reports whether any diagnostic has error severity.
func HasErrors(ds []*Diagnostic) bool {
	for _, d := range ds {
		if d.Severity == Error {
			return true
		}
	}
	return false
}

// Sort orders diagnostics by file, line, column, then message, so output is
// stable whatever order the checks ran in.
func Sort(ds []*Diagnostic) {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line < b.Pos.Line
		}
		if a.Pos.Col != b.Pos.Col {
			return a.Pos.Col < b.Pos.Col
		}
		return a.Message < b.Message
	})
}

// Closest returns the candidate nearest to s by edit distance, or "" when
// none is close enough to be a plausible typo.
func Closest(s string, candidates []string) string {
	best, bestDist := "", len(s)/2+2
	for _, c := range candidates {
		if d := distance(strings.ToLower(s), strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// DidYouMean returns ` (did you mean "x"?)` for the closest candidate, or "".
func DidYouMean(s string, candidates []string) string {
	if c := Closest(s, candidates); c != "" {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}

// distance is the Levenshtein edit distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// SplitLines splits a file's text into its lines at every line break YAML
// reads as one: \r\n, \n and a lone \r (old Mac files), so that line n
// of the result is line n of a position.
func SplitLines(src string) []string {
	return strings.Split(strings.ReplaceAll(strings.ReplaceAll(src, "\r\n", "\n"), "\r", "\n"), "\n")
}
