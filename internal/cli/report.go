package cli

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/runbook-dev/runbook/internal/diag"
)

// The formats validate writes.
var reportFormats = []string{"text", "json", "github", "sarif", "junit"}

// report is what validate found, with what the formats need besides the
// diagnostics: the files checked and their lines.
type report struct {
	ds      []*diag.Diagnostic
	files   []string
	sources map[string][]string
	// skipped are, by file, the checks its errors kept from running: the
	// machine formats carry them too (a notice, a skipped case, a SARIF
	// notification), so that a CI reader expects more findings.
	skipped map[string][]string
}

// notChecked is the line that says what a file's errors kept from being
// checked, or "" when nothing was.
func (r *report) notChecked(file string) string {
	if sk := r.skipped[file]; len(sk) > 0 {
		return "not checked because of the errors in this file: " + strings.Join(sk, "; ")
	}
	return ""
}

// addInventory adds the findings of the inventory file, checked beside
// the playbooks, and counts it among the files checked.
func (r *report) addInventory(file string, ds []*diag.Diagnostic) {
	r.files = append(r.files, file)
	if len(ds) == 0 {
		return
	}
	r.ds = append(ds, r.ds...)
	if src, err := os.ReadFile(file); err == nil {
		if r.sources == nil {
			r.sources = map[string][]string{}
		}
		r.sources[file] = diag.SplitLines(string(src))
	}
}

func (r *report) line(file string, n int) (string, bool) {
	lines := r.sources[file]
	if n < 1 || n > len(lines) {
		return "", false
	}
	return lines[n-1], true
}

// writeText writes file:line:col: message [rule], then the source line and
// a caret under the column.
func (r *report) writeText(w io.Writer, color bool) {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return "\033[" + code + "m" + s + "\033[0m"
	}
	for _, d := range r.ds {
		msg := paint("1;31", d.Message)
		if d.Severity == diag.Warning {
			msg = paint("1;33", "warning: ") + d.Message
		}
		fmt.Fprintf(w, "%s %s %s\n", paint("1", fmt.Sprintf("%s:%d:%d:", d.File, d.Pos.Line, d.Pos.Col)), msg, paint("2", "["+d.Rule+"]"))
		if src, ok := r.line(d.File, d.Pos.Line); ok {
			num := fmt.Sprintf("%4d", d.Pos.Line)
			fmt.Fprintf(w, "%s | %s\n", paint("2", num), strings.ReplaceAll(src, "\t", " "))
			if d.Pos.Col > 0 {
				fmt.Fprintf(w, "%s | %s%s\n", strings.Repeat(" ", len(num)), strings.Repeat(" ", d.Pos.Col-1), paint("1;32", "^"))
			}
		}
	}
}

