package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/runbook-dev/runbook/internal/lab"
)

func labCmd(e *Env, c *cobra.Command) func([]string) int {
	// Each subcommand parses its own flags.
	c.DisableFlagParsing = true
	c.ValidArgsFunction = fixedValues("up", "down", "status", "exec", "fault", "disk")
	return func(args []string) int {
		code := e.lab(args)
		if code == ExitUsage && asksHelp(args) {
			// The usage was asked for, and printed: not an error.
			return ExitOK
		}
		return code
	}
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

// newFlags is the flag set of a lab subcommand.
func newFlags(e *Env, name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.Stderr, "Usage: runbook %s\n", name)
		fs.PrintDefaults()
	}
	return fs
}

// parseInterleaved parses flags that may come before or after the
// positional arguments, as in `runbook lab disk pg1 /data --size 64`;
// after "--" everything is positional (lab exec HOST -- CMD -x).
func parseInterleaved(fs *pflag.FlagSet, args []string) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return fs.Args(), nil
}

// lab runs a lab subcommand.
func (e *Env) lab(args []string) int {
	if len(args) == 0 {
		return e.usageError("lab needs a subcommand: up, down, status, exec, fault, disk")
	}
	sub, rest := args[0], args[1:]
	fs := newFlags(e, "lab "+sub)
	dir := fs.String("dir", lab.DefaultDir, "the lab's state directory")
	switch sub {
	case "up":
		hosts := fs.String("hosts", "pg1,pg2", "host names, comma-separated")
		inv := fs.String("inventory", "", "where to write the inventory (default: DIR/inventory.yaml)")
		orch := fs.String("orchestrator", "", "the host that runs the orchestrator stand-in (default: the first; its database is on the first)")
		sv := fs.String("standin-version", lab.DefaultStandinVersion, "the inmanta-core version the stand-in behaves as")
		layout := fs.String("layout", "", "lay PostgreSQL out as a packaging does: rhel, pgdg or debian (the default) for every host, or per host: pg1=rhel,pg2=pgdg")
		if _, err := parseInterleaved(fs, rest); err != nil {
			return ExitUsage
		}
		layouts, err := lab.ParseLayouts(*layout, strings.Split(*hosts, ","))
		if err != nil {
			fmt.Fprintf(e.Stderr, "runbook: lab up: %v\n", err)
			return ExitUsage
		}
		l := &lab.Lab{Dir: *dir, Log: e.Stderr}
		start := time.Now()
		st, err := l.Up(context.Background(), lab.Options{Hosts: strings.Split(*hosts, ","), Inventory: *inv, Orchestrator: *orch, StandinVersion: *sv, Layouts: layouts})
		if err != nil {
			return e.failed("lab up: %v", err)
		}
		path := *inv
		if path == "" {
			path = l.InventoryPath()
		}
		for _, h := range st.Hosts {
			lay := lab.LayoutOf(h)
			fmt.Fprintf(e.Stdout, "%-6s %s  PostgreSQL %s, %s layout: %s, unit %s\n", h.Name, h.Address, lab.PGVersion, lay.Name, lay.Data, lay.Unit)
		}
		fmt.Fprintf(e.Stdout, "lab up in %.1fs; inventory: %s\n", time.Since(start).Seconds(), path)
		return ExitOK
	case "down":
		if _, err := parseInterleaved(fs, rest); err != nil {
			return ExitUsage
		}
		if err := (&lab.Lab{Dir: *dir}).Down(); err != nil {
			return e.failed("lab down: %v", err)
		}
		return ExitOK
	case "status":
		if _, err := parseInterleaved(fs, rest); err != nil {
			return ExitUsage
		}
		sts, err := (&lab.Lab{Dir: *dir}).Status(context.Background())
		if err != nil {
			return e.failed("lab status: %v", err)
		}
		if len(sts) == 0 {
			fmt.Fprintln(e.Stdout, "no lab (runbook lab up starts one)")
			return ExitOK
		}
		tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "HOST\tADDRESS\tRUNNING\tSSH\tSYSTEMD\tPOSTGRESQL\tINMANTA-SERVER (stand-in)")
		for _, s := range sts {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%v\t%s\t%s\t%s\n", s.Name, s.Address, s.Running, s.SSH, s.Systemd, s.PostgreSQL, s.Standin)
		}
		tw.Flush()
		return ExitOK
	case "exec":
		pos, err := parseInterleaved(fs, rest)
		if err != nil {
			return ExitUsage
		}
		if len(pos) < 2 {
			return e.usageError("lab exec HOST -- COMMAND...")
		}
		code, err := (&lab.Lab{Dir: *dir}).ExecInteractive(context.Background(), pos[0], e.Stdin, e.Stdout, e.Stderr, pos[1:]...)
		if err != nil {
			return e.failed("lab exec: %v", err)
		}
		return code
	case "fault":
		pos, err := parseInterleaved(fs, rest)
		if err != nil {
			return ExitUsage
		}
		if len(pos) != 2 {
			return e.usageError("lab fault HOST kill|stop|partition|heal|start")
		}
		if err := (&lab.Lab{Dir: *dir}).Fault(context.Background(), pos[0], pos[1]); err != nil {
			return e.failed("lab fault: %v", err)
		}
		return ExitOK
	case "disk":
		size := fs.Int("size", 256, "the disk's size in MiB")
		pos, err := parseInterleaved(fs, rest)
		if err != nil {
			return ExitUsage
		}
		if len(pos) != 2 {
			return e.usageError("lab disk HOST PATH [--size MiB]: mount a disk of its own at PATH in HOST")
		}
		if err := (&lab.Lab{Dir: *dir}).Disk(context.Background(), pos[0], pos[1], *size); err != nil {
			return e.failed("lab disk: %v", err)
		}
		return ExitOK
	case "standin":
		// The orchestrator stand-in that lab hosts run as inmanta-server,
		// with the options of `inmanta server` it copies.
		version := fs.String("version", lab.DefaultStandinVersion, "the inmanta-core version to behave as (before 16: no /api/v2/health; 19 and later: the database singleton lock)")
		cfgFile := fs.StringP("config", "c", "", "a configuration file read after all others (inmanta -c)")
		cfgDir := fs.String("config-dir", "/etc/inmanta/inmanta.d", "the directory of *.cfg files read in name order")
		wait := fs.String("db-wait-time", "", "seconds to wait for the database at start (0: try once; negative: forever); overrides database.wait_time")
		if _, err := parseInterleaved(fs, rest); err != nil {
			return ExitUsage
		}
		opt := lab.StandinOptions{Version: *version, MainConfig: "/etc/inmanta/inmanta.cfg", ConfigDir: *cfgDir, ConfigFile: *cfgFile, Log: e.Stderr}
		if *wait != "" {
			n, err := strconv.Atoi(*wait)
			if err != nil {
				return e.usageError("--db-wait-time %q: want a number of seconds", *wait)
			}
			opt.DBWaitTime = &n
		}
		opt.Home, _ = os.UserHomeDir()
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return lab.RunStandin(ctx, opt)
	}
	return e.usageError("unknown lab subcommand %q: up, down, status, exec, fault, disk", sub)
}
