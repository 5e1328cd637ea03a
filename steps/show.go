package steps

import (
	"encoding/json"
	"sort"
	"strings"
)

// Show formats a result compactly for messages: keys sorted, long values
// cut, so that "last seen" stays one readable line.
func Show(r map[string]any) string {
	keys := make([]string, 0, len(r))
	for k := range r {
		if k == "error" && r[k] == "" {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		v, _ := json.Marshal(r[k])
		s := string(v)
		if len(s) > 200 {
			s = s[:200] + "…"
		}
		b.WriteString(k + ": " + s)
	}
	b.WriteString("}")
	return b.String()
}
