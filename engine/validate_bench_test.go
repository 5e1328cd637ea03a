package engine_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/textcheck"
	"github.com/runbook-dev/runbook/steps"
)

// validateTree is runbook validate DIR: a checker made for the command
// (shellcheck when installed, so the commands are checked too, as in a CI
// job; PostgreSQL's parser; the cache of shellcheck's findings in cacheDir
// unless it is empty), the tree checked. It fails on any diagnostic, and
// returns the checker's counts.
func validateTree(b *testing.B, dir, shellcheck, cacheDir string) textcheck.Stats {
	checker := textcheck.NewWithConfig(context.Background(), textcheck.Config{Shellcheck: shellcheck, CacheDir: cacheDir})
	rep, err := engine.Validate([]string{dir}, engine.ValidateOptions{Loader: &engine.Loader{Registry: steps.Builtin(), Inside: checker}, Config: engine.ConfigFile})
	if err != nil {
		b.Fatal(err)
	}
	if err := checker.Err(); err != nil {
		b.Fatal(err)
	}
	if err := checker.CacheErr(); err != nil {
		b.Fatal(err)
	}
	if err := checker.Close(); err != nil {
		b.Fatal(err)
	}
	if diag.HasErrors(rep.Diagnostics) {
		b.Fatalf("%d diagnostics, the first %v", len(rep.Diagnostics), rep.Diagnostics[0])
	}
	return checker.Stats()
}

// BenchmarkValidate1000 is `runbook validate DIR` on a directory of 1,000
// playbooks of 50 steps: files found, read, parsed and checked in
// parallel, as the command does. Every file's commands and SQL texts are
// its own, as in a real tree (10,001 distinct commands, 2,000 distinct SQL
// texts): the in-run cache of texts seen before has nothing to give. ns/op
// is the wall time for all 1,000:
//   - cold: the cache of shellcheck's findings empty (a first run, or
//     every command changed): shellcheck reads every command, and its
//     findings are written to the cache;
//   - warm: the cache filled by a run before (a second run of the same
//     tree): shellcheck reads nothing;
//   - no-cache: validate --no-cache;
//   - no-shellcheck: shellcheck not installed; the SQL is parsed still.
func BenchmarkValidate1000(b *testing.B) {
	dir := b.TempDir()
	for i := range 1000 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("p%04d.yaml", i)), fiftySteps(i), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	shellcheck, _ := exec.LookPath("shellcheck")
	// cpu-s/op is the CPU time of validate and of its shellcheck
	// processes: on a shared machine, wall time says more of the load
	// than of validate.
	var cpu0 time.Duration
	perCommand := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10001, "ns/command")
		b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	}
	needShellcheck := func(b *testing.B) {
		if shellcheck == "" {
			b.Skip("shellcheck is not installed")
		}
	}
	b.Run("cold", func(b *testing.B) {
		needShellcheck(b)
		cpu0 = cpuTime()
		for b.Loop() {
			b.StopTimer()
			cache, err := os.MkdirTemp(b.TempDir(), "cache")
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if st := validateTree(b, dir, shellcheck, cache); st.Checked != 10001 {
				b.Fatalf("%+v, want 10,001 commands checked", st)
			}
		}
		perCommand(b)
	})
	b.Run("warm", func(b *testing.B) {
		needShellcheck(b)
		cache := b.TempDir()
		validateTree(b, dir, shellcheck, cache)
		cpu0 = cpuTime()
		for b.Loop() {
			if st := validateTree(b, dir, shellcheck, cache); st.Checked != 0 {
				b.Fatalf("%+v, want no command checked", st)
			}
		}
		perCommand(b)
	})
	b.Run("no-cache", func(b *testing.B) {
		needShellcheck(b)
		cpu0 = cpuTime()
		for b.Loop() {
			validateTree(b, dir, shellcheck, "")
		}
		perCommand(b)
	})
	b.Run("no-shellcheck", func(b *testing.B) {
		cpu0 = cpuTime()
		for b.Loop() {
			validateTree(b, dir, "", "")
		}
		b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	})
}

// cpuTime is the CPU time (user and system) of this process and of its
// children waited for.
func cpuTime() time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err == nil {
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return total
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
