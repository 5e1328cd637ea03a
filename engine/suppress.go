package engine

import (
	"bytes"
	"strings"

	"github.com/runbook-dev/runbook/internal/diag"
)

// suppress drops the diagnostics that a `# runbook:ignore RULE-ID` comment
// on their line or the line above silences. Several ids may follow,
// separated by spaces or commas.
func suppress(ds *diag.List, src []byte) {
	if !bytes.Contains(src, []byte("runbook:ignore")) {
		return
	}
	// Any line break YAML reads as one: \r\n, \n, a lone \r.
	lines := strings.Split(strings.ReplaceAll(strings.ReplaceAll(string(src), "\r\n", "\n"), "\r", "\n"), "\n")
	ignored := func(line int, rule string) bool {
		for _, l := range []int{line - 1, line - 2} {
			if l < 0 || l >= len(lines) {
				continue
			}
			_, after, ok := strings.Cut(lines[l], "# runbook:ignore")
			if !ok {
				continue
			}
			for _, id := range strings.FieldsFunc(after, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' || r == '\r' }) {
				if id == rule {
					return true
				}
			}
		}
		return false
	}
	kept := ds.Items[:0]
	for _, d := range ds.Items {
		if !ignored(d.Pos.Line, d.Rule) {
			kept = append(kept, d)
		}
	}
	ds.Items = kept
}
