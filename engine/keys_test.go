package engine_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/steps"
)

// TestEveryNamePositionRefusesExpressions: in every field of every step
// type that is read as written (a literal, the keys of a mapping), a
// ${{ }} is refused at validate with its position: none reaches the host
// as its text. A step type or field added later is covered by its
// descriptor.
func TestEveryNamePositionRefusesExpressions(t *testing.T) {
	const x = "${{ params.k }}"
	for _, typ := range steps.Builtin().All() {
		desc := typ.Describe()
		var walk func(fields []steps.Field, indent string, path string)
		walk = func(fields []steps.Field, indent, path string) {
			for _, f := range fields {
				var body string
				switch f.Kind {
				case steps.Literal:
					body = fmt.Sprintf("%s%s: %q", indent, f.Name, x)
				case steps.StringMap:
					body = fmt.Sprintf("%s%s: {%q: v}", indent, f.Name, x)
				case steps.ObjectList:
					walk(f.Fields, indent+"  ", path+f.Name+"[].")
					continue
				case steps.Object:
					walk(f.Fields, indent, path+f.Name+".")
					continue
				default:
					continue
				}
				t.Run(desc.Name+"/"+path+f.Name, func(t *testing.T) {
					src := "version: 1\nname: keys\nparams:\n  k: {type: string, default: x}\nsteps:\n  - id: a\n    " + desc.Name + ":\n" + wrap(path, body)
					_, ds := loader().Load("keys.yaml", []byte(src))
					line := strings.Count(src[:strings.Index(src, x)], "\n") + 1
					for _, d := range ds {
						if d.Pos.Line == line && strings.Contains(d.Message, "${{ }} is not interpolated") {
							return
						}
					}
					t.Errorf("%s: no refusal at line %d:\n%s\n%v", path+f.Name, line, src, ds)
				})
			}
		}
		walk(desc.Fields, "      ", "")
	}
}

// wrap places a field's YAML under the objects of its path.
func wrap(path, body string) string {
	if path == "" {
		return body + "\n"
	}
	var b strings.Builder
	indent := "      "
	for _, p := range strings.Split(strings.TrimSuffix(path, "."), ".") {
		if name, ok := strings.CutSuffix(p, "[]"); ok {
			fmt.Fprintf(&b, "%s%s:\n%s- ", indent, name, indent)
			body = strings.TrimLeft(body, " ")
			indent += "  "
			continue
		}
		fmt.Fprintf(&b, "%s%s:\n", indent, p)
		indent += "  "
	}
	return b.String() + body + "\n"
}
