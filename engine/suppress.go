package engine

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/diag"
)

// Findings are ignored in two ways: by a comment in the file, next to
// what it silences (suppress, applied by Load), and by path in the
// project's ConfigFile (ignoreByPath, applied by Validate).

// suppress drops the diagnostics that a `# runbook:ignore RULE-ID` comment
// on their line or the line above silences. Several ids may follow,
// separated by spaces or commas.
func suppress(ds *diag.List, src []byte) {
	if !bytes.Contains(src, []byte("runbook:ignore")) {
		return
	}
	lines := diag.SplitLines(string(src))
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
		// Another file's (an included playbook's) follow its own comments.
		if d.File != "" && d.File != ds.File || !ignored(d.Pos.Line, d.Rule) {
			kept = append(kept, d)
		}
	}
	ds.Items = kept
}

// ConfigFile is the file of ignores by path that validate reads from the
// working directory:
//
//	ignore:
//	  - path: playbooks/legacy/   # a directory ending in /, or a glob
//	    rules: [unused-param]     # none: every rule
const ConfigFile = ".runbook.yaml"

type validateConfig struct {
	Ignore []struct {
		// Path is a glob (playbooks/legacy/*.yaml) or a directory ending in /.
		Path  string   `yaml:"path"`
		Rules []string `yaml:"rules"`
	} `yaml:"ignore"`
}

// ignoreByPath drops the diagnostics that the config file ignores for
// their path. A missing file (or none named) ignores nothing; a broken one
// is returned as the error, and nothing of it is applied.
func ignoreByPath(ds []*diag.Diagnostic, file string) ([]*diag.Diagnostic, error) {
	if file == "" {
		return ds, nil
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return ds, nil
	}
	var cfg validateConfig
	if err == nil {
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		err = dec.Decode(&cfg)
	}
	if err != nil {
		return ds, fmt.Errorf("%s: %w", file, err)
	}
	kept := ds[:0]
	for _, d := range ds {
		ignored := false
		for _, ig := range cfg.Ignore {
			if matchPath(ig.Path, d.File) && (len(ig.Rules) == 0 || slices.Contains(ig.Rules, d.Rule)) {
				ignored = true
				break
			}
		}
		if !ignored {
			kept = append(kept, d)
		}
	}
	return kept, nil
}

// matchPath reports whether file is under the directory pattern (ending in
// /) or matches the glob pattern, both relative to the working directory.
func matchPath(pattern, file string) bool {
	file = filepath.ToSlash(filepath.Clean(file))
	if strings.HasSuffix(pattern, "/") {
		return strings.HasPrefix(file+"/", strings.TrimPrefix(pattern, "./"))
	}
	ok, _ := filepath.Match(strings.TrimPrefix(pattern, "./"), file)
	return ok
}
