package engine_test

import (
	"fmt"
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
