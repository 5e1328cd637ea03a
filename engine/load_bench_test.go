package engine_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// playbook50 is a realistic 50-step playbook: params, a guard, and steps
// of every common shape with templates, when and assert expressions.
func playbook50() []byte {
	var b strings.Builder
	b.WriteString(`version: 1
name: bench/fifty
description: fifty steps
params:
  primary: {type: host, default: pg1}
  data_dir: {type: string, default: /var/lib/postgresql/15/main}
  app: {type: string, default: inmanta}
  wait: {type: duration, default: 30s}
secrets:
  pw: {env: PW}
require:
  - name: primary in production
    host: ${{ params.primary }}
    ssh-exec:
      command: pg_controldata -D ${{ params.data_dir }}
    assert: result.reachable && result.stdout contains "in production"
steps:
`)
	for i := 0; i < 50; i++ {
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "  - id: s%d\n    host: ${{ params.primary }}\n    ssh-exec:\n      command: echo ${{ params.app }} %d\n", i, i)
		case 1:
			fmt.Fprintf(&b, "  - id: s%d\n    host: ${{ params.primary }}\n    when: steps.s%d.result.exit_code == 0\n    file-patch:\n      path: /etc/postgresql/15/main/postgresql.conf\n      set:\n        synchronous_standby_names: ${{ params.app }}\n", i, i-1)
		case 2:
			fmt.Fprintf(&b, "  - id: s%d\n    host: ${{ params.primary }}\n    systemd: {unit: postgresql@15-main, state: started}\n    assert: result.active == \"active\"\n", i)
		case 3:
			fmt.Fprintf(&b, "  - id: s%d\n    host: ${{ params.primary }}\n    sql:\n      query: SELECT application_name, state FROM pg_stat_replication WHERE application_name = $1\n      args: [\"${{ params.app }}\"]\n      password: ${{ secrets.pw }}\n", i)
		case 4:
			fmt.Fprintf(&b, "  - id: s%d\n    wait-until:\n      probe:\n        host: ${{ params.primary }}\n        sql: {query: SELECT 1 AS one}\n      until: result.ok && len(result.rows) > 0 && steps.s%d.result.rows_affected >= 0\n      timeout: ${{ params.wait }}\n", i, i-1)
		}
	}
	return []byte(b.String())
}

// BenchmarkLoad1000x50 loads and validates 1,000 playbooks of 50 steps per
// iteration: the "validate a repository in CI" case. ns/op is the time for
// all 1,000 on one core.
func BenchmarkLoad1000x50(b *testing.B) {
	src := playbook50()
	l := loader()
	if pb, ds := l.Load("bench.yaml", src); pb == nil || len(ds) > 0 {
		b.Fatalf("benchmark playbook is invalid: %v", ds)
	}
	b.ReportAllocs()
	for b.Loop() {
		for range 1000 {
			if pb, _ := l.Load("bench.yaml", src); pb == nil {
				b.Fatal("load failed")
			}
		}
	}
}

// bigPlaybook is a playbook of about mb MiB: n steps of a command with
// creates, as a generated playbook would have.
func bigPlaybook(mb int) []byte {
	var b strings.Builder
	b.WriteString("version: 1\nname: big\nparams:\n  dir: {type: string, default: /tmp}\nsteps:\n")
	for i := 0; b.Len() < mb<<20; i++ {
		fmt.Fprintf(&b, "  - id: s%d\n    name: step %d\n    ssh-exec:\n      command: echo %d >> ${{ params.dir }}/log\n      creates: ${{ params.dir }}/m%d\n", i, i, i, i)
	}
	return []byte(b.String())
}

// BenchmarkLoadSize loads playbooks of 1, 4 and 20 MiB: the time per MiB
// must stay flat (loading and linting are linear in the number of steps).
func BenchmarkLoadSize(b *testing.B) {
	for _, mb := range loadSizes() {
		src := bigPlaybook(mb)
		b.Run(fmt.Sprintf("%dMiB", mb), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				if _, ds := loader().Load("big.yaml", src); len(ds) == 0 {
					b.Fatal("no diagnostics: the unguarded-change lint did not run")
				}
			}
		})
	}
}

// loadSizes are the sizes BenchmarkLoadSize loads; RUNBOOK_BENCH_MIB
// chooses one (14 for the size of the playbook).
func loadSizes() []int {
	if s := os.Getenv("RUNBOOK_BENCH_MIB"); s != "" {
		n, _ := strconv.Atoi(s)
		return []int{n}
	}
	return []int{1, 4, 20}
}
