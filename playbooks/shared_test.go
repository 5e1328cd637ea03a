package playbooks_test

import (
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/playbooks"
)

// TestStandbyStepsAgree: add-standby makes a node a standby as
// configure-standby does; the steps that do it (the copy, its room, its
// swap, the settings, the checks) are written twice and must stay the same.
func TestStandbyStepsAgree(t *testing.T) {
	shared := []string{"ident", "state", "leftover", "sizes", "layout", "basebackup", "stop", "swap", "conninfo", "conf", "hba_file", "hba", "restart",
		"streaming", "warm", "sync", "reload", "is_sync", "verify"}
	steps := func(name string) (map[string]string, map[string]string) {
		src, ok := playbooks.Lookup(name)
		if !ok {
			t.Fatalf("no bundled playbook %s", name)
		}
		var doc struct {
			Steps   []yaml.Node `yaml:"steps"`
			Standby yaml.Node   `yaml:"x-standby-settings"`
			Sync    yaml.Node   `yaml:"x-sync-settings"`
			Room    yaml.Node   `yaml:"x-capacity-query"`
			Vars    yaml.Node   `yaml:"vars"`
			Secrets yaml.Node   `yaml:"secrets"`
		}
		if err := yaml.Unmarshal(src, &doc); err != nil {
			t.Fatal(err)
		}
		byID := map[string]string{}
		for i := range doc.Steps {
			var s struct {
				ID string `yaml:"id"`
			}
			if err := doc.Steps[i].Decode(&s); err != nil {
				t.Fatal(err)
			}
			b, err := yaml.Marshal(&doc.Steps[i])
			if err != nil {
				t.Fatal(err)
			}
			byID[s.ID] = string(b)
		}
		other := map[string]string{}
		for name, n := range map[string]*yaml.Node{"x-standby-settings": &doc.Standby, "x-sync-settings": &doc.Sync, "x-capacity-query": &doc.Room, "vars": &doc.Vars, "secrets": &doc.Secrets} {
			b, err := yaml.Marshal(n)
			if err != nil {
				t.Fatal(err)
			}
			other[name] = string(b)
		}
		return byID, other
	}
	cs, csOther := steps("pg-ha/configure-standby")
	as, asOther := steps("pg-ha/add-standby")
	for _, id := range shared {
		if cs[id] == "" || as[id] == "" {
			t.Errorf("step %s: missing (configure-standby %v, add-standby %v)", id, cs[id] != "", as[id] != "")
			continue
		}
		if cs[id] != as[id] {
			t.Errorf("step %s differs between configure-standby and add-standby:\n%s\n---\n%s", id, cs[id], as[id])
		}
	}
	for name, v := range csOther {
		if asOther[name] != v {
			t.Errorf("%s differs between configure-standby and add-standby:\n%s\n---\n%s", name, v, asOther[name])
		}
	}
}

// TestEffectiveConfigurationAgrees: failover-database and new-orchestrator
// judge which database a server would use with the same script, written
// three times (two guards and a step); the copies must stay the same.
func TestEffectiveConfigurationAgrees(t *testing.T) {
	var copies []string
	for _, name := range []string{"orchestrator/failover-database", "orchestrator/new-orchestrator"} {
		src, ok := playbooks.Lookup(name)
		if !ok {
			t.Fatalf("no bundled playbook %s", name)
		}
		for _, part := range strings.Split(string(src), `"$py" - <<'PY'`)[1:] {
			end := strings.Index(part, "\n        PY\n")
			if end < 0 {
				t.Fatalf("%s: a script without its end", name)
			}
			copies = append(copies, part[:end])
		}
	}
	if len(copies) != 3 {
		t.Fatalf("found %d copies of the script, want 3", len(copies))
	}
	for i, c := range copies[1:] {
		if c != copies[0] {
			t.Errorf("copy %d of the effective-configuration script differs from the first", i+2)
		}
	}
}

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
		// Comments may name a layout's paths; values may not.
		var code strings.Builder
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "#") {
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
