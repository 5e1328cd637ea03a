package engine_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/textcheck"
	"github.com/runbook-dev/runbook/steps"
)

// validateTree is runbook validate DIR: a checker made for the command
// (shellcheck when installed, so the commands are checked too, as in a CI
// job; PostgreSQL's parser), the tree checked. It
// fails on any diagnostic.
func validateTree(b *testing.B, dir string) {
	shellcheck, _ := exec.LookPath("shellcheck")
	checker := textcheck.New(context.Background(), shellcheck)
	rep, err := engine.Validate([]string{dir}, engine.ValidateOptions{Loader: &engine.Loader{Registry: steps.Builtin(), Inside: checker}, Config: engine.ConfigFile})
	if err != nil {
		b.Fatal(err)
	}
	if err := checker.Err(); err != nil {
		b.Fatal(err)
	}
	if diag.HasErrors(rep.Diagnostics) {
		b.Fatalf("%d diagnostics, the first %v", len(rep.Diagnostics), rep.Diagnostics[0])
	}
}

// BenchmarkValidate1000 is `runbook validate DIR` on a directory of 1,000
// playbooks of 50 steps: files found, read, parsed and checked in
// parallel, as the command does. Every file's commands and SQL texts are
// its own, as in a real tree (10,001 distinct commands, 2,000 distinct SQL
// texts): the cache of texts seen before has nothing to give. ns/op is the
// wall time for all 1,000.
func BenchmarkValidate1000(b *testing.B) {
	dir := b.TempDir()
	for i := range 1000 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("p%04d.yaml", i)), fiftySteps(i), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		validateTree(b, dir)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10001, "ns/command")
}

// fiftySteps is a playbook of 50 steps, its commands and SQL texts made
// its own by n.
func fiftySteps(n int) []byte {
	var sb strings.Builder
	sb.WriteString("version: 1\nname: bench/fifty\nparams:\n  primary: {type: host, default: pg1}\n  app: {type: string, default: inmanta}\nsecrets:\n  pw: {env: PW}\nrequire:\n  - name: primary in production\n    host: ${{ params.primary }}\n    ssh-exec:\n      command: pg_controldata -D /var/lib/postgresql/15/main\n    assert: result.reachable && result.stdout contains \"in production\"\nsteps:\n")
	for i := 0; i < 50; i++ {
		switch i % 5 {
		case 0:
			fmt.Fprintf(&sb, "  - id: s%d\n    host: ${{ params.primary }}\n    ssh-exec:\n      command: echo ${{ params.app }} f%d-%d\n", i, n, i)
		case 1:
			fmt.Fprintf(&sb, "  - id: s%d\n    host: ${{ params.primary }}\n    when: steps.s%d.result.exit_code == 0\n    file-patch:\n      path: /etc/postgresql/15/main/postgresql.conf\n      set:\n        synchronous_standby_names: ${{ params.app }}\n", i, i-1)
		case 2:
			fmt.Fprintf(&sb, "  - id: s%d\n    host: ${{ params.primary }}\n    systemd: {unit: postgresql@15-main, state: started}\n    assert: result.active == \"active\"\n", i)
		case 3:
			fmt.Fprintf(&sb, "  - id: s%d\n    host: ${{ params.primary }}\n    sql:\n      query: SELECT state FROM pg_stat_replication WHERE application_name = $1 AND pid > %d\n      args: [\"${{ params.app }}\"]\n      password: ${{ secrets.pw }}\n", i, n)
		case 4:
			fmt.Fprintf(&sb, "  - id: s%d\n    wait-until:\n      probe:\n        host: ${{ params.primary }}\n        sql: {query: SELECT %d AS one}\n      until: result.ok && len(result.rows) > 0\n      timeout: 30s\n", i, n)
		}
	}
	return []byte(sb.String())
}
