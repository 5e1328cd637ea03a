package steps

import (
	"encoding/json"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/runbook-dev/runbook/internal/redact"
)

// Show formats a result compactly for messages: keys sorted, long values
// cut, so that "last seen" stays one readable line. Secrets are masked
// before any value is encoded or cut.
func Show(red *redact.Redactor, r map[string]any) string {
	r, _ = red.Value(r).(map[string]any)
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
		b.WriteString(k + ": " + cut(string(v), 200))
	}
	b.WriteString("}")
	return b.String()
}

// cut shortens s to at most n bytes, on a rune boundary. Whatever it cuts
// must be redacted already.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
