package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/textcheck"
)

// validateOptions are validate's flags.
type validateOptions struct {
	format, output, stdinName, invFile, cacheDir                    string
	strict, listRules, requireShellcheck, requireSQLParser, noCache bool
}

func validateCmd(e *Env, c *cobra.Command) func([]string) int {
	c.Use = "validate [--format text|json|github|sarif|junit] [--output FILE] [--strict] PATH..."
	o := &validateOptions{}
	fs := c.Flags()
	fs.StringVar(&o.format, "format", "", "output format: text, json, github, sarif or junit (default text; github when GITHUB_ACTIONS=true)")
	fs.StringVar(&o.output, "output", "", "write the --format report to FILE, and text to the terminal")
	fs.BoolVar(&o.strict, "strict", false, "warnings fail too")
	fs.StringVar(&o.stdinName, "stdin-filename", "stdin.yaml", "the name of the file read from - in diagnostics")
	fs.StringVarP(&o.invFile, "inventory", "i", "", "also check host names against this inventory (as run and plan take it)")
	fs.BoolVar(&o.listRules, "list-rules", false, "list the rule ids diagnostics carry, and exit")
	fs.BoolVar(&o.requireShellcheck, "require-shellcheck", false, "fail when shellcheck is not installed, instead of skipping the shell checks (for CI)")
	fs.BoolVar(&o.requireSQLParser, "require-sql-parser", false, "fail when this runbook was built without PostgreSQL's parser (without cgo), instead of skipping the SQL checks (for CI)")
	fs.StringVar(&o.cacheDir, "cache-dir", "", "keep shellcheck's findings in DIR/shellcheck between runs (default $RUNBOOK_CACHE_DIR, else the user's cache directory/runbook)")
	fs.BoolVar(&o.noCache, "no-cache", false, "run shellcheck on every command, without reading or writing the cache of its findings")
	_ = c.RegisterFlagCompletionFunc("format", fixedValues(reportFormats...))
	_ = c.RegisterFlagCompletionFunc("inventory", yamlFiles)
	c.ValidArgsFunction = playbookFiles
	return func(pos []string) int { return e.validate(o, pos) }
}

