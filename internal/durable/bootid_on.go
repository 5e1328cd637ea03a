//go:build crashpoints

package durable

import "os"

// testBootID lets a crash test play a reboot (RUNBOOK_BOOT_ID); only
// binaries built with -tags crashpoints have it.
func testBootID() string { return os.Getenv("RUNBOOK_BOOT_ID") }
