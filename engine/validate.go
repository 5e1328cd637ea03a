package engine

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/playbooks"
	"github.com/runbook-dev/runbook/steps"
)

// ValidateOptions say how Validate checks a tree of files.
type ValidateOptions struct {
	// Loader loads each playbook; with its Inside set, commands and SQL
	// texts are read in their own languages too. Nil: the built-in step
	// types, nothing read inside. An Inside whose ShellChecked() bool
	// method says true (textcheck.Checker with shellcheck) waits for
	// another program while it checks a file: Validate then checks eight
	// times as many files at once as there are cores.
	Loader *Loader
	// Inventory, when set, is where every host a playbook names must be
	// found.
	Inventory *Inventory
	// Stdin is read for the path "-", whose diagnostics name StdinName
	// (default "stdin.yaml").
	Stdin     io.Reader
	StdinName string
	// Config is the file of ignores by path (ConfigFile, .runbook.yaml);
	// "" or a missing file ignores nothing.
	Config string
}

// Report is what Validate found in a tree of files.
type Report struct {
	// Diagnostics are the findings that no ignore silenced, sorted by
	// file, line and column.
	Diagnostics []*diag.Diagnostic
	// Files are the names of the files checked, in the order found.
	Files []string
	// Sources are the lines of each file with a finding, for the reports
	// that show them.
	Sources map[string][]string
	// ConfigErr is a broken Config file: reported, and not applied (never
	// half used).
	ConfigErr error
	// Skipped are, by file, the checks that could not run because of
	// the errors found first: said, so that a clean second pass is not a
	// surprise.
	Skipped map[string][]string
}

// Validate checks files and directories: each path is a file, a
// directory searched for playbooks and inventories, a bundled playbook's
// name, or "-" for standard input. A directory's *.yaml and *.yml files
// are checked when their top-level keys say they are ours (looksLikeOurs;
// other YAML there, CI configuration or compose files, is not ours to
// judge), except in directories whose names start with a dot; a file named
// on the command line is always checked. Files are checked in parallel.
// A finding is dropped when a `# runbook:ignore RULE` comment on its line
// or the line above names its rule, or when opts.Config ignores its rule
// for its path. The error is a path that is none of these, or a directory
// or standard input that cannot be read: nothing was checked.
//
// Validation is a short burst of allocation-heavy parsing whose garbage
// dies young: while it runs, the garbage collector runs less often, within
// a memory budget proportional to the input (see gcBudget).
func Validate(paths []string, opts ValidateOptions) (*Report, error) {
	if opts.StdinName == "" {
		opts.StdinName = "stdin.yaml"
	}
	files, err := findFiles(paths, opts.Stdin, opts.StdinName)
	if err != nil {
		return nil, err
	}
	if opts.Loader == nil {
		opts.Loader = &Loader{Registry: steps.Builtin()}
	}
	defer gcBudget(files)()
	rep := validateFiles(files, opts)
	rep.Diagnostics, rep.ConfigErr = ignoreByPath(rep.Diagnostics, opts.Config)
	return rep, nil
}

// input is a file to validate: a path, or a source already read (standard
// input, a bundled playbook).
type input struct {
	name string
	src  []byte
}

// findFiles expands directories into their *.yaml and *.yml files that
// are ours, and bundled names into their sources.
func findFiles(paths []string, stdin io.Reader, stdinName string) ([]input, error) {
	var out []input
	for _, p := range paths {
		if p == "-" {
			if stdin == nil {
				stdin = strings.NewReader("")
			}
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

// validateFiles checks files in parallel and returns every diagnostic,
// sorted, with the sources for the report.
func validateFiles(files []input, opts ValidateOptions) *Report {
	results := make([][]*diag.Diagnostic, len(files))
	sources := make([][]byte, len(files))
	skipped := make([][]string, len(files))
	var wg sync.WaitGroup
	work := make(chan int)
	workers := runtime.GOMAXPROCS(0)
	if sc, ok := opts.Loader.Inside.(interface{ ShellChecked() bool }); ok && sc.ShellChecked() {
		// A worker waits while shellcheck reads its file's commands:
		// more of them keep the cores busy with the other files, and
		// give each shellcheck process more commands to read at once.
		workers *= 8
	}
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			for i := range work {
				results[i], sources[i], skipped[i] = validateOne(opts.Loader, files[i], opts.Inventory)
			}
		})
	}
	for i := range files {
		work <- i
	}
	close(work)
	wg.Wait()
	rep := &Report{Sources: map[string][]string{}, Skipped: map[string][]string{}}
	// A file that several checked playbooks include (or that is checked
	// itself as well) has its findings once.
	seen := map[string]bool{}
	for i, r := range results {
		if len(skipped[i]) > 0 {
			rep.Skipped[files[i].name] = skipped[i]
		}
		for _, d := range r {
			if k := d.File + "\x00" + d.String(); !seen[k] {
				seen[k] = true
				rep.Diagnostics = append(rep.Diagnostics, d)
			}
		}
		rep.Files = append(rep.Files, files[i].name)
		if len(r) > 0 {
			rep.Sources[files[i].name] = diag.SplitLines(string(sources[i]))
		}
	}
	rep.Diagnostics = onceByPath(rep.Diagnostics, opts.Loader)
	// The lines of included files with findings, for the reports that
	// show them.
	for _, d := range rep.Diagnostics {
		if _, ok := rep.Sources[d.File]; !ok {
			if src, err := opts.Loader.readFile(d.File); err == nil {
				rep.Sources[d.File] = diag.SplitLines(string(src))
			}
		}
	}
	diag.Sort(rep.Diagnostics)
	return rep
}

// validateOne checks one file: an inventory, or a playbook (and its hosts
// against inv, when set: those of the steps that could be read, even when
// others could not). It returns the checks errors kept from running.
func validateOne(l *Loader, in input, inv *Inventory) ([]*diag.Diagnostic, []byte, []string) {
	src := in.src
	if src == nil {
		var err error
		if src, err = os.ReadFile(in.name); err != nil {
			return []*diag.Diagnostic{{File: in.name, Rule: diag.RuleNotAPlaybook, Severity: diag.Error, Message: err.Error()}}, nil, nil
		}
	}
	if LooksLikeInventory(src) {
		_, ds := ParseInventory(in.name, src)
		return ds, src, nil
	}
	pb, ds, skipped := l.load(in.name, src)
	if inv == nil {
		skipped = slices.DeleteFunc(skipped, func(s string) bool { return s == skippedHosts })
	}
	if pb != nil && inv != nil {
		ds = append(ds, CheckHosts(pb, inv)...)
		diag.Sort(ds)
	}
	return ds, src, skipped
}

// looksLikeOurs reports whether a YAML file found in a directory is a
// playbook or an inventory, by its top-level keys: a directory may hold
// other YAML (CI configuration, compose files) that is not ours to judge.
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

// LooksLikeInventory tells an inventory from a playbook by its top-level
// keys: an inventory has hosts: and neither steps: nor version:.
func LooksLikeInventory(src []byte) bool {
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
