package schema_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/playbooks"
	"github.com/runbook-dev/runbook/schema"
	"github.com/runbook-dev/runbook/steps"
)

// TestCommittedSchemaIsCurrent: the schema files editors use are the ones
// the step types generate. Regenerate with
// `go run ./cmd/runbook schema > schema/playbook.schema.json` (and inventory).
func TestCommittedSchemaIsCurrent(t *testing.T) {
	pb, inv := schema.Committed()
	if !bytes.Equal(pb, schema.Playbook(steps.Builtin())) {
		t.Error("schema/playbook.schema.json is stale: run go run ./cmd/runbook schema > schema/playbook.schema.json")
	}
	if !bytes.Equal(inv, schema.Inventory()) {
		t.Error("schema/inventory.schema.json is stale: run go run ./cmd/runbook schema inventory > schema/inventory.schema.json")
	}
}

// TestSchemaMatchesStepTypes checks both directions: every field a step type
// accepts is in the schema, and every schema property is a field.
func TestSchemaMatchesStepTypes(t *testing.T) {
	pb, _ := schema.Committed()
	var doc struct {
		Definitions map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal(pb, &doc); err != nil {
		t.Fatal(err)
	}
	for _, st := range steps.Builtin().All() {
		typ := st.Describe()
		def, ok := doc.Definitions[typ.Name]
		if !ok {
			t.Errorf("step type %s has no schema definition", typ.Name)
			continue
		}
		fields := map[string]bool{}
		for _, f := range typ.Fields {
			fields[f.Name] = true
			if _, ok := def.Properties[f.Name]; !ok {
				t.Errorf("%s.%s is missing from the schema", typ.Name, f.Name)
			}
		}
		var extra []string
		for p := range def.Properties {
			if !fields[p] {
				extra = append(extra, p)
			}
		}
		sort.Strings(extra)
		if len(extra) > 0 {
			t.Errorf("%s: schema properties %v are not fields of the step type", typ.Name, extra)
		}
	}
	if _, ok := doc.Definitions["step"].Properties["ssh-exec"]; !ok {
		t.Error("a step does not accept the ssh-exec key")
	}
}

// TestValidPlaybooksPassTheSchema: every playbook runbook accepts must also
// pass the JSON Schema, or editors would underline valid files.
func TestValidPlaybooksPassTheSchema(t *testing.T) {
	pbSchema, invSchema := schema.Committed()
	c := jsonschema.NewCompiler()
	for name, src := range map[string][]byte{"playbook.json": pbSchema, "inventory.json": invSchema} {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(src))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource(name, doc); err != nil {
			t.Fatal(err)
		}
	}
	sch, err := c.Compile("playbook.json")
	if err != nil {
		t.Fatalf("the playbook schema does not compile: %v", err)
	}
	files, _ := filepath.Glob("../testdata/validate/ok/*.yaml")
	sources := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sources[f] = b
	}
	for _, n := range playbooks.Names() {
		b, _ := playbooks.Lookup(n)
		sources[n] = b
	}
	for name, src := range sources {
		var v any
		if err := yaml.Unmarshal(src, &v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		v = jsonCompatible(v)
		if err := sch.Validate(v); err != nil {
			t.Errorf("%s does not pass the schema: %v", name, err)
		}
	}
	// And the schema rejects what runbook rejects.
	var bad any
	_ = yaml.Unmarshal([]byte("version: 1\nname: x\nsteps:\n  - ssh-exec: {comand: x}\n"), &bad)
	if sch.Validate(jsonCompatible(bad)) == nil {
		t.Error("the schema accepts an unknown key")
	}
	_ = yaml.Unmarshal([]byte("version: 1\nname: x\nsteps:\n  - ssh-exec: {command: x}\n    systemd: {unit: x}\n"), &bad)
	if sch.Validate(jsonCompatible(bad)) == nil {
		t.Error("the schema accepts a step with two types")
	}
}

// jsonCompatible turns YAML's decoded values into what JSON decoding gives.
func jsonCompatible(v any) any {
	b, err := json.Marshal(convert(v))
	if err != nil {
		panic(err)
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

func convert(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = convert(e)
		}
		return v
	case map[any]any:
		m := map[string]any{}
		for k, e := range v {
			m[k.(string)] = convert(e)
		}
		return m
	case []any:
		for i, e := range v {
			v[i] = convert(e)
		}
		return v
	}
	return v
}

// TestEveryFieldDocumented: editors show the description and an example on
// hover, for every field.
func TestEveryFieldDocumented(t *testing.T) {
	pb, inv := schema.Committed()
	for name, doc := range map[string][]byte{"playbook": pb, "inventory": inv} {
		var root any
		if err := json.Unmarshal(doc, &root); err != nil {
			t.Fatal(err)
		}
		var walk func(path string, v any)
		walk = func(path string, v any) {
			m, ok := v.(map[string]any)
			if !ok {
				return
			}
			if props, ok := m["properties"].(map[string]any); ok {
				for k, p := range props {
					pm, _ := p.(map[string]any)
					if pm["description"] == nil {
						t.Errorf("%s: %s.%s has no description", name, path, k)
					}
					_, ref := pm["$ref"]
					if _, all := pm["allOf"]; all {
						ref = true
					}
					if pm["examples"] == nil && pm["const"] == nil && !ref && pm["type"] != "object" && pm["type"] != "array" && pm["type"] != "boolean" {
						t.Errorf("%s: %s.%s has no example", name, path, k)
					}
					walk(path+"."+k, p)
				}
			}
			if defs, ok := m["definitions"].(map[string]any); ok {
				for k, d := range defs {
					walk(k, d)
				}
			}
			if items, ok := m["items"]; ok {
				walk(path+"[]", items)
			}
		}
		walk("", root)
	}
}
