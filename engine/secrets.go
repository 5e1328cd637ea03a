package engine

import (
	"fmt"
	"sort"
	"strings"

	"github.com/runbook-dev/runbook/internal/redact"
	"github.com/runbook-dev/runbook/internal/tmpl"
)

// WeakSecretError refuses, before anything runs, secrets whose values
// cannot be redacted safely. A value that also occurs as ordinary text (in
// the playbook, the inventory, a parameter, runbook's own words) would be
// masked there too: the output is mangled, and a reader learns the secret
// from where the mask stands. A value shorter than redact.MinLength occurs
// by chance in output.
type WeakSecretError struct {
	// Problems say, for each such secret, why: by name, never by value.
	Problems []string
}

func (e *WeakSecretError) Error() string {
	return "secrets that cannot be kept out of the output: " + strings.Join(e.Problems, "; ")
}

// outputWords are words runbook itself prints in every run: a secret
// found in one of them would mask runbook's own report.
var outputWords = []string{
	"runbook", "localhost", "guard", "running", "changed", "skipped", "failed", "would-change",
	"unknown", "interrupted", "planned", "finished", "confirmed", "refused", "resumed",
	"postgres", "postgresql", "replication", "streaming", "in production", "in archive recovery",
}

// CheckSecrets returns a *WeakSecretError naming every secret whose value
// is shorter than redact.MinLength or occurs in the playbook's text, the
// inventory's, a parameter's value (given or default) or runbook's own
// output words; nil when every secret is safe to redact.
func CheckSecrets(pb *Playbook, inv *Inventory, params map[string]any, secrets map[string]string) error {
	names := make([]string, 0, len(secrets))
	for n := range secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	var problems []string
	for _, n := range names {
		if secrets[n] == "" && optionalSecret(pb, n) {
			continue
		}
		if why := weakness(pb, inv, params, secrets[n]); why != "" {
			problems = append(problems, fmt.Sprintf("secret %s %s", n, why))
		}
	}
	if len(problems) > 0 {
		return &WeakSecretError{Problems: problems}
	}
	return nil
}

// weakness says why a secret's value cannot be redacted safely, or "".
func weakness(pb *Playbook, inv *Inventory, params map[string]any, v string) string {
	if why := redact.Weakness(v); why != "" {
		return why
	}
	// Every form the redactor masks counts: a value whose shell-quoted or
	// escaped form is in the playbook would be masked there too.
	red := redact.New([]string{v})
	if red.Contains(string(pb.Source)) {
		return "occurs in the text of the playbook " + pb.File
	}
	if inv != nil && red.Contains(string(inv.Source)) {
		return "occurs in the text of the inventory " + inv.File
	}
	pnames := make([]string, 0, len(params))
	for n := range params {
		pnames = append(pnames, n)
	}
	sort.Strings(pnames)
	for _, n := range pnames {
		if red.Contains(paramText(params[n])) {
			return "occurs in the value of param " + n
		}
	}
	for _, w := range outputWords {
		if red.Contains(w) {
			return "is a word runbook prints in its own report"
		}
	}
	return ""
}

func paramText(v any) string {
	if l, ok := v.([]any); ok {
		parts := make([]string, len(l))
		for i, e := range l {
			parts[i] = tmpl.Format(e)
		}
		return strings.Join(parts, "\n")
	}
	return tmpl.Format(v)
}

func optionalSecret(pb *Playbook, name string) bool {
	for _, s := range pb.Secrets {
		if s.Name == name {
			return s.Optional
		}
	}
	return false
}
