package engine

import (
	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/diag"
)

// duplicateKeys reports every key written twice in one mapping, anywhere
// in the document: YAML keeps one of the two values, and which one the
// author meant is anyone's guess (a host listed twice with two addresses,
// a parameter declared twice). It runs on the document as parsed, before
// aliases are resolved, so a mapping that aliases share is reported once,
// where it is written. Merge keys (<<) may repeat: each merges a mapping.
func duplicateKeys(n *yaml.Node, ds *diag.List) {
	if n.Kind == yaml.MappingNode && len(n.Content) >= 4 {
		var seen map[string]*yaml.Node // for large mappings only
		if len(n.Content) > 32 {
			seen = make(map[string]*yaml.Node, len(n.Content)/2)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
				continue
			}
			var first *yaml.Node
			if seen != nil {
				if first = seen[k.Value]; first == nil {
					seen[k.Value] = k
				}
			} else {
				for j := 0; j < i && first == nil; j += 2 {
					if p := n.Content[j]; p.Kind == yaml.ScalarNode && p.Tag != "!!merge" && p.Value == k.Value {
						first = p
					}
				}
			}
			if first != nil {
				ds.Errorf(diag.Pos{Line: k.Line, Col: k.Column}, diag.RuleDuplicateKey,
					"key %q is written twice in this mapping (first at line %d, column %d): YAML keeps only one of the values; remove one", k.Value, first.Line, first.Column)
			}
		}
	}
	for _, c := range n.Content {
		duplicateKeys(c, ds)
	}
}
