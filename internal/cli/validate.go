package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/textcheck"
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
	requireSQLParser := fs.Bool("require-sql-parser", false, "fail when this runbook was built without PostgreSQL's parser (without cgo), instead of skipping the SQL checks (for CI)")
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
	if *requireSQLParser && !textcheck.SQLParserLinked {
		fmt.Fprintln(e.Stderr, "runbook: --require-sql-parser: this runbook was built without cgo, which PostgreSQL's parser needs (build it with CGO_ENABLED=1 and a C compiler, or use a release binary)")
		return ExitUsage
	}
	// Ctrl-C or a TERM stops the shellcheck processes too.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	checker := textcheck.New(ctx, shellcheck)
	loader := newLoader()
	loader.Inside = checker
	found, err := engine.Validate(pos, engine.ValidateOptions{Loader: loader, Inventory: inv, Stdin: e.Stdin, StdinName: *stdinName, Config: engine.ConfigFile})
	if err != nil {
		return e.usageError("%v", err)
	}
	if err := checker.Err(); err != nil {
		fmt.Fprintf(e.Stderr, "runbook: %v\n", err)
		return ExitInternal
	}
	if found.ConfigErr != nil {
		fmt.Fprintf(e.Stderr, "runbook: %v (not applied)\n", found.ConfigErr)
	}
	rep := &report{ds: found.Diagnostics, files: found.Files, sources: found.Sources}
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
	failing := 0
	for _, d := range rep.ds {
		if d.Severity == diag.Error || *strict {
			failing++
		}
	}
	if failing > 0 {
		fmt.Fprintf(e.Stderr, "runbook: %d problem(s) in %d file(s) checked\n", len(rep.ds), len(rep.files))
		return ExitFailed
	}
	return ExitOK
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
