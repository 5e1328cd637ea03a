package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/testnet"
	"github.com/runbook-dev/runbook/internal/testsshd"
	"github.com/runbook-dev/runbook/internal/transport"
)

// sshConnect dials the inventory's hosts over SSH, as the CLI does.
func sshConnect(ctx context.Context, h *engine.HostSpec) (transport.Conn, error) {
	return transport.DialSSH(ctx, transport.SSHConfig{Name: h.Name, Address: h.Address, Port: h.Port, User: h.User, IdentityFiles: []string{h.IdentityFile}, KnownHosts: []string{h.KnownHosts}})
}

// hookSink records the events and calls on with each as it comes.
type hookSink struct {
	recorder
	on func(*engine.Event)
}

func (h *hookSink) Emit(e *engine.Event) {
	h.recorder.Emit(e)
	h.on(e)
}

// runWithin runs pb with a deadline, so that a run that waits for what
// never comes fails the test instead of hanging it.
func runWithin(t *testing.T, pb *engine.Playbook, params map[string]string, r *engine.Runner) error {
	t.Helper()
	vals, err := engine.ResolveParams(pb, params)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return r.Run(ctx, pb, engine.Inputs{Params: vals})
}

// TestGuardStartsWhenTheFactsItReadsAreIn, over a real sshd: the fact on
// the host slow cannot end before the guard on fast, which reads fast's
// facts only, has run (it reads what that guard writes to a FIFO, which
// blocks until a writer comes). With the guards after all the facts this
// run never ends. The guards that read slow's facts, or every host's,
// see slow's value: they waited for it.
func TestGuardStartsWhenTheFactsItReadsAreIn(t *testing.T) {
	s := testsshd.Start(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	pb := mustLoad(t, `version: 1
name: overlap
params:
  fifo: {type: string}
facts:
  f:
    hosts: [fast, slow]
    ssh-exec:
      read_only: true
      env: {FIFO: "${{ params.fifo }}", HOST: "${{ host.name }}"}
      command: |
        if [ "$HOST" = slow ]; then read -r line < "$FIFO"; echo "$line"; else echo fast; fi
    value: ${{ trim(result.stdout) }}
require:
  - name: reads the fast host's facts only
    host: fast
    ssh-exec: {command: "echo from-guard-on-${{ host.facts.f }} > ${{ params.fifo }}", read_only: true}
    assert: result.exit_code == 0
  - name: reads the slow host's facts
    host: slow
    ssh-exec: {command: "echo ${{ host.facts.f }}", read_only: true}
    assert: 'result.stdout == "from-guard-on-fast\n"'
  - name: reads every host's facts
    host: fast
    ssh-exec: {command: "echo ${{ facts.f.slow }}", read_only: true}
    assert: 'result.stdout == "from-guard-on-fast\n"'
  - name: reads none
    host: fast
    ssh-exec: {command: "true", read_only: true}
    assert: result.exit_code == 0
steps:
  - ssh-exec: {command: "true", read_only: true}
`)
	for i, want := range []engine.FactReads{engine.ReadsHostFacts, engine.ReadsHostFacts, engine.ReadsAllFacts, engine.ReadsNoFacts} {
		if got := pb.Require[i].Reads; got != want {
			t.Errorf("guard %q: Reads %d, want %d", pb.Require[i].Name, got, want)
		}
	}
	inv, ds := engine.ParseInventory("inv.yaml", []byte(s.Inventory("fast", "slow")))
	if inv == nil {
		t.Fatal(ds)
	}
	rec := &recorder{}
	err := runWithin(t, pb, map[string]string{"fifo": fifo}, &engine.Runner{Inventory: inv, Connect: sshConnect, Sink: rec})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	// The order in which they ended.
	var order []string
	for _, e := range rec.events {
		if e.Type == engine.EventGuard {
			if e.Status != engine.StatusOK {
				t.Errorf("%s on %s: %s %s", e.Name, e.Host, e.Status, e.Message)
			}
			order = append(order, e.Name+"@"+e.Host)
		}
	}
	pos := func(s string) int {
		for i, o := range order {
			if o == s {
				return i
			}
		}
		t.Fatalf("%s did not run: %v", s, order)
		return -1
	}
	// That the run ended at all, with slow's value the guard's line, says
	// the guard reading fast's facts ran before slow's fact ended (the two
	// end together, so the order of their events is not asked).
	for _, after := range []string{"reads the slow host's facts@slow", "reads every host's facts@fast"} {
		if pos(after) < pos("fact f@slow") {
			t.Errorf("%s ended before slow's fact: %v", after, order)
		}
	}
}

// TestLiveSlowHostIsNeverCalledDown, over a real sshd: slow's SSH port
// (a proxy in front of the server) accepts connections and holds them,
// saying nothing, until every other guard and fact of the run has ended.
// The guard on slow, which accepts a host that is down, must still see it
// up: a host is down on the network's word or a silence as long as its
// timeout, never because the others are done.
func TestLiveSlowHostIsNeverCalledDown(t *testing.T) {
	s := testsshd.Start(t)
	release := make(chan struct{})
	proxy := holdingProxy(t, s.Addr(), release)
	pb := mustLoad(t, `version: 1
name: slow
facts:
  f:
    hosts: [fast, slow]
    service_ports: ["1"]
    ssh-exec: {command: "echo ${{ host.name }}", read_only: true}
require:
  - name: the fast host
    host: fast
    ssh-exec: {command: "true", read_only: true}
    assert: result.exit_code == 0
  - name: the slow host, which may be down
    host: slow
    service_ports: ["1"]
    ssh-exec: {command: "echo ${{ host.facts.f.stdout }}", read_only: true}
    assert: '!result.reachable || result.exit_code == 0'
steps:
  - id: seen
    host: slow
    ssh-exec: {command: "true", read_only: true}
`)
	_, portText, _ := net.SplitHostPort(proxy)
	port, _ := strconv.Atoi(portText)
	// The proxy presents the server's host key at its own port.
	_, key, _ := strings.Cut(s.HostKeyLine, " ")
	f, err := os.OpenFile(s.KnownHosts, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(f, "[%s]:%d %s\n", s.Host, port, key); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	invText := s.Inventory("fast") + fmt.Sprintf("  slow: {address: %s, port: %d}\n", s.Host, port)
	inv, ds := engine.ParseInventory("inv.yaml", []byte(invText))
	if inv == nil {
		t.Fatal(ds)
	}
	var once sync.Once
	sink := &hookSink{on: func(e *engine.Event) {
		if e.Type == engine.EventGuard && e.Name == "the fast host" {
			once.Do(func() { close(release) })
		}
	}}
	if err := runWithin(t, pb, nil, &engine.Runner{Inventory: inv, Connect: sshConnect, Sink: sink}); err != nil {
		t.Fatalf("run: %v", err)
	}
	var saw bool
	for _, e := range sink.events {
		if e.Type == engine.EventGuard && e.Host == "slow" {
			if e.Status != engine.StatusOK || strings.Contains(e.Message, "unreachable") {
				t.Errorf("%s on slow: %s %s", e.Name, e.Status, e.Message)
			}
		}
		if e.Type == engine.EventStepEnd && e.ID == "seen" {
			saw = true
			if e.Status != engine.StatusOK {
				t.Errorf("step on slow: %s %s", e.Status, e.Message)
			}
		}
	}
	if !saw {
		t.Error("the step on slow did not run")
	}
}

// holdingProxy listens on loopback and forwards each connection to addr
// once release is closed; until then it accepts and says nothing.
func holdingProxy(t *testing.T, addr string, release <-chan struct{}) string {
	t.Helper()
	host, _, _ := net.SplitHostPort(addr)
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				<-release
				up, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{})
				go func() {
					_, _ = io.Copy(up, c)
					if tc, ok := up.(*net.TCPConn); ok {
						_ = tc.CloseWrite()
					}
					close(done)
				}()
				_, err = io.Copy(c, up)
				if err != nil && !errors.Is(err, net.ErrClosed) {
					return
				}
				c.Close()
				<-done
			})
		}
	})
	return l.Addr().String()
}

