package steps_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/runbook-dev/runbook/internal/redact"
	"github.com/runbook-dev/runbook/steps"
)

func TestShow(t *testing.T) {
	for _, c := range []struct {
		name string
		r    map[string]any
		want string
	}{
		{"keys sorted, strings quoted as they are", map[string]any{"stdout": "  in production\n", "exit_code": 0, "reachable": true},
			`{exit_code: 0, reachable: true, stdout: "  in production\n"}`},
		{"an empty error left out", map[string]any{"reachable": true, "error": ""}, `{reachable: true}`},
		{"an error kept", map[string]any{"reachable": false, "error": "no route"}, `{error: "no route", reachable: false}`},
		{"rows as JSON", map[string]any{"rows": []any{map[string]any{"in_recovery": false}}}, `{rows: [{"in_recovery":false}]}`},
		{"markup as written", map[string]any{"body": "<p>down</p>"}, `{body: "<p>down</p>"}`},
		{"nothing", nil, `{}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := steps.Show(nil, c.r); got != c.want {
				t.Errorf("Show = %s, want %s", got, c.want)
			}
		})
	}
}

// TestShowCutsAfterMasking: each value is cut to ShowValueBytes on a rune
// boundary, and a secret that straddles the cut is masked before it, so
// that no piece of it is left.
func TestShowCutsAfterMasking(t *testing.T) {
	long := strings.Repeat("é", steps.ShowValueBytes)
	got := steps.Show(nil, map[string]any{"stdout": long})
	if !strings.HasSuffix(got, steps.ShowCutNote) {
		t.Errorf("a cut result does not say so: %s", got)
	}
	v := strings.TrimSuffix(strings.TrimPrefix(got, "{stdout: "), "}"+steps.ShowCutNote)
	if !strings.HasSuffix(v, "…") || len(v) > steps.ShowValueBytes+len("…") || !utf8.ValidString(v) {
		t.Errorf("a long value is not cut to %d bytes on a rune boundary: %d bytes, %q…", steps.ShowValueBytes, len(v), v[:20])
	}

	secret := "s3cr3t-pa55word-0123456789"
	pad := strings.Repeat("a", steps.ShowValueBytes-10)
	got = steps.Show(redact.New([]string{secret}), map[string]any{"stdout": pad + secret, secret: 1})
	for i := 0; i+redact.MinLength <= len(secret); i++ {
		if piece := secret[i : i+redact.MinLength]; strings.Contains(got, piece) {
			t.Fatalf("a piece of the secret (%q) is in %s", piece, got)
		}
	}
	if !strings.Contains(got, redact.Mask) {
		t.Errorf("the secret was not masked: %s", got)
	}
}

// TestShowCutsNoEscapeInHalf: a cut never leaves half of a JSON escape
// (a lone backslash before "…").
func TestShowCutsNoEscapeInHalf(t *testing.T) {
	for pad := 0; pad < 4; pad++ {
		got := steps.Show(nil, map[string]any{"s": strings.Repeat("x", pad) + strings.Repeat("\n", steps.ShowValueBytes)})
		v := strings.TrimSuffix(strings.TrimPrefix(got, "{s: "), "}"+steps.ShowCutNote)
		if strings.HasSuffix(v, `\…`) && !strings.HasSuffix(v, `\\…`) {
			t.Errorf("pad %d: an escape cut in half: …%s", pad, v[len(v)-10:])
		}
	}
}
