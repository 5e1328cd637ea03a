package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/runbook-dev/runbook/diag"
	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/playbooks"
)

func validateCmd(e *Env, args []string) int {
	fs := newFlags(e, "validate", "[--format text|json] PATH...")
	format := fs.String("format", "text", "output format: text or json")
	listRules := fs.Bool("list-rules", false, "list the rule ids diagnostics carry, and exit")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return ExitUsage
	}
	if *listRules {
		for _, r := range diag.Rules {
			fmt.Fprintf(e.Stdout, "%-22s %s\n", r.ID, r.Description)
		}
		return ExitOK
	}
	if *format != "text" && *format != "json" {
		return e.usageError("--format must be text or json, not %q", *format)
	}
	if len(pos) == 0 {
		return e.usageError("validate needs at least one file or directory")
	}
	files, err := collectFiles(pos)
	if err != nil {
		return e.usageError("%v", err)
	}
	// Validation is a short burst of allocation-heavy parsing whose garbage
	// dies young; collecting less often nearly halves its time on large
	// trees (BenchmarkValidate1000).
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	ds := ValidateFiles(files)
	if *format == "json" {
		writeJSON(e.Stdout, ds)
	} else {
		for _, d := range ds {
			fmt.Fprintln(e.Stdout, d)
		}
	}
	if diag.HasErrors(ds) {
		fmt.Fprintf(e.Stderr, "runbook: %d problem(s) in %d file(s) checked\n", len(ds), len(files))
		return ExitFailed
	}
	return ExitOK
}

type jsonDiag struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

func writeJSON(w io.Writer, ds []*diag.Diagnostic) {
	out := make([]jsonDiag, 0, len(ds))
	for _, d := range ds {
		out = append(out, jsonDiag{d.File, d.Pos.Line, d.Pos.Col, d.Rule, string(d.Severity), d.Message})
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Fprintf(w, "%s\n", b)
}

// input is a file to validate: a path, or a bundled playbook.
type input struct {
	name string
	src  []byte
}

// collectFiles expands directories into their *.yaml and *.yml files and
// bundled names into their sources.
func collectFiles(paths []string) ([]input, error) {
	var out []input
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			if src, ok := playbooks.Lookup(p); ok {
				out = append(out, input{playbooks.Path(p), src})
				continue
			}
			return nil, fmt.Errorf("%s: no such file or directory", p)
		}
		if !st.IsDir() {
			out = append(out, input{name: p})
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && path != p && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
				out = append(out, input{name: path})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ValidateFiles checks files in parallel and returns every diagnostic,
// sorted.
func ValidateFiles(files []input) []*diag.Diagnostic {
	loader := newLoader()
	results := make([][]*diag.Diagnostic, len(files))
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				results[i] = validateOne(loader, files[i])
			}
		}()
	}
	for i := range files {
		work <- i
	}
	close(work)
	wg.Wait()
	var all []*diag.Diagnostic
	for _, r := range results {
		all = append(all, r...)
	}
	diag.Sort(all)
	return all
}

func validateOne(l *engine.Loader, in input) []*diag.Diagnostic {
	src := in.src
	if src == nil {
		var err error
		if src, err = os.ReadFile(in.name); err != nil {
			return []*diag.Diagnostic{{File: in.name, Rule: diag.RuleNotAPlaybook, Severity: diag.Error, Message: err.Error()}}
		}
	}
	if looksLikeInventory(src) {
		_, ds := engine.ParseInventory(in.name, src)
		return ds
	}
	_, ds := l.Load(in.name, src)
	return ds
}

// looksLikeInventory tells an inventory from a playbook by its top-level
// keys: an inventory has hosts: and no steps:.
func looksLikeInventory(src []byte) bool {
	hasHosts, hasSteps := false, false
	for _, line := range bytes.Split(src, []byte("\n")) {
		switch {
		case bytes.HasPrefix(line, []byte("hosts:")):
			hasHosts = true
		case bytes.HasPrefix(line, []byte("steps:")), bytes.HasPrefix(line, []byte("version:")):
			hasSteps = true
		}
	}
	return hasHosts && !hasSteps
}
