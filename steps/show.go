package steps

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/runbook-dev/runbook/internal/redact"
)

// ShowValueBytes is how many bytes of each value Show keeps.
const ShowValueBytes = 200

// Show formats a result for a message on one line, the one formatter of
// results in messages (a guard's or an assert's "observed", a wait's
// "last seen"): {key: value, ...} with the keys sorted, an empty error
// left out, strings trimmed of surrounding white space, every value in
// JSON and cut to ShowValueBytes bytes (on a rune boundary, marked with
// "…"). Secrets are masked by red (nil masks nothing) before any value is
// encoded or cut: a cut could leave a piece of a secret that no form of it
// matches afterwards.
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
		b.WriteString(k + ": " + Cut(showValue(r[k]), ShowValueBytes))
	}
	b.WriteString("}")
	return b.String()
}

// showValue is v in JSON on one line, a string trimmed first; a value JSON
// cannot encode is shown as Go prints it.
func showValue(v any) string {
	if s, ok := v.(string); ok {
		v = strings.TrimSpace(s)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprintf("%v", v)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// Cut shortens s to at most n bytes, on a rune boundary, marking the cut
// with an ellipsis. Whatever it cuts must be redacted already.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
