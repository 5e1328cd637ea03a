package diag

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
)

func TestDiagnosticString(t *testing.T) {
	l := &List{File: "pg/promote.yaml"}
	l.Errorf(Pos{Line: 12, Col: 7}, RuleUnknownKey, "unknown key %q in step %q", "tiemout", "promote")
	l.Warnf(Pos{Line: 3, Col: 0}, RuleUnusedParam, "param %s is never used", "port")
	want := []string{
		`pg/promote.yaml:12:7: unknown key "tiemout" in step "promote" [unknown-key]`,
		`pg/promote.yaml:3:0: warning: param port is never used [unused-param]`,
	}
	if len(l.Items) != 2 {
		t.Fatalf("%d items", len(l.Items))
	}
	for i, d := range l.Items {
		if d.String() != want[i] || d.Error() != want[i] {
			t.Errorf("item %d: String %q, Error %q, want %q", i, d.String(), d.Error(), want[i])
		}
		if d.File != "pg/promote.yaml" {
			t.Errorf("item %d: file %q", i, d.File)
		}
	}
	if l.Items[0].Severity != Error || l.Items[1].Severity != Warning {
		t.Errorf("severities %s, %s", l.Items[0].Severity, l.Items[1].Severity)
	}
	if got := (Pos{Line: 4, Col: 15}).String(); got != "4:15" {
		t.Errorf("Pos.String: %q", got)
	}
	if HasErrors(l.Items[1:]) || !HasErrors(l.Items) || HasErrors(nil) {
		t.Error("HasErrors: a warning counted as an error, or an error missed")
	}
}

// TestSort: by file, then line, column and message, whatever the order
// the checks found them in.
func TestSort(t *testing.T) {
	ds := []*Diagnostic{
		{File: "b.yaml", Pos: Pos{Line: 1, Col: 1}, Message: "m"},
		{File: "a.yaml", Pos: Pos{Line: 10, Col: 2}, Message: "m"},
		{File: "a.yaml", Pos: Pos{Line: 9, Col: 30}, Message: "m"},
		{File: "a.yaml", Pos: Pos{Line: 10, Col: 1}, Message: "z"},
		{File: "a.yaml", Pos: Pos{Line: 10, Col: 1}, Message: "a"},
		{File: "a.yaml", Pos: Pos{Line: 2, Col: 0}, Message: "m"},
	}
	Sort(ds)
	var got []string
	for _, d := range ds {
		got = append(got, d.File+":"+d.Pos.String()+":"+d.Message)
	}
	want := "a.yaml:2:0:m a.yaml:9:30:m a.yaml:10:1:a a.yaml:10:1:z a.yaml:10:2:m b.yaml:1:1:m"
	if strings.Join(got, " ") != want {
		t.Errorf("sorted:\n %s\nwant\n %s", strings.Join(got, " "), want)
	}
}

func TestClosest(t *testing.T) {
	keys := []string{"version", "name", "steps", "require", "timeout", "retries"}
	tests := []struct{ in, want string }{
		{"stpes", "steps"},
		{"STEPS", "steps"},
		{"tiemout", "timeout"},
		{"retry", "retries"},
		{"requires", "require"},
		{"zzzzzzzz", ""},
		{"x", ""},
	}
	for _, tt := range tests {
		if got := Closest(tt.in, keys); got != tt.want {
			t.Errorf("Closest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := Closest("steps", nil); got != "" {
		t.Errorf("no candidates: %q", got)
	}
	if got := DidYouMean("stpes", keys); got != ` (did you mean "steps"?)` {
		t.Errorf("DidYouMean: %q", got)
	}
	if got := DidYouMean("zzzzzzzz", keys); got != "" {
		t.Errorf("DidYouMean of nothing close: %q", got)
	}
}

func TestDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"kitten", "sitting", 3}, {"", "abc", 3}, {"abc", "", 3}, {"same", "same", 0}, {"stpes", "steps", 2},
	} {
		if got := distance(tt.a, tt.b); got != tt.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestHelpURI(t *testing.T) {
	if got := HelpURI(RuleShellcheckPrefix + "SC2086"); got != "https://www.shellcheck.net/wiki/SC2086" {
		t.Errorf("shellcheck: %s", got)
	}
	if got := HelpURI(RuleDuplicateKey); got != "https://runbook.dev/docs/rules#duplicate-key" {
		t.Errorf("runbook's: %s", got)
	}
}

// TestRuleConstantsNameTheirIds: each Rule constant is named after the
// id it holds (RuleStepTypeCount is "step-type-count"), every id is
// described once in Rules, and Rules lists no id without a constant.
func TestRuleConstantsNameTheirIds(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "rules.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{} // id: constant
	for _, decl := range f.Decls {
		g, ok := decl.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Errorf("%s is not a string literal", name.Name)
					continue
				}
				id, _ := strconv.Unquote(lit.Value)
				if name.Name == "RuleShellcheckPrefix" {
					continue // starts the ids of shellcheck's findings
				}
				if !strings.EqualFold(name.Name, "Rule"+strings.ReplaceAll(id, "-", "")) {
					t.Errorf("%s holds %q: name it after its id", name.Name, id)
				}
				if prev, dup := ids[id]; dup {
					t.Errorf("%s and %s both hold %q", prev, name.Name, id)
				}
				ids[id] = name.Name
			}
		}
	}
	if len(ids) < 20 {
		t.Fatalf("only %d rule constants found", len(ids))
	}
	described := map[string]bool{}
	for _, r := range Rules {
		if described[r.ID] {
			t.Errorf("%s is described twice", r.ID)
		}
		described[r.ID] = true
		if r.Description == "" {
			t.Errorf("%s has no description", r.ID)
		}
		if _, ok := ids[r.ID]; !ok && r.ID != RuleShellcheckPrefix+"SCnnnn" {
			t.Errorf("Rules describes %s, which no constant holds", r.ID)
		}
	}
	for id, name := range ids {
		if !described[id] {
			t.Errorf("%s (%s) is not in Rules", name, id)
		}
	}
}
