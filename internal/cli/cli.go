// Package cli is runbook's command line: argument parsing, output and exit
// codes. cmd/runbook only calls Main.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
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

// command is one subcommand: define declares its flags (and completions)
// on c and returns what runs it with the positional arguments.
type command struct {
	name, args, summary string
	define              func(e *Env, c *cobra.Command) func(pos []string) int
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
		{"completion", "bash|zsh|fish", "print the shell completion script (see docs/operations.md)", completionCmd},
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
	if !knownCommand(args[1]) {
		fmt.Fprintf(e.Stderr, "runbook: unknown command %q\n\n", args[1])
		e.usage(e.Stderr)
		return ExitUsage
	}
	root := e.root()
	if c, _, err := root.Find(args[1:]); err == nil && c != root && !c.DisableFlagParsing {
		args = append(args[:2:2], longFlags(c, args[2:])...)
	}
	root.SetArgs(args[1:])
	err := root.Execute()
	var code exitCode
	switch {
	case errors.As(err, &code):
		return int(code)
	case err != nil:
		// A flag error, printed with the command's usage.
		return ExitUsage
	}
	return ExitOK
}

// exitCode is how a command ends: its exit status, passed up through
// cobra as an error.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

// runE makes a command's run function cobra's.
func runE(run func(pos []string) int) func(*cobra.Command, []string) error {
	return func(_ *cobra.Command, pos []string) error { return exitCode(run(pos)) }
}

// knownCommand reports whether name is a command, or one of the hidden
// commands shells call to complete a command line.
func knownCommand(name string) bool {
	switch name {
	case cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
		return true
	}
	for _, c := range commands() {
		if c.name == name {
			return true
		}
	}
	return false
}

// Command returns runbook's command tree, for what is generated from it:
// man pages and shell completion scripts (internal/release). Main runs it.
func Command() *cobra.Command {
	return (&Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, LookupEnv: os.LookupEnv}).root()
}

// rootLong is the man page's description of runbook.
const rootLong = `runbook runs YAML playbooks of typed steps (ssh-exec, file-patch, sql, systemd,
wait-until, http, pg-settings, capture) against real hosts over SSH. Guards are checked
before the first step and abort the run when the procedure would be unsafe; runbook plan
probes for real and shows what would change; every run that may change something is
journaled and continues after a crash with runbook resume; runbook validate checks
playbooks in CI. It bundles PostgreSQL primary/warm-standby HA procedures (runbook list).

Exit status: 0 ok, 1 failed, invalid or refused by a guard, 2 usage, 3 internal error,
4 partial (tolerated failures), 130 interrupted.

Files: ~/.config/runbook/config.yaml (hooks, retention; $RUNBOOK_CONFIG to name another),
~/.local/state/runbook (journals and locks; $XDG_STATE_HOME/runbook).`

// root builds the command tree.
func (e *Env) root() *cobra.Command {
	root := &cobra.Command{Use: "runbook", Short: "run YAML playbooks of typed steps against real hosts, guards first", Long: rootLong,
		SilenceErrors: true, SilenceUsage: true, DisableAutoGenTag: true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true}}
	root.SetIn(e.Stdin)
	root.SetOut(e.Stdout)
	root.SetErr(e.Stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		fmt.Fprintf(e.Stderr, "runbook %s: %v\n", c.Name(), err)
		e.commandUsage(c)
		return err
	})
	for _, def := range commands() {
		c := &cobra.Command{Use: def.name + " " + def.args, Short: def.summary,
			ValidArgsFunction: cobra.NoFileCompletions}
		c.SetHelpFunc(func(c *cobra.Command, _ []string) { e.commandUsage(c) })
		c.RunE = runE(def.define(e, c))
		root.AddCommand(c)
	}
	return root
}

// commandUsage prints a command's usage line and flags on stderr.
func (e *Env) commandUsage(c *cobra.Command) {
	fmt.Fprintf(e.Stderr, "Usage: %s %s\n", c.Parent().CommandPath(), c.Use)
	fmt.Fprint(e.Stderr, c.LocalFlags().FlagUsages())
}

// longFlags rewrites the flags c knows given with one dash (-state-dir, as
// the standard flag package took them) to their two-dash form, up to "--".
func longFlags(c *cobra.Command, args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if len(a) < 3 || a[0] != '-' || a[1] == '-' {
			continue
		}
		name, _, _ := strings.Cut(a[1:], "=")
		if name == "help" || c.Flags().Lookup(name) != nil {
			out[i] = "-" + a
		}
	}
	return out
}

func (e *Env) usage(w io.Writer) {
	fmt.Fprintln(w, "runbook runs YAML playbooks of typed steps against real hosts, guards first.")
	fmt.Fprintln(w, "\nUsage:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  runbook %-8s %s\n      %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintln(w, "  runbook runs prune --older-than AGE --keep N [--force]\n      remove the journals of old runs (never one that can be resumed, unless --force)")
	// The same list as rootLong's (the man page).
	fmt.Fprintln(w, "\nExit status: 0 ok, 1 failed, invalid or refused by a guard, 2 usage, 3 internal error,\n4 partial (tolerated failures), 130 interrupted.")
}

// usageError prints a usage problem and returns ExitUsage.
func (e *Env) usageError(format string, args ...any) int {
	fmt.Fprintf(e.Stderr, "runbook: "+format+"\n", args...)
	return ExitUsage
}

// failed says why a command failed, on stderr after "runbook: ", and
// returns ExitFailed.
func (e *Env) failed(format string, args ...any) int {
	fmt.Fprintf(e.Stderr, "runbook: "+format+"\n", args...)
	return ExitFailed
}

func (e *Env) isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// kvList collects repeated -p NAME=VALUE flags.
type kvList map[string]string

func (k kvList) String() string { return "" }

// Type names the value in the usage.
func (k kvList) Type() string { return "NAME=VALUE" }

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

func completionCmd(e *Env, c *cobra.Command) func([]string) int {
	c.ValidArgsFunction = fixedValues("bash", "zsh", "fish")
	return func(pos []string) int {
		if len(pos) != 1 {
			return e.usageError("completion needs a shell: bash, zsh or fish (runbook completion bash > /etc/bash_completion.d/runbook)")
		}
		var err error
		switch root := c.Root(); pos[0] {
		case "bash":
			err = root.GenBashCompletionV2(e.Stdout, true)
		case "zsh":
			err = root.GenZshCompletion(e.Stdout)
		case "fish":
			err = root.GenFishCompletion(e.Stdout, true)
		default:
			return e.usageError("completion: unknown shell %q: bash, zsh or fish", pos[0])
		}
		if err != nil {
			return e.failed("%v", err)
		}
		return ExitOK
	}
}

func versionCmd(e *Env, _ *cobra.Command) func([]string) int {
	return func([]string) int {
		v := Version
		// go install github.com/runbook-dev/runbook/cmd/runbook@VERSION
		// records the module's version in the binary.
		if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		fmt.Fprintln(e.Stdout, "runbook", v)
		return ExitOK
	}
}
