// Package steps holds runbook's built-in step types, one file each.
package steps

import "github.com/runbook-dev/runbook/step"

// Builtin returns the registry of built-in step types.
func Builtin() *step.Registry {
	return step.NewRegistry(SSHExec{}, FilePatch{}, SQL{}, Systemd{}, WaitUntil{}, HTTP{}, PGSettings{})
}
