package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/diag"
)

// ConfigFile is read from the working directory by validate.
const ConfigFile = ".runbook.yaml"

type validateConfig struct {
	Ignore []struct {
		// Path is a glob (playbooks/legacy/*.yaml) or a directory ending in /.
		Path  string   `yaml:"path"`
		Rules []string `yaml:"rules"`
	} `yaml:"ignore"`
}

// applyConfig drops the diagnostics that .runbook.yaml ignores for their
// path. A broken configuration is reported and ignored, never half used.
func applyConfig(ds []*diag.Diagnostic, stderr io.Writer) []*diag.Diagnostic {
	b, err := os.ReadFile(ConfigFile)
	if errors.Is(err, os.ErrNotExist) {
		return ds
	}
	var cfg validateConfig
	if err == nil {
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		err = dec.Decode(&cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "runbook: %s: %v (not applied)\n", ConfigFile, err)
		return ds
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
	return kept
}

func matchPath(pattern, file string) bool {
	file = filepath.ToSlash(filepath.Clean(file))
	if strings.HasSuffix(pattern, "/") {
		return strings.HasPrefix(file+"/", strings.TrimPrefix(pattern, "./"))
	}
	ok, _ := filepath.Match(strings.TrimPrefix(pattern, "./"), file)
	return ok
}
