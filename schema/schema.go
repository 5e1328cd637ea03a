// Package schema builds the JSON Schema of the playbook and inventory
// formats from the same field descriptions the loader checks against, so
// that the schema editors use cannot drift from what runbook accepts.
package schema

import (
	_ "embed"
	"encoding/json"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/steps"
)

// IDBase is the base of the schemas' $id.
const IDBase = "https://runbook.dev/schema/"

var (
	//go:embed playbook.schema.json
	playbookFile []byte
	//go:embed inventory.schema.json
	inventoryFile []byte
)

// Committed returns the schema files as committed, for the sync test.
func Committed() (playbook, inventory []byte) { return playbookFile, inventoryFile }

// Playbook returns the JSON Schema of the playbook format for the step types
// of reg.
func Playbook(reg *steps.Registry) []byte {
	defs := map[string]any{}
	var descs []steps.Descriptor
	for _, t := range reg.All() {
		d := t.Describe()
		descs = append(descs, d)
		defs[d.Name] = object(d.Fields, d.Doc)
	}
	// withTypes lists the step types as keys of fields; looks leaves out
	// the types that wait (guards and probes look once).
	withTypes := func(fields []steps.Field, doc string, looks bool, required ...string) map[string]any {
		o := object(fields, doc)
		props := o["properties"].(map[string]any)
		var oneOf []any
		for _, d := range descs {
			if looks && d.Waits {
				continue
			}
			// allOf keeps the description next to the reference: draft-07
			// ignores the siblings of a bare $ref, and editors show it.
			props[d.Name] = map[string]any{"description": d.Doc, "allOf": []any{map[string]any{"$ref": "#/definitions/" + d.Name}}}
			oneOf = append(oneOf, map[string]any{"required": []string{d.Name}})
		}
		o["oneOf"] = oneOf
		if len(required) > 0 {
			o["required"] = required
		}
		return o
	}
	defs["step"] = withTypes(engine.CommonFields(), "A step: one step-type key plus common fields.", false)
	defs["guard"] = withTypes(engine.GuardFields(), "A guard: a read-only probe and an assert, checked before any step; a failed guard aborts the run.", true, "name", "assert")
	defs["probe"] = withTypes(engine.ProbeFields(), "A read-only step body observed by a guard or a wait-until.", true)
	defs["fact"] = withTypes(engine.FactFields(), "A fact: a read-only probe on each of its hosts before the guards; its value is facts.NAME[HOST] and host.facts.NAME.", true, "hosts")
	defs["param"] = object(engine.ParamFields(), "A typed parameter.")
	defs["secret"] = object(engine.SecretFields(), "A secret: never printed, never on a command line.")

	root := object(engine.TopFields(), "A runbook playbook (format version 1).")
	root["$schema"] = "http://json-schema.org/draft-07/schema#"
	root["$id"] = IDBase + "playbook.schema.json"
	root["title"] = "runbook playbook"
	root["patternProperties"] = map[string]any{"^x-": map[string]any{"description": "extension keys, ignored: a place for YAML anchors"}}
	props := root["properties"].(map[string]any)
	props["version"] = map[string]any{"const": engine.Version, "description": "the format version; must be 1", "examples": []any{1}}
	props["params"] = map[string]any{"type": "object", "description": "typed parameters, given with -p name=value", "additionalProperties": map[string]any{"$ref": "#/definitions/param"}, "propertyNames": map[string]any{"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}}
	props["secrets"] = map[string]any{"type": "object", "description": "secret values (passwords), read from the environment, a file or a prompt; never printed", "additionalProperties": map[string]any{"$ref": "#/definitions/secret"}}
	props["facts"] = map[string]any{"type": "object", "description": "read-only observations of hosts before the guards, by name", "additionalProperties": map[string]any{"$ref": "#/definitions/fact"}, "propertyNames": map[string]any{"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}}
	props["require"] = map[string]any{"type": "array", "description": "guards: read-only probes with an assert, all checked before the first step; any failure aborts the run", "items": map[string]any{"$ref": "#/definitions/guard"}}
	batch := object(engine.BatchFields(), "A batch: a sequence of steps run a batch of hosts at a time (serial:), moving to the next batch only when the sequence succeeded there or its failures are within the budget.")
	batch["properties"].(map[string]any)["steps"] = map[string]any{"type": "array", "minItems": 1, "description": "the steps run on each batch, in order; they name no host", "items": map[string]any{"$ref": "#/definitions/step"}}
	batch["properties"].(map[string]any)["serial"] = map[string]any{"description": "the size of each batch: a number of hosts, a percentage, or a list of them (the last repeats); default 1", "examples": []any{1, "25%", []any{1, "50%"}},
		"oneOf": []any{serialSize, map[string]any{"type": "array", "minItems": 1, "items": serialSize}}}
	defs["batch"] = batch
	include := object(engine.IncludeFields(), "A step that runs another playbook (a bundled name, or a .yaml file relative to this one): its steps run here, its guards and facts are checked with this playbook's before anything changes, its lock is taken once.")
	include["properties"].(map[string]any)["params"] = map[string]any{"type": "object", "description": "the included playbook's params: values, or ${{ }} of this playbook's params, vars and secrets", "additionalProperties": map[string]any{"type": []string{"string", "number", "boolean"}}, "propertyNames": map[string]any{"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}}
	defs["include"] = include
	props["steps"] = map[string]any{"type": "array", "minItems": 1, "description": "the steps, run in order; an entry with steps: is a batch, one with playbook: runs another playbook", "items": map[string]any{"anyOf": []any{
		map[string]any{"$ref": "#/definitions/step"}, map[string]any{"$ref": "#/definitions/batch"}, map[string]any{"$ref": "#/definitions/include"}}}}
	root["definitions"] = defs
	return marshal(root)
}

// serialSize is one batch size: a number of hosts or a percentage.
var serialSize = map[string]any{"oneOf": []any{
	map[string]any{"type": "integer", "minimum": 1},
	map[string]any{"type": "string", "pattern": `^([1-9][0-9]?|100)%$`},
}}

// Inventory returns the JSON Schema of the inventory format.
func Inventory() []byte {
	host := object(engine.HostFields(), "How to reach a host.")
	root := object(engine.InventoryFields(), "A runbook inventory: the hosts playbooks run on.")
	root["$schema"] = "http://json-schema.org/draft-07/schema#"
	root["$id"] = IDBase + "inventory.schema.json"
	root["title"] = "runbook inventory"
	props := root["properties"].(map[string]any)
	props["defaults"] = map[string]any{"$ref": "#/definitions/host", "description": "settings every host inherits"}
	props["hosts"] = map[string]any{"type": "object", "description": "hosts by name", "additionalProperties": map[string]any{"anyOf": []any{map[string]any{"$ref": "#/definitions/host"}, map[string]any{"type": "null"}}}}
	props["groups"] = map[string]any{"type": "object", "description": "named lists of hosts, usable in hosts:", "additionalProperties": map[string]any{"type": "array", "items": map[string]any{"type": "string"}}}
	root["definitions"] = map[string]any{"host": host}
	return marshal(root)
}

func marshal(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err) // only maps, strings and numbers: cannot fail
	}
	return append(b, '\n')
}

func object(fields []steps.Field, doc string) map[string]any {
	props := map[string]any{}
	var required []string
	for _, f := range fields {
		props[f.Name] = fieldSchema(f)
		if f.Required {
			required = append(required, f.Name)
		}
	}
	o := map[string]any{"type": "object", "description": doc, "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

// FieldSchema returns the schema of one field.
func fieldSchema(f steps.Field) map[string]any {
	var s map[string]any
	switch f.Kind {
	case steps.String:
		s = map[string]any{"type": []string{"string", "number", "boolean"}}
	case steps.Literal, steps.Expr:
		s = map[string]any{"type": "string"}
	case steps.Bool:
		s = map[string]any{"type": "boolean"}
		if f.Dynamic {
			s = map[string]any{"oneOf": []any{s, map[string]any{"type": "string", "pattern": `\$\{\{.*\}\}`}}}
		}
	case steps.Int:
		s = map[string]any{"type": "integer"}
		if f.Dynamic {
			s = map[string]any{"oneOf": []any{s, map[string]any{"type": "string", "pattern": `\$\{\{.*\}\}`}}}
		}
	case steps.Port:
		s = map[string]any{"oneOf": []any{
			map[string]any{"type": "integer", "minimum": 1, "maximum": 65535},
			map[string]any{"type": "string", "pattern": `\$\{\{.*\}\}`},
		}}
	case steps.Duration:
		s = map[string]any{"type": "string", "pattern": `^(([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+|.*\$\{\{.*\}\}.*)$`}
	case steps.StringMap:
		s = map[string]any{"type": "object", "additionalProperties": map[string]any{"type": []string{"string", "number", "boolean"}}}
	case steps.StringList:
		s = map[string]any{"oneOf": []any{
			map[string]any{"type": "array", "items": map[string]any{"type": []string{"string", "number"}}},
			map[string]any{"type": "string", "pattern": `\$\{\{.*\}\}`},
		}}
	case steps.IntList:
		s = map[string]any{"oneOf": []any{map[string]any{"type": "integer"}, map[string]any{"type": "array", "items": map[string]any{"type": "integer"}}}}
	case steps.Object:
		if len(f.Fields) > 0 {
			s = object(f.Fields, f.Doc)
		} else {
			s = map[string]any{"type": "object"}
		}
	case steps.ObjectList:
		if len(f.Fields) > 0 {
			s = map[string]any{"type": "array", "items": object(f.Fields, f.Doc)}
		} else {
			s = map[string]any{"type": "array", "items": map[string]any{"type": "object"}}
		}
	case steps.Probe:
		s = map[string]any{"$ref": "#/definitions/probe"}
	default:
		s = map[string]any{}
	}
	if f.Doc != "" {
		s["description"] = f.Doc
	}
	switch {
	case len(f.Enum) > 0 && f.Kind == steps.StringList:
		// Each element is one of the values.
		s["oneOf"] = []any{
			map[string]any{"type": "array", "items": map[string]any{"enum": f.Enum}},
			map[string]any{"type": "string", "pattern": `\$\{\{.*\}\}`},
		}
	case len(f.Enum) > 0:
		s["enum"] = f.Enum
	}
	if f.Default != nil {
		s["default"] = f.Default
	}
	switch {
	case f.Example != nil:
		s["examples"] = []any{f.Example}
	case f.Default != nil:
		s["examples"] = []any{f.Default}
	case len(f.Enum) > 0:
		s["examples"] = []any{f.Enum[0]}
	}
	return s
}
