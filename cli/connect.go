package cli

import "github.com/runbook-dev/runbook/engine"

// connector returns how runs reach SSH hosts.
func (e *Env) connector() engine.Connector { return nil }
