package cli

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"

	"github.com/runbook-dev/runbook/internal/diag"
)

func sampleReport() *report {
	return &report{
		files: []string{"a.yaml", "b.yaml"},
		ds: []*diag.Diagnostic{
			{File: "a.yaml", Pos: diag.Pos{Line: 3, Col: 5}, Rule: diag.RuleUnknownKey, Severity: diag.Error, Message: `unknown key "x", 100% sure: yes`},
			{File: "a.yaml", Pos: diag.Pos{Line: 4, Col: 0}, Rule: diag.RuleUnusedParam, Severity: diag.Warning, Message: "param p is never used"},
		},
		sources: map[string][]string{"a.yaml": {"version: 1", "name: a", "steps:", "  - x: 1"}},
	}
}

// TestSARIFStructure checks the SARIF 2.1.0 properties code-scanning tools
// read: version, the driver's rules with ids and help, and results that
// point at a rule by id and index with a level and a located region.
func TestSARIFStructure(t *testing.T) {
	var buf bytes.Buffer
	sampleReport().writeSARIF(&buf)
	var log struct {
		Schema  string `json:"$schema"`
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string `json:"name"`
					Rules []struct {
						ID               string                `json:"id"`
						ShortDescription struct{ Text string } `json:"shortDescription"`
						HelpURI          string                `json:"helpUri"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				RuleIndex int    `json:"ruleIndex"`
				Level     string `json:"level"`
				Message   struct{ Text string }
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string } `json:"artifactLocation"`
						Region           struct {
							StartLine   int `json:"startLine"`
							StartColumn int `json:"startColumn"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	if log.Version != "2.1.0" || len(log.Runs) != 1 || log.Runs[0].Tool.Driver.Name != "runbook" {
		t.Fatalf("header: %+v", log)
	}
	rules := log.Runs[0].Tool.Driver.Rules
	// Every rule but the families (shellcheck:SCnnnn), which are listed
	// by the codes the results use.
	if len(rules) != len(diag.Rules)-1 {
		t.Fatalf("%d rules, want %d", len(rules), len(diag.Rules)-1)
	}
	for _, r := range rules {
		if r.ID == "" || r.ShortDescription.Text == "" || r.HelpURI == "" {
			t.Errorf("incomplete rule %+v", r)
		}
	}
	res := log.Runs[0].Results
	if len(res) != 2 {
		t.Fatalf("%d results", len(res))
	}
	for _, r := range res {
		if rules[r.RuleIndex].ID != r.RuleID {
			t.Errorf("ruleIndex %d is %s, not %s", r.RuleIndex, rules[r.RuleIndex].ID, r.RuleID)
		}
		loc := r.Locations[0].PhysicalLocation
		if loc.ArtifactLocation.URI != "a.yaml" || loc.Region.StartLine < 1 {
			t.Errorf("location %+v", loc)
		}
	}
	if res[0].Level != "error" || res[1].Level != "warning" || res[1].Locations[0].PhysicalLocation.Region.StartColumn != 0 {
		t.Errorf("levels or columns: %+v", res)
	}
}

// TestJUnitParsesBack reads the JUnit report back as a CI server would:
// a suite per file, a case per finding named by rule and position.
func TestJUnitParsesBack(t *testing.T) {
	for _, strict := range []bool{false, true} {
		var buf bytes.Buffer
		sampleReport().writeJUnit(&buf, strict)
		type tcase struct {
			Name      string `xml:"name,attr"`
			Classname string `xml:"classname,attr"`
			Failure   *struct {
				Type    string `xml:"type,attr"`
				Message string `xml:"message,attr"`
			} `xml:"failure"`
			SystemOut string `xml:"system-out"`
		}
		var suites struct {
			XMLName  xml.Name `xml:"testsuites"`
			Tests    int      `xml:"tests,attr"`
			Failures int      `xml:"failures,attr"`
			Suites   []struct {
				Name     string  `xml:"name,attr"`
				Tests    int     `xml:"tests,attr"`
				Failures int     `xml:"failures,attr"`
				Cases    []tcase `xml:"testcase"`
			} `xml:"testsuite"`
		}
		if err := xml.Unmarshal(buf.Bytes(), &suites); err != nil {
			t.Fatal(err)
		}
		want := 1
		if strict {
			want = 2
		}
		if suites.Tests != 3 || suites.Failures != want || len(suites.Suites) != 2 {
			t.Fatalf("strict=%v suites %+v", strict, suites)
		}
		a, b := suites.Suites[0], suites.Suites[1]
		if a.Name != "a.yaml" || a.Tests != 2 || a.Failures != want || len(a.Cases) != 2 {
			t.Fatalf("strict=%v a.yaml %+v", strict, a)
		}
		e, w := a.Cases[0], a.Cases[1]
		if e.Name != "unknown-key at 3:5" || e.Classname != "a.yaml" || e.Failure == nil || e.Failure.Type != "unknown-key" || e.Failure.Message != `unknown key "x", 100% sure: yes` {
			t.Errorf("error case %+v", e)
		}
		if w.Name != "unused-param at 4:0" || (w.Failure != nil) != strict || !strict && !strings.Contains(w.SystemOut, "param p is never used") {
			t.Errorf("strict=%v warning case %+v", strict, w)
		}
		if b.Name != "b.yaml" || b.Tests != 1 || b.Failures != 0 || b.Cases[0].Name != "valid" || b.Cases[0].Failure != nil {
			t.Errorf("clean file %+v", b)
		}
	}
}

// TestJUnitNamesUnique: two findings of one rule at one place (two
// unknown hosts of one hosts: list) are two cases with distinct names, as
// GitLab keeps one case of a classname and name.
func TestJUnitNamesUnique(t *testing.T) {
	r := &report{files: []string{"dup.yaml"}, ds: []*diag.Diagnostic{
		{File: "dup.yaml", Pos: diag.Pos{Line: 4, Col: 5}, Rule: diag.RuleUndefinedReference, Severity: diag.Error, Message: `unknown host "pgx"`},
		{File: "dup.yaml", Pos: diag.Pos{Line: 4, Col: 5}, Rule: diag.RuleUndefinedReference, Severity: diag.Error, Message: `unknown host "pgy"`},
		{File: "dup.yaml", Pos: diag.Pos{Line: 4, Col: 5}, Rule: diag.RuleUndefinedReference, Severity: diag.Error, Message: `unknown host "pgz"`},
	}}
	var buf bytes.Buffer
	r.writeJUnit(&buf, false)
	var suites struct {
		Suites []struct {
			Cases []struct {
				Name      string `xml:"name,attr"`
				Classname string `xml:"classname,attr"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(buf.Bytes(), &suites); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range suites.Suites[0].Cases {
		names = append(names, c.Classname+" "+c.Name)
	}
	want := []string{"dup.yaml undefined-reference at 4:5", "dup.yaml undefined-reference at 4:5 (2)", "dup.yaml undefined-reference at 4:5 (3)"}
	if strings.Join(names, "|") != strings.Join(want, "|") {
		t.Errorf("cases %q, want %q", names, want)
	}
}

func TestGitHubEscaping(t *testing.T) {
	var buf bytes.Buffer
	sampleReport().writeGitHub(&buf)
	want := "::error file=a.yaml,line=3,col=5,title=unknown-key::unknown key \"x\", 100%25 sure: yes\n" +
		"::warning file=a.yaml,line=4,col=1,title=unused-param::param p is never used\n"
	if buf.String() != want {
		t.Errorf("got\n%s", buf.String())
	}
}

// TestSARIFAgainstSchema validates the SARIF log against the OASIS SARIF
// 2.1.0 JSON Schema (embedded in github.com/owenrumney/go-sarif).
func TestSARIFAgainstSchema(t *testing.T) {
	var buf bytes.Buffer
	sampleReport().writeSARIF(&buf)
	rep, err := sarif.FromBytes(buf.Bytes())
	if err != nil {
		t.Fatalf("the SARIF log does not parse: %v", err)
	}
	if err := rep.Validate(); err != nil {
		t.Fatalf("the SARIF log fails the SARIF 2.1.0 schema: %v", err)
	}
	if len(rep.Runs) != 1 || len(rep.Runs[0].Results) != 2 {
		t.Fatalf("runs/results lost: %+v", rep.Runs)
	}
}

// TestJSONEndColumnCharacters: end_column counts characters, as column
// does, also after multibyte ones.
func TestJSONEndColumnCharacters(t *testing.T) {
	r := &report{
		files:   []string{"a.yaml"},
		ds:      []*diag.Diagnostic{{File: "a.yaml", Pos: diag.Pos{Line: 1, Col: 28}, Rule: "shellcheck:SC2086", Severity: diag.Warning, Message: "m"}},
		sources: map[string][]string{"a.yaml": {`      command: echo "éé日本" $x`}},
	}
	var buf bytes.Buffer
	r.writeJSON(&buf)
	var items []struct {
		Column    int `json:"column"`
		EndColumn int `json:"end_column"`
	}
	if err := json.Unmarshal(buf.Bytes(), &items); err != nil {
		t.Fatal(err)
	}
	// $x is the 28th and 29th characters.
	if len(items) != 1 || items[0].Column != 28 || items[0].EndColumn != 30 {
		t.Errorf("got %+v, want column 28, end_column 30", items)
	}
}

// TestSARIFColumnKind: SARIF's columns are said to count code points, as
// runbook's do (its default is UTF-16 code units).
func TestSARIFColumnKind(t *testing.T) {
	var buf bytes.Buffer
	sampleReport().writeSARIF(&buf)
	var log struct {
		Runs []struct {
			ColumnKind string `json:"columnKind"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	if len(log.Runs) != 1 || log.Runs[0].ColumnKind != "unicodeCodePoints" {
		t.Errorf("got %+v, want columnKind unicodeCodePoints", log.Runs)
	}
}

// TestSplitLines: the report shows source lines whatever the line breaks.
func TestSplitLines(t *testing.T) {
	got := diag.SplitLines("a\r\nb\rc\nd")
	if len(got) != 4 || got[0] != "a" || got[1] != "b" || got[2] != "c" || got[3] != "d" {
		t.Errorf("got %q", got)
	}
}
