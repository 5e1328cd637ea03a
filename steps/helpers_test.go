package steps_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/testkit"
	"github.com/runbook-dev/runbook/internal/transport"
	"github.com/runbook-dev/runbook/steps"
)

type events struct {
	mu  sync.Mutex
	all []engine.Event
}

func (e *events) Emit(ev *engine.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, *ev)
}

// end returns the step-end event of the step with id.
func (e *events) end(id string) engine.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.all {
		if ev.Type == engine.EventStepEnd && ev.ID == id {
			return ev
		}
	}
	return engine.Event{}
}

type runOpts struct {
	params  map[string]string
	secrets map[string]string
	inv     string
	dryRun  bool
	// dir is engine.Runner.Dir.
	dir string
}

// dialHost reaches an inventory's host over SSH with the real transport.
func dialHost(ctx context.Context, h *engine.HostSpec) (transport.Conn, error) {
	return transport.DialSSH(ctx, transport.SSHConfig{Name: h.Name, Address: h.Address, Port: h.Port, User: h.User, IdentityFiles: []string{h.IdentityFile}, KnownHosts: []string{h.KnownHosts}})
}

// fileIn writes a file of the content given, named name in a fresh
// directory, and returns the directory and the file's path.
func fileIn(t *testing.T, name, content string, mode os.FileMode) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, name)
	testkit.WriteFile(t, path, content, mode)
	return dir, path
}

// taking is a test playbook named name that takes the string param param
// (a directory, an API's URL), then rest: its steps, and any more params,
// guards or secrets before them (written on the lines that follow param).
func taking(name, param, rest string) string {
	return "version: 1\nname: " + name + "\nparams:\n  " + param + ": {type: string}\n" + rest
}

// given runs a playbook with one param.
func given(param, value string) runOpts {
	return runOpts{params: map[string]string{param: value}}
}

// runPlaybook loads src and runs it; SSH hosts of inv are reached with
// the real transport.
func runPlaybook(t *testing.T, src string, o runOpts) (*events, error) {
	t.Helper()
	l := &engine.Loader{Registry: steps.Builtin()}
	pb, ds := l.Load("test.yaml", []byte(src))
	if pb == nil {
		t.Fatalf("invalid playbook: %v", ds)
	}
	vals, err := engine.ResolveParams(pb, o.params)
	if err != nil {
		t.Fatal(err)
	}
	var inv *engine.Inventory
	if o.inv != "" {
		var ids []any
		inv, _ = engine.ParseInventory("inv.yaml", []byte(o.inv))
		if inv == nil {
			t.Fatalf("invalid inventory %v", ids)
		}
	}
	ev := &events{}
	r := &engine.Runner{Inventory: inv, Sink: ev, DryRun: o.dryRun, Connect: dialHost, Dir: o.dir}
	err = r.Run(context.Background(), pb, engine.Inputs{Params: vals, Secrets: o.secrets})
	return ev, err
}
