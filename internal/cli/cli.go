// Package cli is runbook's command line: argument parsing, output and exit
// codes. cmd/runbook only calls Main.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"golang.org/x/term"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/steps"
)

// Exit codes.
const (
	ExitOK       = 0
	ExitFailed   = 1
	ExitUsage    = 2
	ExitInternal = 3
	// ExitPartial is a run that went through its steps while some failed
	// on some hosts in a way the playbook tolerates (tolerate:, a batch's
	// failure budget).
	ExitPartial     = 4
	ExitInterrupted = 130
)

// Env is what a command runs with; tests replace its parts.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	LookupEnv      func(string) (string, bool)
}

type command struct {
	name, args, summary string
	run                 func(e *Env, args []string) int
}

func commands() []command {
	return []command{
		{"run", "PLAYBOOK [-i INVENTORY] [-p NAME=VALUE]...", "check the guards, then run the steps", runCmd},
		{"plan", "PLAYBOOK [-i INVENTORY] [-p NAME=VALUE]...", "probe for real and show what run would change (run --dry-run)", planCmd},
		{"validate", "PATH...", "check playbooks without running anything (file:line:col diagnostics)", validateCmd},
		{"graph", "[--format mermaid|dot] PLAYBOOK", "draw the guards, steps and waits of a playbook as a flowchart", graphCmd},
		{"new", "NAME", "write a commented starter playbook NAME.yaml", newCmd},
		{"resume", "ID [--retry-in-doubt | --skip-in-doubt] [--yes]", "continue a run that crashed, failed or was interrupted: finished steps are not run again", resumeCmd},
		{"runs", "[--state-dir DIR | --state URL]", "list the journaled runs: id, playbook, start, status (attempts), operator", runsCmd},
		{"show-run", "ID", "print a run's journal: its steps and outcomes", showRunCmd},
		{"list", "", "list the bundled playbooks", listCmd},
		{"show", "NAME", "print a bundled playbook", showCmd},
		{"schema", "[playbook|inventory]", "print the JSON Schema of the playbook or inventory format", schemaCmd},
		{"lab", "up|down|status|exec|fault ...", "boot throwaway hosts (systemd, sshd, PostgreSQL 15) on this machine for rehearsals", labCmd},
		{"version", "", "print the version", versionCmd},
	}
}

// Version is runbook's version, set at build time.
var Version = "dev"

// Main runs the command line and returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return (&Env{Stdin: stdin, Stdout: stdout, Stderr: stderr, Getenv: os.Getenv, LookupEnv: os.LookupEnv}).Main(args)
}

// Main runs the command line with e. A panic is a bug, not the user's
// doing: it is reported as an internal error (exit 3) with what to send.
func (e *Env) Main(args []string) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(e.Stderr, "runbook: internal error: %v\n%s\nplease report this with the command line and the playbook\n", r, debug.Stack())
			code = ExitInternal
		}
	}()
	return e.main(args)
}

func (e *Env) main(args []string) int {
	if len(args) < 2 || args[1] == "-h" || args[1] == "--help" || args[1] == "help" {
		e.usage(e.Stdout)
		if len(args) < 2 {
			return ExitUsage
		}
		return ExitOK
	}
	for _, c := range commands() {
		if c.name == args[1] {
			code := c.run(e, args[2:])
			if code == ExitUsage && asksHelp(args[2:]) {
				// The usage was asked for, and printed: not an error.
				return ExitOK
			}
			return code
		}
	}
	fmt.Fprintf(e.Stderr, "runbook: unknown command %q\n\n", args[1])
	e.usage(e.Stderr)
	return ExitUsage
}

// asksHelp reports whether a command's arguments ask for its usage (before
// any "--").
func asksHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

func (e *Env) usage(w io.Writer) {
	fmt.Fprintln(w, "runbook runs YAML playbooks of typed steps against real hosts, guards first.")
	fmt.Fprintln(w, "\nUsage:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  runbook %-8s %s\n      %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintln(w, "\nExit status: 0 ok, 1 failed or refused, 2 usage, 3 internal error, 130 interrupted.")
}

// parseInterleaved parses flags that may come before or after the
// positional arguments, as in `runbook run x.yaml -i inv.yaml`.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		// After "--" everything is positional (lab exec HOST -- CMD -x).
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func newFlags(e *Env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.Stderr, "Usage: runbook %s %s\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}

// usageError prints a usage problem and returns ExitUsage.
func (e *Env) usageError(format string, args ...any) int {
	fmt.Fprintf(e.Stderr, "runbook: "+format+"\n", args...)
	return ExitUsage
}

func (e *Env) isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// kvList collects repeated -p NAME=VALUE flags.
type kvList map[string]string

func (k kvList) String() string { return "" }

func (k kvList) Set(s string) error {
	name, val, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return errors.New("want NAME=VALUE")
	}
	if _, dup := k[name]; dup {
		return fmt.Errorf("%s given twice", name)
	}
	k[name] = val
	return nil
}

func newLoader() *engine.Loader { return &engine.Loader{Registry: steps.Builtin()} }

func versionCmd(e *Env, args []string) int {
	fmt.Fprintln(e.Stdout, "runbook", Version)
	return ExitOK
}
