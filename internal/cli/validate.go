package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/textcheck"
	"github.com/runbook-dev/runbook/playbooks"
)

func validateCmd(e *Env, args []string) int {
	fs := newFlags(e, "validate", "[--format text|json|github|sarif|junit] [--output FILE] [--strict] PATH...")
	format := fs.String("format", "", "output format: text, json, github, sarif or junit (default text; github when GITHUB_ACTIONS=true)")
	output := fs.String("output", "", "write the --format report to FILE, and text to the terminal")
	strict := fs.Bool("strict", false, "warnings fail too")
	stdinName := fs.String("stdin-filename", "stdin.yaml", "the name of the file read from - in diagnostics")
	invFile := fs.String("inventory", "", "also check host names against this inventory")
	listRules := fs.Bool("list-rules", false, "list the rule ids diagnostics carry, and exit")
	requireShellcheck := fs.Bool("require-shellcheck", false, "fail when shellcheck is not installed, instead of skipping the shell checks (for CI)")
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
	if *format == "" {
		*format = "text"
		if e.Getenv("GITHUB_ACTIONS") == "true" {
			*format = "github"
		}
	}
	if !slices.Contains(reportFormats, *format) {
		return e.usageError("--format must be one of %s, not %q", strings.Join(reportFormats, ", "), *format)
	}
	if len(pos) == 0 {
		return e.usageError("validate needs at least one file or directory (- reads standard input)")
	}
	files, err := collectFiles(pos, e.Stdin, *stdinName)
	if err != nil {
		return e.usageError("%v", err)
	}
	var inv *engine.Inventory
	if *invFile != "" {
		var ds []*diag.Diagnostic
		inv, ds, err = engine.LoadInventory(*invFile)
		if err != nil {
			return e.usageError("inventory: %v", err)
		}
		if inv == nil {
			for _, d := range ds {
				fmt.Fprintln(e.Stderr, d)
			}
			return ExitFailed
		}
	}
	shellcheck := lookPath("shellcheck", e.Getenv("PATH"))
	if shellcheck == "" && *requireShellcheck {
		fmt.Fprintln(e.Stderr, "runbook: --require-shellcheck: shellcheck is not installed (not found in PATH)")
		return ExitUsage
	}
	checker, err := textcheck.New(context.Background(), shellcheck)
	if err != nil {
		fmt.Fprintf(e.Stderr, "runbook: %v\n", err)
		return ExitInternal
	}
	defer checker.Close()
	// Validation is a short burst of allocation-heavy parsing whose garbage
	// dies young; collecting less often nearly halves its time on large
	// trees (BenchmarkValidate1000).
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	rep := validateAll(files, inv, checker)
	if err := checker.Err(); err != nil {
		fmt.Fprintf(e.Stderr, "runbook: %v\n", err)
		return ExitInternal
	}
	rep.ds = applyConfig(rep.ds, e.Stderr)
	if *output != "" {
		f, err := os.Create(*output)
		if err != nil {
			fmt.Fprintf(e.Stderr, "runbook: %v\n", err)
			return ExitInternal
		}
		rep.write(f, *format, false, *strict)
		if err := f.Close(); err != nil {
			fmt.Fprintf(e.Stderr, "runbook: %v\n", err)
			return ExitInternal
		}
		rep.writeText(e.Stdout, e.isTerminal(e.Stdout) && e.Getenv("NO_COLOR") == "")
	} else {
		rep.write(e.Stdout, *format, *format == "text" && e.isTerminal(e.Stdout) && e.Getenv("NO_COLOR") == "", *strict)
	}
	if !checker.ShellChecked() {
		fmt.Fprintln(e.Stderr, "runbook: shellcheck is not installed: the shell checks of commands were skipped (install shellcheck; --require-shellcheck makes this an error)")
	}
	if !checker.SQLChecked() {
		fmt.Fprintln(e.Stderr, "runbook: this runbook was built without cgo, which PostgreSQL's parser needs: SQL texts were not parsed")
	}
	failing := 0
	for _, d := range rep.ds {
		if d.Severity == diag.Error || *strict {
			failing++
		}
	}
	if failing > 0 {
		fmt.Fprintf(e.Stderr, "runbook: %d problem(s) in %d file(s) checked\n", len(rep.ds), len(files))
		return ExitFailed
	}
	return ExitOK
}

