// Package steps holds the contract between the engine and a step type
// (step.go: what a type is, its Descriptor; decoding a body; probing,
// planning and applying through the host connection the engine hands it;
// the optional capabilities of a step, each stated by compile-time guards
// in the type's file) and runbook's built-in step types, one file each.
package steps

// Builtin returns the registry of built-in step types.
func Builtin() *Registry {
	return NewRegistry(SSHExec{}, FilePatch{}, SQL{}, Systemd{}, WaitUntil{}, HTTP{}, PGSettings{}, Capture{})
}
