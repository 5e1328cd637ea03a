// Command release builds runbook's packages: the binary, its man pages and
// shell completion scripts (generated from the command line's definition,
// internal/cli), and a .deb and an .rpm made by nfpm with nfpm.yaml.
//
//	go run ./internal/release [-version 1.2.3] [-out dist] [-formats deb,rpm]
//
// It writes OUT/runbook, OUT/man/*.1.gz, OUT/completions/{runbook.bash,
// _runbook,runbook.fish} and OUT/runbook_VERSION_ARCH.deb (and .rpm).
package main

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/runbook-dev/runbook/internal/cli"
)

// nfpmModule is the nfpm that makes the packages, run with go run.
const nfpmModule = "github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0"

//go:embed nfpm.yaml
var nfpmConfig string

func main() {
	version := flag.String("version", "0.0.0-dev", "the packages' version (semantic: 1.2.3, 1.2.3-rc1)")
	out := flag.String("out", "dist", "the directory to build into")
	formats := flag.String("formats", "deb,rpm", "the packages to make: deb, rpm or both")
	flag.Parse()
	if err := build(*version, *out, strings.Split(*formats, ",")); err != nil {
		fmt.Fprintf(os.Stderr, "release: %v\n", err)
		os.Exit(1)
	}
}

func build(version, out string, formats []string) error {
	out, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := run("go", "build", "-ldflags", "-X github.com/runbook-dev/runbook/internal/cli.Version="+version, "-o", filepath.Join(out, "runbook"), "github.com/runbook-dev/runbook/cmd/runbook"); err != nil {
		return err
	}
	if err := manPages(version, filepath.Join(out, "man")); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	if err := completions(filepath.Join(out, "completions")); err != nil {
		return fmt.Errorf("completions: %w", err)
	}
	cfg := os.Expand(nfpmConfig, func(k string) string {
		return map[string]string{"VERSION": version, "ARCH": runtime.GOARCH, "DIST": out}[k]
	})
	cfgFile := filepath.Join(out, "nfpm.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		return err
	}
	for _, f := range formats {
		if err := run("go", "run", nfpmModule, "package", "-f", cfgFile, "-p", f, "-t", out); err != nil {
			return fmt.Errorf("nfpm %s: %w", f, err)
		}
	}
	return nil
}

// manPages writes a gzipped man page per command into dir.
func manPages(version, dir string) error {
	tmp, err := os.MkdirTemp("", "runbook-man")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	root := cli.Command()
	if err := doc.GenManTree(root, &doc.GenManHeader{Title: "RUNBOOK", Section: "1", Source: "runbook " + version, Manual: "runbook manual"}, tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pages, err := filepath.Glob(filepath.Join(tmp, "*.1"))
	if err != nil {
		return err
	}
	for _, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var z bytes.Buffer
		w, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
		_, _ = w.Write(b)
		if err := w.Close(); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)+".gz"), z.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// completions writes the bash, zsh and fish completion scripts into dir.
func completions(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root := cli.Command()
	for name, gen := range map[string]func(*cobra.Command, *bytes.Buffer) error{
		"runbook.bash": func(c *cobra.Command, b *bytes.Buffer) error { return c.GenBashCompletionV2(b, true) },
		"_runbook":     func(c *cobra.Command, b *bytes.Buffer) error { return c.GenZshCompletion(b) },
		"runbook.fish": func(c *cobra.Command, b *bytes.Buffer) error { return c.GenFishCompletion(b, true) },
	} {
		var b bytes.Buffer
		if err := gen(root, &b); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}
