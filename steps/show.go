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

// ShowCutNote ends a shown result whose values Show cut: it says so, and
// where the whole result is.
const ShowCutNote = ` (values over 200 bytes cut at "…"; the whole result: ` + ShowRunHint + ` --output json)`

// ShowRunHint stands, in a message, for where the run's whole output is
// found: the CLI, which knows the run, puts its show-run command there
// (or nothing, for a run without a journal).
const ShowRunHint = "runbook show-run --full RUN-ID, or run with"

// Show formats a result for a message on one line, the one formatter of
// results in messages (a guard's or an assert's "observed", a wait's
// "last seen"): {key: value, ...} with the keys sorted, an empty error
// left out, every value in JSON as it is (a string's trailing newline
// shown, "up\n": an author copies what is shown into an expression), cut
// to ShowValueBytes bytes (on a rune boundary, marked with "…", and the
// result followed by ShowCutNote). Secrets are masked by red (nil masks
// nothing) before any value is encoded or cut: a cut could leave a piece
// of a secret that no form of it matches afterwards.
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
	cutAny := false
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		v := showValue(r[k])
		if len(v) > ShowValueBytes {
			v, cutAny = cutJSON(v, ShowValueBytes), true
		}
		b.WriteString(k + ": " + v)
	}
	b.WriteString("}")
	if cutAny {
		b.WriteString(ShowCutNote)
	}
	return b.String()
}

// showValue is v in JSON on one line; a value JSON cannot encode is shown
// as Go prints it.
func showValue(v any) string {
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

// cutJSON cuts a value in JSON as Cut does, never in the middle of an
// escape (\n): a lone backslash reads as if the value went on with "…".
func cutJSON(s string, n int) string {
	body := strings.TrimSuffix(Cut(s, n), "…")
	odd := false
	for i := len(body) - 1; i >= 0 && body[i] == '\\'; i-- {
		odd = !odd
	}
	if odd {
		body = body[:len(body)-1]
	}
	return body + "…"
}
