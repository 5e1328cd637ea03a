//go:build crashpoints

package engine

import (
	"os"
	"strconv"
	"syscall"
)

// crashpoint kills the process with SIGKILL, as a power cut or the OOM
// killer would, when RUNBOOK_CRASHPOINT names this point: "intent:N" after
// step N's intent is recorded, "applied:N" after its change was made and
// before its outcome is recorded, "outcome:N" after its outcome. Only
// binaries built with -tags crashpoints have it (the crash tests build
// one).
func crashpoint(point string, index int) {
	if os.Getenv("RUNBOOK_CRASHPOINT") == point+":"+strconv.Itoa(index) {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}
