// Package steps holds the contract between the engine and a step type
// (step.go: what a type is, its Descriptor; decoding a body; probing,
// planning and applying through the host connection the engine hands it;
// the optional capabilities of a step, each stated by compile-time guards
// below) and runbook's built-in step types, one file each.
package steps

// Builtin returns the registry of built-in step types.
func Builtin() *Registry {
	return NewRegistry(SSHExec, FilePatch, SQL, Systemd, WaitUntil, HTTP, PGSettings, Capture)
}

// kind is a built-in Type: its decoder and its descriptor.
type kind struct {
	decode func(d *Decoder, b Body) Step
	desc   Descriptor
}

// Describe implements Type.
func (k kind) Describe() Descriptor { return k.desc }

// Decode implements Type.
func (k kind) Decode(d *Decoder, b Body) Step { return k.decode(d, b) }

// The interfaces each built-in step implements, the optional ones
// included: a method renamed or removed breaks the build here (a misspelt
// Rechecks would silently change resume and lint).
var (
	_ = []Step{(*capture)(nil), (*filePatch)(nil), (*httpStep)(nil), (*pgSettingsStep)(nil), (*sqlStep)(nil), (*sshExec)(nil), (*systemd)(nil), (*waitUntil)(nil)}
	_ = []Changer{(*capture)(nil), (*filePatch)(nil), (*httpStep)(nil), (*pgSettingsStep)(nil), (*sqlStep)(nil), (*sshExec)(nil), (*systemd)(nil), (*waitUntil)(nil)}
	_ = []Rechecker{(*capture)(nil), (*filePatch)(nil), (*httpStep)(nil), (*pgSettingsStep)(nil), (*sqlStep)(nil), (*sshExec)(nil), (*systemd)(nil), (*waitUntil)(nil)}
	_ = []DownResulter{(*sqlStep)(nil)}
	_ = []Settler{(*sqlStep)(nil)}
	_ = []Located{(*waitUntil)(nil)}
)