// input is a file to validate: a path, or a bundled playbook.
type input struct {
	name string
	src  []byte
}

// collectFiles expands directories into their *.yaml and *.yml files and
// bundled names into their sources.
func collectFiles(paths []string, stdin io.Reader, stdinName string) ([]input, error) {
	var out []input
	for _, p := range paths {
		if p == "-" {
			b, err := io.ReadAll(stdin)
			if err != nil {
				return nil, err
			}
			out = append(out, input{name: stdinName, src: b})
			continue
		}
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
			// A vars file is checked through the playbooks that list it.
			if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) && !strings.HasSuffix(path, playbooks.VarsSuffix) && looksLikeOurs(path) {
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

// validateAll checks files in parallel and returns every diagnostic,
// sorted, with the sources for the report. checker reads inside the
// commands and SQL texts.
func validateAll(files []input, inv *engine.Inventory, checker *textcheck.Checker) *report {
	loader := newLoader()
	loader.Inside = checker
	results := make([][]*diag.Diagnostic, len(files))
	sources := make([][]byte, len(files))
	var wg sync.WaitGroup
	work := make(chan int)
	workers := runtime.GOMAXPROCS(0)
	if checker.ShellChecked() {
		// A worker waits while shellcheck reads its file's commands:
		// more of them keep the cores busy with the other files, and
		// give each shellcheck process more commands to read at once.
		workers *= 8
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				results[i], sources[i] = validateOne(loader, files[i], inv)
			}
		}()
	}
	for i := range files {
		work <- i
	}
	close(work)
	wg.Wait()
	rep := &report{sources: map[string][]string{}}
	for i, r := range results {
		rep.ds = append(rep.ds, r...)
		rep.files = append(rep.files, files[i].name)
		if len(r) > 0 {
			rep.sources[files[i].name] = strings.Split(string(sources[i]), "\n")
		}
	}
	diag.Sort(rep.ds)
	return rep
}

func validateOne(l *engine.Loader, in input, inv *engine.Inventory) ([]*diag.Diagnostic, []byte) {
	src := in.src
	if src == nil {
		var err error
		if src, err = os.ReadFile(in.name); err != nil {
			return []*diag.Diagnostic{{File: in.name, Rule: diag.RuleNotAPlaybook, Severity: diag.Error, Message: err.Error()}}, nil
		}
	}
	if looksLikeInventory(src) {
		_, ds := engine.ParseInventory(in.name, src)
		return ds, src
	}
	pb, ds := l.Load(in.name, src)
	if pb != nil && inv != nil {
		ds = append(ds, engine.CheckHosts(pb, inv)...)
		diag.Sort(ds)
	}
	return ds, src
}

// looksLikeOurs reports whether a YAML file found in a directory is a
// playbook or an inventory, by its top-level keys: a directory may hold
// other YAML (CI configuration, compose files) that is not ours to judge.
// A file named on the command line is always checked.
func looksLikeOurs(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return true // reported when read for real
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		for _, key := range []string{"version:", "steps:", "hosts:"} {
			if bytes.HasPrefix(line, []byte(key)) {
				return true
			}
		}
	}
	return false
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

var _ engine.InsideChecker = (*textcheck.Checker)(nil)

// lookPath finds a program in the directories of path (the PATH of the
// command's environment), or returns "".
func lookPath(name, path string) string {
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		f := filepath.Join(dir, name)
		if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return f
		}
	}
	return ""
}
