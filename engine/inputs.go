package engine

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/runbook-dev/runbook/internal/diag"
)

// ResolveParams checks and parses the given parameter values, fills in
// defaults and reports every unknown, missing or malformed value at once.
func ResolveParams(pb *Playbook, given map[string]string) (map[string]any, error) {
	out := make(map[string]any, len(pb.Params))
	var problems []string
	byName := map[string]*Param{}
	var names []string
	for _, p := range pb.Params {
		byName[p.Name] = p
		names = append(names, p.Name)
	}
	var givenNames []string
	for k := range given {
		givenNames = append(givenNames, k)
	}
	sort.Strings(givenNames)
	for _, k := range givenNames {
		p, ok := byName[k]
		if !ok {
			problems = append(problems, fmt.Sprintf("unknown param %q%s (params: %s)", k, diag.DidYouMean(k, names), strings.Join(names, ", ")))
			continue
		}
		v, err := p.Parse(given[k])
		if err != nil {
			problems = append(problems, fmt.Sprintf("param %s: %v", k, err))
			continue
		}
		out[k] = v
	}
	for _, p := range pb.Params {
		if _, ok := out[p.Name]; ok {
			continue
		}
		if _, bad := given[p.Name]; bad {
			continue
		}
		if p.Required {
			problems = append(problems, fmt.Sprintf("param %s is required (%s): pass -p %s=VALUE", p.Name, p.Description, p.Name))
			continue
		}
		out[p.Name] = p.Default
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return out, nil
}

// SecretSource is where secret values come from.
type SecretSource struct {
	LookupEnv func(string) (string, bool)
	// Prompt asks the operator, without echo; nil when no terminal is
	// attached.
	Prompt func(name, description string) (string, error)
}

// ResolveSecrets reads every declared secret from its source.
func ResolveSecrets(pb *Playbook, src SecretSource) (map[string]string, error) {
	out := make(map[string]string, len(pb.Secrets))
	var problems []string
	for _, s := range pb.Secrets {
		if s.Env != "" && src.LookupEnv != nil {
			if v, ok := src.LookupEnv(s.Env); ok && v != "" {
				out[s.Name] = v
				continue
			}
		}
		if s.File != "" {
			b, err := os.ReadFile(expandHome(s.File))
			if err == nil {
				out[s.Name] = strings.TrimRight(string(b), "\r\n")
				continue
			}
			if !errors.Is(err, os.ErrNotExist) {
				problems = append(problems, fmt.Sprintf("secret %s: %v", s.Name, err))
				continue
			}
		}
		if s.Optional {
			out[s.Name] = ""
			continue
		}
		if src.Prompt != nil {
			v, err := src.Prompt(s.Name, s.Description)
			if err != nil {
				problems = append(problems, fmt.Sprintf("secret %s: %v", s.Name, err))
				continue
			}
			out[s.Name] = v
			continue
		}
		var where []string
		if s.Env != "" {
			where = append(where, "set the environment variable "+s.Env)
		}
		if s.File != "" {
			where = append(where, "write it to "+s.File)
		}
		where = append(where, "or run on a terminal to be asked")
		problems = append(problems, fmt.Sprintf("secret %s (%s) has no value: %s", s.Name, s.Description, strings.Join(where, ", ")))
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return out, nil
}

func expandHome(p string) string {
	if strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return h + p[1:]
		}
	}
	return p
}