func (r *report) writeJSON(w io.Writer) {
	type item struct {
		File      string `json:"file"`
		Line      int    `json:"line"`
		Column    int    `json:"column"`
		EndColumn int    `json:"end_column"`
		Rule      string `json:"rule"`
		Severity  string `json:"severity"`
		Message   string `json:"message"`
	}
	out := make([]item, 0, len(r.ds))
	for _, d := range r.ds {
		end := d.Pos.Col
		if src, ok := r.line(d.File, d.Pos.Line); ok && d.Pos.Col > 0 {
			end = tokenEnd(src, d.Pos.Col)
		}
		out = append(out, item{d.File, d.Pos.Line, d.Pos.Col, end, d.Rule, string(d.Severity), d.Message})
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Fprintf(w, "%s\n", b)
}

// tokenEnd returns the column after the word that starts at col, both
// counted in characters.
func tokenEnd(line string, col int) int {
	runes := []rune(line)
	i := col - 1
	for i < len(runes) && runes[i] != ' ' && runes[i] != ':' && runes[i] != ',' && runes[i] != '}' {
		i++
	}
	return i + 1
}

// writeGitHub writes workflow commands that GitHub Actions turns into
// annotations on the pull request.
func (r *report) writeGitHub(w io.Writer) {
	for _, d := range r.ds {
		level := "error"
		if d.Severity == diag.Warning {
			level = "warning"
		}
		fmt.Fprintf(w, "::%s file=%s,line=%d,col=%d,title=%s::%s\n", level, ghProperty(d.File), d.Pos.Line, max(d.Pos.Col, 1), ghProperty(d.Rule), ghData(d.Message))
	}
	for _, f := range r.files {
		if nc := r.notChecked(f); nc != "" {
			fmt.Fprintf(w, "::notice file=%s,title=not checked::%s\n", ghProperty(f), ghData(nc))
		}
	}
}

func ghData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

func ghProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

// writeSARIF writes a SARIF 2.1.0 log with the rule list and paths relative
// to the working directory.
func (r *report) writeSARIF(w io.Writer) {
	type text struct {
		Text string `json:"text"`
	}
	type rule struct {
		ID               string `json:"id"`
		ShortDescription text   `json:"shortDescription"`
		HelpURI          string `json:"helpUri"`
	}
	type region struct {
		StartLine   int `json:"startLine"`
		StartColumn int `json:"startColumn,omitempty"`
	}
	type location struct {
		PhysicalLocation struct {
			ArtifactLocation struct {
				URI string `json:"uri"`
			} `json:"artifactLocation"`
			Region region `json:"region"`
		} `json:"physicalLocation"`
	}
	type result struct {
		RuleID    string     `json:"ruleId"`
		RuleIndex int        `json:"ruleIndex"`
		Level     string     `json:"level"`
		Message   text       `json:"message"`
		Locations []location `json:"locations"`
	}
	var rules []rule
	index := map[string]int{}
	for _, rl := range diag.Rules {
		if strings.HasSuffix(rl.ID, "SCnnnn") {
			continue // a family: its rules are listed as they are used
		}
		index[rl.ID] = len(rules)
		rules = append(rules, rule{ID: rl.ID, ShortDescription: text{rl.Description}, HelpURI: diag.HelpURI(rl.ID)})
	}
	results := []result{}
	cwd, _ := os.Getwd()
	for _, d := range r.ds {
		if _, ok := index[d.Rule]; !ok {
			// A rule of a family (shellcheck:SC2086): listed once used.
			index[d.Rule] = len(rules)
			rules = append(rules, rule{ID: d.Rule, ShortDescription: text{d.Rule}, HelpURI: diag.HelpURI(d.Rule)})
		}
		var loc location
		uri := d.File
		if rel, err := filepath.Rel(cwd, d.File); err == nil && filepath.IsAbs(d.File) && !strings.HasPrefix(rel, "..") {
			uri = rel
		}
		loc.PhysicalLocation.ArtifactLocation.URI = filepath.ToSlash(uri)
		loc.PhysicalLocation.Region = region{StartLine: max(d.Pos.Line, 1), StartColumn: d.Pos.Col}
		level := "error"
		if d.Severity == diag.Warning {
			level = "warning"
		}
		results = append(results, result{RuleID: d.Rule, RuleIndex: index[d.Rule], Level: level, Message: text{d.Message}, Locations: []location{loc}})
	}
	// What errors kept from being checked: notifications of the run.
	notes := []any{}
	for _, f := range r.files {
		if nc := r.notChecked(f); nc != "" {
			notes = append(notes, map[string]any{"level": "note", "message": text{f + ": " + nc}})
		}
	}
	log := map[string]any{
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"version": "2.1.0",
		"runs": []any{map[string]any{
			"tool": map[string]any{"driver": map[string]any{
				"name": "runbook", "version": Version, "informationUri": "https://runbook.dev", "rules": rules, "language": "en-US",
			}},
			"language": "en-US",
			// Columns count characters, as everywhere in runbook, not
			// SARIF's default UTF-16 code units (off by one per emoji).
			"columnKind":       "unicodeCodePoints",
			"newlineSequences": []string{"\r\n", "\n", "\r"},
			"results":          results,
			"invocations": []any{map[string]any{
				"executionSuccessful":        true,
				"toolExecutionNotifications": notes,
			}},
		}},
	}
	b, _ := json.MarshalIndent(log, "", "  ")
	fmt.Fprintf(w, "%s\n", b)
}

// writeJUnit writes one test suite per file checked and one test case
// per finding in it, as CI servers read linters' reports (eslint's JUnit
// formatter): the case is named by its rule and position (numbered from
// the second at one place), its class is
// the file, and an error (a warning too, with strict) is its failure. A
// warning without strict passes, its text in system-out; a clean file
// is one passing case, so that every file checked shows.
func (r *report) writeJUnit(w io.Writer, strict bool) {
	type failure struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		Text    string `xml:",chardata"`
	}
	type skipped struct {
		Message string `xml:"message,attr"`
	}
	type testcase struct {
		Name      string   `xml:"name,attr"`
		Classname string   `xml:"classname,attr"`
		Failure   *failure `xml:"failure"`
		Skipped   *skipped `xml:"skipped"`
		SystemOut string   `xml:"system-out,omitempty"`
	}
	type testsuite struct {
		Name     string     `xml:"name,attr"`
		Tests    int        `xml:"tests,attr"`
		Failures int        `xml:"failures,attr"`
		Errors   int        `xml:"errors,attr"`
		Cases    []testcase `xml:"testcase"`
	}
	type testsuites struct {
		XMLName  xml.Name    `xml:"testsuites"`
		Name     string      `xml:"name,attr"`
		Tests    int         `xml:"tests,attr"`
		Failures int         `xml:"failures,attr"`
		Errors   int         `xml:"errors,attr"`
		Suites   []testsuite `xml:"testsuite"`
	}
	byFile := map[string][]*diag.Diagnostic{}
	for _, d := range r.ds {
		byFile[d.File] = append(byFile[d.File], d)
	}
	all := testsuites{Name: "runbook validate"}
	for _, f := range r.files {
		suite := testsuite{Name: f}
		// Two findings of one rule at one place (two unknown hosts of one
		// hosts: list) get distinct names: CI servers (GitLab) keep one
		// case of a classname and name.
		seen := map[string]int{}
		for _, d := range byFile[f] {
			name := fmt.Sprintf("%s at %d:%d", d.Rule, d.Pos.Line, d.Pos.Col)
			if seen[name]++; seen[name] > 1 {
				name = fmt.Sprintf("%s (%d)", name, seen[name])
			}
			tc := testcase{Name: name, Classname: f}
			if d.Severity == diag.Warning && !strict {
				tc.SystemOut = d.String()
			} else {
				tc.Failure = &failure{Message: d.Message, Type: d.Rule, Text: d.String()}
				suite.Failures++
			}
			suite.Cases = append(suite.Cases, tc)
		}
		if nc := r.notChecked(f); nc != "" {
			suite.Cases = append(suite.Cases, testcase{Name: "not checked", Classname: f, Skipped: &skipped{Message: nc}})
		}
		if len(suite.Cases) == 0 {
			suite.Cases = append(suite.Cases, testcase{Name: "valid", Classname: f})
		}
		suite.Tests = len(suite.Cases)
		all.Tests += suite.Tests
		all.Failures += suite.Failures
		all.Suites = append(all.Suites, suite)
	}
	b, _ := xml.MarshalIndent(all, "", "  ")
	fmt.Fprintf(w, "%s%s\n", xml.Header, b)
}

func (r *report) write(w io.Writer, format string, color, strict bool) {
	switch format {
	case "json":
		r.writeJSON(w)
	case "github":
		r.writeGitHub(w)
	case "sarif":
		r.writeSARIF(w)
	case "junit":
		r.writeJUnit(w, strict)
	default:
		r.writeText(w, color)
	}
}
