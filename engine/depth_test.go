package engine_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestDeepNestingIsRefused: every text a recursive parser reads
// (expressions, bare and in ${{ }}, commands, SQL, YAML) nested a million
// deep is refused with a positioned error, where it used to overflow the
// stack and crash the process.
func TestDeepNestingIsRefused(t *testing.T) {
	const d = 1_000_000
	deep := func(open, inner, close string) string {
		return strings.Repeat(open, d) + inner + strings.Repeat(close, d)
	}
	for _, c := range []struct{ name, step, want string }{
		{"parentheses", `ssh-exec: {command: "echo ${{ ` + deep("(", "1", ")") + ` }}"}`, "5:135: the expression nests deeper than 100 levels"},
		{"lists", `ssh-exec: {command: "echo ${{ ` + deep("[", "1", "]") + ` }}"}`, "5:135: the expression nests deeper than 100 levels"},
		{"negations", `ssh-exec: {command: "echo ${{ ` + deep("!", "true", "") + ` }}"}`, "5:135: the expression nests deeper than 100 levels"},
		{"not", `ssh-exec: {command: "echo ${{ ` + deep("not ", "true", "") + ` }}"}`, "5:437: the expression nests deeper than 100 levels"},
		{"conditionals", `ssh-exec: {command: "echo ${{ ` + deep("true ? 1 : ", "2", "") + ` }}"}`, "the expression nests deeper than 100 levels"},
		{"when", "when: " + deep("(", "true", ")") + "\n    ssh-exec: {command: \"true\"}", "5:111: the expression nests deeper than 100 levels"},
		{"command substitution", `ssh-exec: {command: "echo ` + deep("$(echo ", "x", ")") + `"}`, "5:732: the command nests deeper than 100 levels"},
		{"subshells", `ssh-exec: {command: "` + deep("(", "true", ")") + `"}`, "5:126: the command nests deeper than 100 levels"},
		{"if", `ssh-exec: {command: "` + deep("if ", "true", "; then :; fi") + `"}`, "the command nests deeper than 100 levels"},
		{"sql", `sql: {query: "SELECT ` + deep("(", "1", ")") + `"}`, "the SQL text nests deeper than 100 levels"},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := fmt.Sprintf("version: 1\nname: deep\nsteps:\n  - id: a\n    %s\n", c.step)
			_, ds := loader().Load("deep.yaml", []byte(src))
			got := printed(ds)
			if !strings.Contains(strings.Join(got, "\n"), c.want) {
				t.Errorf("got %s, want %q", strings.Join(got, "\n"), c.want)
			}
		})
	}
	// A YAML document nested as deep: yaml.v3 stops at 10000 levels, and
	// runbook's walkers of the tree go that deep without trouble.
	src := "version: 1\nname: deep\nsteps:\n  - id: a\n    ssh-exec: {command: \"true\"}\n    vars: {a: " + deep("[", "", "]") + "}\n"
	if _, ds := loader().Load("deep.yaml", []byte(src)); len(ds) == 0 || !strings.Contains(ds[0].String(), "deep.yaml:6:") {
		t.Errorf("deep YAML: %v", ds)
	}
}
