//go:build !linux

package cli

import "os"

// flushInput would drop what was typed ahead on the terminal f; only
// Linux does it here.
func flushInput(f *os.File) {}
