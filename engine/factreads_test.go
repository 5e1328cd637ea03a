package engine_test

import (
	"testing"

	"github.com/runbook-dev/runbook/engine"
)

// TestGuardFactReads: what a guard reads decides when it starts; the scan
// of its source errs on the side of waiting.
func TestGuardFactReads(t *testing.T) {
	for _, c := range []struct {
		name, guard string
		want        engine.FactReads
	}{
		{"its host's name, address and vars", `host: a
    ssh-exec: {command: "echo ${{ host.name }} ${{ host.address }} ${{ host.vars.x ?? 1 }}", read_only: true}
    assert: result.exit_code == 0`, engine.ReadsNoFacts},
		{"the inventory", `host: a
    ssh-exec: {command: "echo ${{ inventory.a.address }}", read_only: true}
    assert: result.exit_code == 0`, engine.ReadsNoFacts},
		{"host.facts in the assert", `host: a
    ssh-exec: {command: "true", read_only: true}
    assert: result.exit_code == 0 && host.facts.f.reachable`, engine.ReadsHostFacts},
		{"host as a whole", `host: a
    ssh-exec: {command: "true", read_only: true}
    assert: result.exit_code == 0
    hint: '${{ toJSON(host) }}'`, engine.ReadsHostFacts},
		{"facts of any host in the hint", `host: a
    ssh-exec: {command: "true", read_only: true}
    assert: result.exit_code == 0
    hint: '${{ toJSON(facts.f) }}'`, engine.ReadsAllFacts},
		{"through an anchor", `host: a
    ssh-exec: {command: *cmd, read_only: true}
    assert: result.exit_code == 0`, engine.ReadsHostFacts},
		{"the word in a plain command", `host: a
    ssh-exec: {command: "echo facts host", read_only: true}
    assert: result.exit_code == 0`, engine.ReadsNoFacts},
	} {
		t.Run(c.name, func(t *testing.T) {
			pb := mustLoad(t, `version: 1
name: t
x-cmd: &cmd "echo ${{ host.facts.f.stdout }}"
facts:
  f:
    hosts: [a]
    ssh-exec: {command: "true", read_only: true}
require:
  - name: g
    `+c.guard+`
steps:
  - ssh-exec: {command: "true", read_only: true}
`)
			if got := pb.Require[0].Reads; got != c.want {
				t.Errorf("Reads = %d, want %d", got, c.want)
			}
		})
	}
}