// validate checks the playbooks pos names.
func (e *Env) validate(o *validateOptions, pos []string) int {
	if o.listRules {
		for _, r := range diag.Rules {
			fmt.Fprintf(e.Stdout, "%-22s %s\n", r.ID, r.Description)
		}
		return ExitOK
	}
	if o.format == "" {
		o.format = "text"
		if e.Getenv("GITHUB_ACTIONS") == "true" {
			o.format = "github"
		}
	}
	if !slices.Contains(reportFormats, o.format) {
		return e.usageError("--format must be one of %s, not %q", strings.Join(reportFormats, ", "), o.format)
	}
	if len(pos) == 0 {
		return e.usageError("validate needs at least one file or directory (- reads standard input)")
	}
	// The inventory's findings are reported beside the playbooks', in the
	// chosen format; an inventory with errors only keeps the host names
	// from being checked (said below, as the other skipped checks).
	var inv *engine.Inventory
	var invDs []*diag.Diagnostic
	if o.invFile != "" {
		var err error
		inv, invDs, err = engine.LoadInventory(o.invFile)
		if err != nil {
			return e.usageError("inventory: %v", err)
		}
	}
	shellcheck := lookPath("shellcheck", e.Getenv("PATH"))
	if shellcheck == "" && o.requireShellcheck {
		fmt.Fprintln(e.Stderr, "runbook: --require-shellcheck: shellcheck is not installed (not found in PATH)")
		return ExitUsage
	}
	if o.requireSQLParser && !textcheck.SQLParserLinked {
		fmt.Fprintln(e.Stderr, "runbook: --require-sql-parser: this runbook was built without cgo, which PostgreSQL's parser needs (build it with CGO_ENABLED=1 and a C compiler, or use a release binary)")
		return ExitUsage
	}
	// Ctrl-C or a TERM stops the shellcheck processes too. A second one
	// ends validate at once, whatever it waits for: the first gives the
	// signals back their default.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	cfg := textcheck.Config{Shellcheck: shellcheck}
	if !o.noCache && shellcheck != "" {
		cfg.CacheDir, cfg.CacheTop = e.cacheDir(o.cacheDir)
		if cfg.CacheDir == "" {
			fmt.Fprintln(e.Stderr, "runbook: no cache of shellcheck's findings: neither XDG_CACHE_HOME nor HOME is an absolute path, so every command is given to shellcheck (give a directory with --cache-dir or RUNBOOK_CACHE_DIR, or --no-cache)")
		}
	}
	checker := textcheck.NewWithConfig(ctx, cfg)
	loader := newLoader()
	loader.Inside = checker
	found, err := engine.Validate(pos, engine.ValidateOptions{Loader: loader, Inventory: inv, Stdin: e.Stdin, StdinName: o.stdinName, Config: engine.ConfigFile})
	if err != nil {
		return e.usageError("%v", err)
	}
	if err := checker.Err(); err != nil {
		// Interrupted, shellcheck stopped: the command's exit status
		// for an interruption, as run's, not an internal error.
		if ctx.Err() != nil {
			fmt.Fprintln(e.Stderr, "runbook: validate was interrupted (Ctrl-C or SIGTERM): shellcheck stopped, nothing reported")
			return ExitInterrupted
		}
		fmt.Fprintf(e.Stderr, "runbook: %v\n", err)
		return ExitInternal
	}
	trimErr := checker.Close()
	if err := checker.CacheErr(); err != nil {
		fmt.Fprintf(e.Stderr, "runbook: the cache of shellcheck's findings is off: %v; the checks are whole, only slower\n", err)
	} else if n, err := checker.CacheWriteErr(); err != nil {
		fmt.Fprintf(e.Stderr, "runbook: %s of shellcheck's findings could not be kept in the cache (the checks are whole; these are checked again next time): %v\n", counted(n, "text"), err)
	} else if trimErr != nil {
		fmt.Fprintf(e.Stderr, "runbook: %v (the checks are whole; remove the directory to start afresh)\n", trimErr)
	}
	if found.ConfigErr != nil {
		fmt.Fprintf(e.Stderr, "runbook: %v (not applied)\n", found.ConfigErr)
	}
	rep := &report{ds: found.Diagnostics, files: found.Files, sources: found.Sources, skipped: found.Skipped}
	if o.invFile != "" {
		rep.addInventory(o.invFile, invDs)
		if inv == nil {
			for _, f := range found.Files {
				found.Skipped[f] = append(found.Skipped[f], "host names (the inventory "+o.invFile+" has errors)")
			}
		}
	}
	if o.output != "" {
		f, err := os.Create(o.output)
		if err != nil {
			fmt.Fprintf(e.Stderr, "runbook: %v\n", err)
			return ExitInternal
		}
		rep.write(f, o.format, false, o.strict)
		if err := f.Close(); err != nil {
			fmt.Fprintf(e.Stderr, "runbook: %v\n", err)
			return ExitInternal
		}
		rep.writeText(e.Stdout, e.isTerminal(e.Stdout) && e.Getenv("NO_COLOR") == "")
	} else {
		rep.write(e.Stdout, o.format, o.format == "text" && e.isTerminal(e.Stdout) && e.Getenv("NO_COLOR") == "", o.strict)
	}
	// What errors kept from being checked, said plainly: fixing them may
	// bring more findings, and the reader should expect it.
	for _, f := range found.Files {
		if sk := found.Skipped[f]; len(sk) > 0 {
			fmt.Fprintf(e.Stderr, "runbook: %s: not checked because of the errors above: %s\n", f, strings.Join(sk, "; "))
		}
	}
	if !checker.ShellChecked() {
		fmt.Fprintln(e.Stderr, "runbook: shellcheck is not installed: the shell checks of commands were skipped (install shellcheck; --require-shellcheck makes this an error)")
	}
	if !checker.SQLChecked() {
		fmt.Fprintln(e.Stderr, "runbook: this runbook was built without cgo, which PostgreSQL's parser needs: SQL texts were not parsed (--require-sql-parser makes this an error)")
	}
	errs, warns := 0, 0
	for _, d := range rep.ds {
		if d.Severity == diag.Error {
			errs++
		} else {
			warns++
		}
	}
	if errs > 0 || o.strict && warns > 0 {
		// Errors and warnings apart: only errors fail without --strict,
		// and a count of both would not say which made it fail.
		why := ""
		if o.strict && warns > 0 {
			why = " (--strict: warnings fail too)"
		}
		return e.failed("%s and %s in %s checked%s", counted(errs, "error"), counted(warns, "warning"), counted(len(rep.files), "file"), why)
	}
	return ExitOK
}

// counted is n things: "1 error", "2 errors", "no error".
func counted(n int, thing string) string {
	switch n {
	case 0:
		return "no " + thing
	case 1:
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

var _ engine.InsideChecker = (*textcheck.Checker)(nil)

// cacheDir is where shellcheck's findings are kept: flag's directory, else
// $RUNBOOK_CACHE_DIR, else runbook's in the user's cache directory
// ($XDG_CACHE_HOME, ~/.cache; ~/Library/Caches on macOS); "" when there is
// none. top is the directory given (the flag's, the variable's,
// XDG_CACHE_HOME or the home): the cache is used only if it, and every
// directory between it and the cache, is private (textcheck.Config).
func (e *Env) cacheDir(flag string) (dir, top string) {
	root := flag
	if root == "" {
		root = e.Getenv("RUNBOOK_CACHE_DIR")
	}
	top = root
	if root == "" {
		base := ""
		if d := e.Getenv("XDG_CACHE_HOME"); filepath.IsAbs(d) {
			base, top = d, d
		} else if home := e.Getenv("HOME"); filepath.IsAbs(home) {
			base, top = filepath.Join(home, ".cache"), home
			if runtime.GOOS == "darwin" {
				base = filepath.Join(home, "Library", "Caches")
			}
		}
		if base == "" {
			return "", ""
		}
		root = filepath.Join(base, "runbook")
	}
	return filepath.Join(root, "shellcheck"), top
}

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
