package durable

import (
	"os"
	"strings"
)

// BootID identifies the running boot of this machine (a reboot or a power
// cut changes it); empty where the kernel does not tell.
func BootID() string {
	if id := testBootID(); id != "" {
		return id
	}
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
