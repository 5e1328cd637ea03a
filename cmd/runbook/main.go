// Command runbook runs YAML playbooks of typed steps against real hosts.
package main

import (
	"os"

	"github.com/runbook-dev/runbook/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)) }
