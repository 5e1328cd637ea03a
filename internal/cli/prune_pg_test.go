package cli_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/internal/cli"
	"github.com/runbook-dev/runbook/internal/testpg"
)

// TestPruneSharedState: runs prune works on the shared PostgreSQL store as
// on a state directory: the old finished run goes, the failed one stays
// until --force.
func TestPruneSharedState(t *testing.T) {
	pg := testpg.Start(t)
	url := pg.URL()
	dir := t.TempDir()
	for name, cmd := range map[string]string{"fine": "true", "failing": "false"} {
		src := fmt.Sprintf("version: 1\nname: prune/%s\nsteps:\n  - id: a\n    ssh-exec: {command: \"%s\"}\n", name, cmd)
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := cli.Main(append([]string{"runbook"}, args...), strings.NewReader(""), &out, &out)
		return code, out.String()
	}
	for _, pb := range []string{"fine", "failing", "fine"} {
		run("run", filepath.Join(dir, pb+".yaml"), "--state", url)
	}
	code, out := run("runs", "prune", "--keep", "1", "--state", url)
	if code != cli.ExitOK || !strings.Contains(out, "removed the journals of 1 run(s) from the shared store") || !strings.Contains(out, "(prune/failing, failed): it can still be resumed") {
		t.Fatalf("runs prune --keep 1: exit %d\n%s", code, out)
	}
	if _, out := run("runs", "--state", url); strings.Count(out, "prune/fine") != 1 || strings.Count(out, "prune/failing") != 1 {
		t.Errorf("after the prune, runs lists:\n%s", out)
	}
	if code, out := run("runs", "prune", "--keep", "1", "--force", "--state", url); code != cli.ExitOK || !strings.Contains(out, "prune/failing") {
		t.Errorf("runs prune --force: exit %d\n%s", code, out)
	}
	if _, out := run("runs", "--state", url); strings.Count(out, "prune/") != 1 {
		t.Errorf("after the forced prune, runs lists:\n%s", out)
	}
}
