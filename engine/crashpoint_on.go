//go:build crashpoints

package engine

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

var crashpoints = sync.OnceValue(func() map[string]bool {
	set := map[string]bool{}
	for _, p := range strings.Split(os.Getenv("RUNBOOK_CRASHPOINT"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			set[p] = true
		}
	}
	return set
})

// crashpoint kills the process with SIGKILL, as a power cut or the OOM
// killer would, at the first point RUNBOOK_CRASHPOINT (a comma-separated
// list) names: "intent:N" once step N's intent is recorded, "applied:N"
// once its change is made and before its outcome is recorded, "outcome:N"
// once its outcome is recorded. The point is first appended to the file
// RUNBOOK_CRASHPOINT_LOG, if set. Only binaries built with -tags
// crashpoints have it (the crash tests build one).
func crashpoint(point string, index int) {
	p := point + ":" + strconv.Itoa(index)
	if !crashpoints()[p] {
		return
	}
	if log := os.Getenv("RUNBOOK_CRASHPOINT_LOG"); log != "" {
		if f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
			_, _ = f.WriteString(p + "\n")
			_ = f.Sync()
			f.Close()
		}
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}
