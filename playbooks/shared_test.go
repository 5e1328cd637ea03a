package playbooks_test

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/playbooks"
)

// TestNoCopiedPlaybooks: a procedure is written once and run where it is
// needed (a step with playbook:, a vars file): no two bundled playbooks
// share more than ten identical lines longer than 25 characters (a line is
// compared without its indentation; comments count, blank lines do not,
// nor do the lines of a step that runs another playbook that name it and
// pass its params: callLines).
func TestNoCopiedPlaybooks(t *testing.T) {
	const maxShared, minLen = 10, 25
	lines := map[string]map[string]bool{}
	for _, name := range playbooks.Names() {
		src, _ := playbooks.Lookup(name)
		calls := callLines(t, name, src)
		set := map[string]bool{}
		for i, l := range strings.Split(string(src), "\n") {
			if l = strings.TrimSpace(l); len(l) > minLen && !calls[i+1] {
				set[l] = true
			}
		}
		lines[name] = set
	}
	names := playbooks.Names()
	for i, a := range names {
		for _, b := range names[i+1:] {
			var shared []string
			for l := range lines[a] {
				if lines[b][l] {
					shared = append(shared, l)
				}
			}
			if len(shared) > maxShared {
				slices.Sort(shared)
				t.Errorf("%s and %s share %d lines (at most %d): write them once and include it\n%s", a, b, len(shared), maxShared, strings.Join(shared, "\n"))
			}
		}
	}
}

// callLines returns the lines of src (1-based) that call another
// playbook: the playbook: line of a step that runs one, and the params it
// passes. Two playbooks that run the same piece pass it the same params
// (application_name: ${{ params.application_name }}): that is the call of
// what is written once, not a copy of it.
func callLines(t *testing.T, name string, src []byte) map[int]bool {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	out := map[int]bool{}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != "steps" {
			continue
		}
		for _, st := range top.Content[i+1].Content {
			var params *yaml.Node
			runs := false
			for j := 0; j+1 < len(st.Content); j += 2 {
				switch st.Content[j].Value {
				case "playbook":
					runs = true
					out[st.Content[j].Line] = true
				case "params":
					params = st.Content[j+1]
				}
			}
			if runs && params != nil {
				for j := 0; j+1 < len(params.Content); j += 2 {
					out[params.Content[j].Line] = true
				}
			}
		}
	}
	return out
}

// TestEffectiveConfigurationOnce: failover-database and new-orchestrator
// judge which database a server would use with one reader, written once in
// shared/orchestrator.vars.yaml with the runner that finds its python3;
// its three runs (two guards and a step) run that text, and no playbook
// holds a copy of either.
func TestEffectiveConfigurationOnce(t *testing.T) {
	const run = `eval "$RB_RUN"`
	runs := 0
	for _, name := range []string{"orchestrator/failover-database", "orchestrator/new-orchestrator"} {
		src, ok := playbooks.Lookup(name)
		if !ok {
			t.Fatalf("no bundled playbook %s", name)
		}
		runs += strings.Count(string(src), run)
		if strings.Contains(string(src), "import configparser") || strings.Contains(string(src), "$RB_READER") {
			t.Errorf("%s holds a copy of the configuration reader or its runner: run vars.orch_run", name)
		}
	}
	if runs != 3 {
		t.Errorf("the reader is run %d times, want 3 (two guards and a step)", runs)
	}
	vars, err := playbooks.ReadFile("shared/orchestrator.vars.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(vars), "import configparser"); n != 1 {
		t.Errorf("shared/orchestrator.vars.yaml holds the reader %d times, want once", n)
	}
	if n := strings.Count(string(vars), `exec "$py" -c "$RB_READER"`); n != 1 {
		t.Errorf("shared/orchestrator.vars.yaml runs the reader %d times, want once (vars.orch_run)", n)
	}
}

// passedOn is a param given to an included playbook as it was given.
var passedOn = regexp.MustCompile(`^\s+(\w+): \$\{\{ params\.(\w+) \}\}$`)

// TestLayoutTableInOnePlace: where each packaging puts PostgreSQL is
// written once, in shared/pg-layout.vars.yaml; every bundled playbook that
// works on PostgreSQL lists that file and repeats none of its paths.
func TestLayoutTableInOnePlace(t *testing.T) {
	const shared = "../shared/pg-layout.vars.yaml"
	table := []string{"/usr/pgsql-", "/var/lib/pgsql", "/usr/lib/postgresql/", "/etc/postgresql/", "postgresql@", "postgresql-1", "/usr/bin/pg_", `layout == "`, "params.layout"}
	src, err := playbooks.ReadFile("shared/pg-layout.vars.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range table[:5] {
		if !strings.Contains(string(src), s) {
			t.Errorf("the layout table no longer holds %q: update this test", s)
		}
	}
	users := 0
	for _, name := range playbooks.Names() {
		b, _ := playbooks.Lookup(name)
		var doc struct {
			VarsFiles []string `yaml:"vars_files"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		// Comments may name a layout's paths, and a step that runs another
		// playbook pass the layout params on; values may not.
		var code strings.Builder
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "#") && !passedOn.MatchString(l) {
				code.WriteString(l + "\n")
			}
		}
		for _, s := range table {
			if strings.Contains(code.String(), s) {
				t.Errorf("%s repeats %q of the layout table: read it from host.facts.pg (%s)", name, s, shared)
			}
		}
		lists := slices.Contains(doc.VarsFiles, shared)
		if strings.Contains(string(b), "facts.pg") && !lists {
			t.Errorf("%s reads facts.pg without listing %s in vars_files", name, shared)
		}
		if (strings.HasPrefix(name, "pg-ha/") || name == "orchestrator/failover-database") && !lists {
			t.Errorf("%s works on PostgreSQL and does not list %s", name, shared)
		}
		if lists {
			users++
		}
	}
	if users < 6 {
		t.Errorf("%d bundled playbooks list the layouts, want every pg-ha playbook and failover-database", users)
	}
}

// TestEvaluatedVarsAreShell: a var that a bundled command runs as shell
// code (env NAME: ${{ vars.X }}, then eval "$NAME") is tagged !shell, so
// that validate shellchecks it where it is written.
func TestEvaluatedVarsAreShell(t *testing.T) {
	evals := regexp.MustCompile(`eval "\$(\w+)"`)
	var all strings.Builder
	varsFiles, err := filepath.Glob("shared/*" + playbooks.VarsSuffix)
	if err != nil || len(varsFiles) == 0 {
		t.Fatalf("no shared vars files here (%v)", err)
	}
	for _, f := range varsFiles {
		b, err := playbooks.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
	}
	found := 0
	for _, name := range playbooks.Names() {
		src, _ := playbooks.Lookup(name)
		all.Write(src)
	}
	for _, name := range playbooks.Names() {
		src, _ := playbooks.Lookup(name)
		for _, m := range evals.FindAllStringSubmatch(string(src), -1) {
			from := regexp.MustCompile(`\b` + m[1] + `: "?\$\{\{ vars\.(\w+) \}\}`).FindStringSubmatch(string(src))
			if from == nil {
				continue
			}
			found++
			if !regexp.MustCompile(`(?m)^\s+` + from[1] + `: !shell [|>]`).MatchString(all.String()) {
				t.Errorf("%s evaluates vars.%s as shell (eval \"$%s\"): tag it !shell where it is declared", name, from[1], m[1])
			}
		}
	}
	if found == 0 {
		t.Error("no bundled command evaluates a var: promote-standby's conninfo_get was one; update this test")
	}
}
