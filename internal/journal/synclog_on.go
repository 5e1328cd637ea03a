//go:build crashpoints

package journal

import (
	"fmt"
	"os"
)

// afterSync appends the length of a journal that is on disk after an
// fsync to the file RUNBOOK_SYNCLOG: a crash test cuts the journal back to
// it to play a power cut, which loses what was not synced. Only binaries
// built with -tags crashpoints have it.
func afterSync(path string, size int64) {
	log := os.Getenv("RUNBOOK_SYNCLOG")
	if log == "" {
		return
	}
	if f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
		fmt.Fprintf(f, "%s %d\n", path, size)
		f.Close()
	}
}
