package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/notify"
)

// userConfig is a user's configuration of runbook (docs/operations.md):
// the automatic retention of journals and the notification hooks.
type userConfig struct {
	// File is where it was read from, "" when there is none.
	File      string
	Retention *retention
	Hooks     []notify.Hook
}

// retention is the automatic retention of journals, applied after every
// journaled run: runs older than OlderThan (0: any age) beyond the Keep
// newest go, never one that can still be resumed.
type retention struct {
	OlderThan time.Duration
	Keep      int
}

// configFileYAML is the file as written.
type configFileYAML struct {
	Retention *struct {
		OlderThan string `yaml:"older_than"`
		Keep      int    `yaml:"keep"`
	} `yaml:"retention"`
	Hooks []struct {
		Name      string            `yaml:"name"`
		Command   []string          `yaml:"command"`
		URL       string            `yaml:"url"`
		Headers   map[string]string `yaml:"headers"`
		Events    []string          `yaml:"events"`
		Playbooks []string          `yaml:"playbooks"`
		Timeout   string            `yaml:"timeout"`
	} `yaml:"hooks"`
}

// configPath is $RUNBOOK_CONFIG, or config.yaml in $XDG_CONFIG_HOME/runbook
// or ~/.config/runbook; "" when none of these can be named.
func configPath(e *Env) string {
	if f := e.Getenv("RUNBOOK_CONFIG"); f != "" {
		return f
	}
	if d := e.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "runbook", "config.yaml")
	}
	if home := e.Getenv("HOME"); filepath.IsAbs(home) {
		return filepath.Join(home, ".config", "runbook", "config.yaml")
	}
	return ""
}

// loadConfig reads the user's configuration. A missing file is an empty
// configuration; a file that cannot be read or is invalid is reported on
// stderr and ignored: a broken configuration must not keep a failover
// from running.
func (e *Env) loadConfig() *userConfig {
	file := configPath(e)
	cfg := &userConfig{}
	if file == "" {
		return cfg
	}
	src, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg
	}
	if err == nil {
		cfg, err = parseConfig(file, src)
	}
	if err != nil {
		fmt.Fprintf(e.Stderr, "runbook: configuration %v; going on without its hooks and retention (fix the file, see docs/operations.md)\n", err)
		return &userConfig{}
	}
	return cfg
}

// parseConfig reads a configuration file's text.
func parseConfig(file string, src []byte) (*userConfig, error) {
	var raw configFileYAML
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	cfg := &userConfig{File: file}
	if r := raw.Retention; r != nil {
		d, err := parseAge(r.OlderThan)
		if err != nil {
			return nil, fmt.Errorf("%s: retention.older_than: %w", file, err)
		}
		if r.Keep < 0 {
			return nil, fmt.Errorf("%s: retention.keep: %d is negative", file, r.Keep)
		}
		if d == 0 && r.Keep == 0 {
			return nil, fmt.Errorf("%s: retention: give older_than, keep or both", file)
		}
		cfg.Retention = &retention{OlderThan: d, Keep: r.Keep}
	}
	for i, h := range raw.Hooks {
		hook := notify.Hook{Name: h.Name, Command: h.Command, URL: h.URL, Headers: h.Headers, Playbooks: h.Playbooks, Timeout: notify.DefaultTimeout}
		if hook.Name == "" {
			hook.Name = fmt.Sprintf("hooks[%d]", i)
		}
		if h.Timeout != "" {
			d, err := time.ParseDuration(h.Timeout)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("%s: hook %s: timeout %q: want a duration such as 10s", file, hook.Name, h.Timeout)
			}
			hook.Timeout = d
		}
		for _, ev := range h.Events {
			o := notify.Outcome(ev)
			if !o.Valid() {
				return nil, fmt.Errorf("%s: hook %s: unknown event %q (want %s)", file, hook.Name, ev, notify.OutcomeList())
			}
			hook.Events = append(hook.Events, o)
		}
		if err := hook.Check(); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		cfg.Hooks = append(cfg.Hooks, hook)
	}
	return cfg, nil
}

// parseAge reads an age: a Go duration (36h, 90m) or a number of days
// (30d); "" is 0.
func parseAge(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("%q: want a number of days (30d) or a duration (36h)", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want a number of days (30d) or a duration (36h)", s)
	}
	return d, nil
}
