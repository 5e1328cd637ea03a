// Package steps holds the contract between the engine and a step type
// (step.go: decoding a body, probing, planning, applying through the host
// connection the engine hands it) and runbook's built-in step types, one
// file each.
package steps

// Builtin returns the registry of built-in step types.
func Builtin() *Registry {
	return NewRegistry(SSHExec{}, FilePatch{}, SQL{}, Systemd{}, WaitUntil{}, HTTP{}, PGSettings{})
}
