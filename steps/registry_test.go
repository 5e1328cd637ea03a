package steps_test

import (
	"reflect"
	"testing"

	"github.com/expr-lang/expr/types"

	"github.com/runbook-dev/runbook/steps"
)

// TestBuiltinDescriptors: every built-in type describes itself completely,
// under the name the registry files it by, and the same way each time
// (the loader asks for every step).
func TestBuiltinDescriptors(t *testing.T) {
	reg := steps.Builtin()
	if len(reg.All()) != len(reg.Names()) || len(reg.Names()) < 7 {
		t.Fatalf("registry has %d types and %d names", len(reg.All()), len(reg.Names()))
	}
	for _, name := range reg.Names() {
		typ, _ := reg.Lookup(name)
		d := typ.Describe()
		if d.Name != name {
			t.Errorf("%s is filed under %q", d.Name, name)
		}
		if d.Doc == "" || d.Result == nil || len(d.Fields) == 0 {
			t.Errorf("%s: incomplete descriptor (doc %q, %d fields, result %v)", name, d.Doc, len(d.Fields), d.Result)
		}
		seen := map[string]bool{}
		for _, f := range d.Fields {
			if f.Doc == "" || seen[f.Name] {
				t.Errorf("%s.%s: a field without a doc, or twice", name, f.Name)
			}
			seen[f.Name] = true
		}
		again := typ.Describe()
		if reflect.ValueOf(again.Fields).Pointer() != reflect.ValueOf(d.Fields).Pointer() || reflect.ValueOf(again.Result).Pointer() != reflect.ValueOf(d.Result).Pointer() {
			t.Errorf("%s: Describe builds a new descriptor on each call", name)
		}
	}
}

type named string

func (n named) Describe() steps.Descriptor {
	return steps.Descriptor{Name: string(n), Result: types.Map{}}
}

func (named) Decode(*steps.Decoder, steps.Body) steps.Step { return nil }

func TestRegistryRefusesBadNames(t *testing.T) {
	for _, c := range []struct {
		name string
		ts   []steps.Type
	}{
		{"empty", []steps.Type{named("")}},
		{"duplicate", []steps.Type{named("x"), named("x")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("NewRegistry did not panic")
				}
			}()
			steps.NewRegistry(c.ts...)
		})
	}
}