// TestTypedConfirmationAsksAgain: a probe after a confirmation typed at a
// terminal asks the network again about a host a guard found down; under
// --yes, within steps.DownReuse, it takes the guard's finding. The host's
// SSH port answers EHOSTUNREACH as the kernel's own neighbour failure (what
// it says when ARP finds no machine); its service port is a real silent
// one.
func TestTypedConfirmationAsksAgain(t *testing.T) {
	_, portText, _ := net.SplitHostPort(testnet.SilentAddr(t))
	pb := mustLoad(t, `version: 1
name: t
params:
  port: {type: int}
require:
  - name: the old primary is down
    host: old
    service_ports: ["${{ params.port }}"]
    ssh-exec: {command: "true", read_only: true}
    assert: '!result.reachable'
steps:
  - id: decision
    confirm: {word: go, text: "go on?"}
    ssh-exec: {command: "true", idempotent: true}
  - id: again
    wait-until:
      probe:
        host: old
        service_ports: ["${{ params.port }}"]
        ssh-exec: {command: "true", read_only: true}
      until: '!result.reachable'
      timeout: 20s
`)
	inv, ds := engine.ParseInventory("inv.yaml", []byte("hosts:\n  old: {address: 127.0.0.1}\n"))
	if inv == nil {
		t.Fatal(ds)
	}
	for _, c := range []struct {
		name string
		ans  engine.Answer
		// dials is how often the old primary's SSH port is asked.
		dials int
	}{
		{"yes", engine.Answer{Yes: true}, 1},
		{"typed", engine.Answer{Typed: "go"}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			dials := 0
			rec := &recorder{}
			r := &engine.Runner{Inventory: inv, Sink: rec,
				Connect: func(ctx context.Context, h *engine.HostSpec) (transport.Conn, error) {
					mu.Lock()
					dials++
					mu.Unlock()
					addr := net.JoinHostPort(h.Address, "22")
					return nil, &transport.UnreachableError{Host: h.Name, Addr: addr, Err: &transport.NoNeighbourError{Addr: addr, Err: &os.SyscallError{Syscall: "connect", Err: syscall.EHOSTUNREACH}}}
				},
				Confirm: func(context.Context, *engine.Gate) (engine.Answer, error) { return c.ans, nil },
			}
			if err := runWithin(t, pb, map[string]string{"port": portText}, r); err != nil {
				t.Fatal(err)
			}
			if dials != c.dials {
				t.Errorf("the old primary was asked %d times, want %d", dials, c.dials)
			}
		})
	}
}
