package engine_test

import (
	"testing"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/playbooks"
	"github.com/runbook-dev/runbook/steps"
)

func TestPlaybookReadOnly(t *testing.T) {
	head := "version: 1\nname: ro\nsteps:\n"
	for _, c := range []struct {
		name, steps string
		want        bool
	}{
		{"read-only commands and a wait", `  - id: a
    ssh-exec: {command: "true", read_only: true}
  - id: w
    wait-until:
      probe: {ssh-exec: {command: "true", read_only: true}}
      until: result.exit_code == 0
      timeout: 5s
`, true},
		{"a command that may change", `  - id: a
    ssh-exec: {command: "true", read_only: true}
  - id: b
    ssh-exec: {command: "touch x"}
`, false},
		{"a capture writes here", `  - id: c
    capture: {command: "uname -a", dest: "out/${{ host.name }}.txt"}
`, false},
		{"a file-patch", `  - id: f
    file-patch: {path: /tmp/x.conf, set: {a: "1"}}
`, false},
	} {
		pb, ds := (&engine.Loader{Registry: steps.Builtin()}).Load("ro.yaml", []byte(head+c.steps))
		if pb == nil {
			t.Fatalf("%s: %v", c.name, ds)
		}
		if got := pb.ReadOnly(); got != c.want {
			t.Errorf("%s: ReadOnly() = %v, want %v", c.name, got, c.want)
		}
	}
	for name, want := range map[string]bool{"pg-ha/check": true, "pg-ha/status": true, "pg-ha/promote-standby": false} {
		src, _ := playbooks.Lookup(name)
		pb, ds := (&engine.Loader{Registry: steps.Builtin()}).Load(playbooks.Path(name), src)
		if pb == nil {
			t.Fatalf("%s: %v", name, ds)
		}
		if pb.ReadOnly() != want {
			t.Errorf("%s: ReadOnly() = %v, want %v", name, !want, want)
		}
	}
}
