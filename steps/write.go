package steps

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/internal/transport"
)

// refuseHardLinks refuses to write a file with hard links: a write
// replaces the file by rename, and the other names would keep the old
// content, silently.
func refuseHardLinks(ctx context.Context, conn transport.Conn, path, host string) error {
	out, err := conn.Run(ctx, &transport.Command{Line: "stat -L -c %h -- " + tmpl.ShellQuote(path)})
	if err != nil {
		return err
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(string(out.Stdout))); out.ExitCode == 0 && n > 1 {
		return fmt.Errorf("%s on %s has %d hard links: an atomic write (a new file renamed over it) would leave the other names with the old content; nothing was changed: make the other names symbolic links to it, then run again", path, host, n)
	}
	return nil
}

// writeFailed is the error of a write of path that failed: the file is as
// it was, so its backup (when not "") is removed rather than left to pile
// up with each attempt, and a refusal names the attributes that cause it.
func writeFailed(ctx context.Context, conn transport.Conn, path, backup string, err error) error {
	if backup != "" {
		_ = conn.Remove(ctx, backup)
	}
	hint := ""
	if errors.Is(err, fs.ErrPermission) || strings.Contains(err.Error(), "permission denied") || strings.Contains(err.Error(), "operation not permitted") {
		hint = " (is the file, or its directory, immutable or append-only? lsattr shows i or a; chattr -i removes it)"
	}
	return fmt.Errorf("write %s: %w%s; nothing was changed", path, err, hint)
}
