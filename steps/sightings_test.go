package steps

import (
	"context"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/internal/testnet"
	"github.com/runbook-dev/runbook/internal/transport"
)

// countingProbe fails with err (or succeeds when err is nil) and counts
// how often it was asked.
type countingProbe struct {
	err   error
	calls int
}

func (p *countingProbe) Probe(context.Context, *Exec) (Result, error) {
	p.calls++
	if p.err != nil {
		return nil, p.err
	}
	return Result{}, nil
}
func (p *countingProbe) Plan(context.Context, *Exec) (*Plan, error) { return &Plan{}, nil }
func (p *countingProbe) Apply(context.Context, *Exec, *Plan) (Result, error) {
	return nil, nil
}

func TestSightingsShareADefinitiveDownForAShortWhile(t *testing.T) {
	clock := time.Unix(1000, 0)
	sg := NewSightings()
	sg.now = func() time.Time { return clock }
	x := &Exec{Host: Host{Name: "pg1"}, Sightings: sg}
	noHost := &transport.UnreachableError{Host: "pg1", Addr: "10.0.0.11:22", Err: &os.SyscallError{Syscall: "connect", Err: syscall.EHOSTUNREACH}}
	p := &countingProbe{err: noHost}
	observe := func(want bool) Result {
		t.Helper()
		r, err := Observe(context.Background(), x, p)
		if err != nil {
			t.Fatal(err)
		}
		if r["reachable"] != want {
			t.Fatalf("reachable = %v, want %v (%v)", r["reachable"], want, r)
		}
		return r
	}
	observe(false)
	clock = clock.Add(DownReuse - time.Millisecond)
	if r := observe(false); p.calls != 1 {
		t.Errorf("a probe %v after a definitive down asked the network again", DownReuse-time.Millisecond)
	} else if msg := r["error"].(string); msg == "" {
		t.Error("a shared finding says nothing of where it comes from")
	}
	// Past the window the network is asked again, and the finding renewed.
	clock = clock.Add(time.Millisecond)
	if observe(false); p.calls != 2 {
		t.Errorf("a probe %v after the finding did not ask again", DownReuse)
	}
	// A probe that needs ports the finding did not try asks again (the
	// port is one where nothing answers: ServicePortTimeout passes).
	_, port, _ := net.SplitHostPort(testnet.SilentAddr(t))
	n, _ := strconv.Atoi(port)
	noHost.Addr = net.JoinHostPort("127.0.0.1", port)
	x.ServicePorts = []int{n}
	if observe(false); p.calls != 3 {
		t.Error("a probe with service ports the finding did not try took it")
	}
	x.ServicePorts = nil
	if observe(false); p.calls != 3 {
		t.Error("a probe with fewer ports than the finding asked again")
	}
	// Reached: the finding is gone.
	p.err = nil
	sg.forget("pg1")
	observe(true)
	p.err = noHost
	clock = clock.Add(time.Millisecond)
	observe(false)
	p.err = nil
	observe(false) // still within the window of the finding just made
	if p.calls != 5 {
		t.Errorf("calls = %d, want 5", p.calls)
	}
}

func TestSightingsNeverShareSilence(t *testing.T) {
	for name, err := range map[string]error{
		"timeout": &transport.UnreachableError{Host: "pg1", Addr: "10.0.0.11:22", Err: os.ErrDeadlineExceeded},
		"jump":    &transport.UnreachableError{Host: "pg1", Addr: "10.0.0.11:22", Via: "bastion", Err: syscall.EHOSTUNREACH},
		"refused": &transport.SessionError{Host: "pg1", Addr: "10.0.0.11:22", Stage: "connect", Err: syscall.ECONNREFUSED},
	} {
		t.Run(name, func(t *testing.T) {
			x := &Exec{Host: Host{Name: "pg1"}, Sightings: NewSightings()}
			p := &countingProbe{err: err}
			for range 2 {
				_, _ = Observe(context.Background(), x, p)
			}
			if p.calls != 2 {
				t.Errorf("%v was shared: the network was asked %d times, want 2", err, p.calls)
			}
		})
	}
}

// answeringProbe is a probe whose result says whether a server answered.
type answeringProbe struct{ countingProbe }

func (*answeringProbe) DownResult() Result { return Result{"answered": false} }

// TestDownResultWhetherProbedOrShared: a step with its own down values
// (sql's answered) carries them when its host was found down, whether the
// network was asked or a recent finding was taken: an assert on
// !result.answered reads the same either way.
func TestDownResultWhetherProbedOrShared(t *testing.T) {
	sg := NewSightings()
	x := &Exec{Host: Host{Name: "pg1"}, Sightings: sg}
	noHost := &transport.UnreachableError{Host: "pg1", Addr: "10.0.0.11:22", Err: &os.SyscallError{Syscall: "connect", Err: syscall.EHOSTUNREACH}}
	p := &answeringProbe{countingProbe{err: noHost}}
	for i, what := range []string{"probed", "shared"} {
		r, err := Observe(context.Background(), x, p)
		if err != nil {
			t.Fatal(err)
		}
		if a, ok := r["answered"].(bool); !ok || a {
			t.Errorf("%s: answered = %#v, want false", what, r["answered"])
		}
		if p.calls != 1 {
			t.Errorf("after %d observations the probe ran %d times, want 1", i+1, p.calls)
		}
	}
}

// TestSightingsRecentAndForgetAll: Recent lists the findings within
// DownReuse with the ports each tried silent; ForgetAll (a confirmation
// typed at a terminal) drops them, so the next probe asks again.
func TestSightingsRecentAndForgetAll(t *testing.T) {
	clock := time.Unix(1000, 0)
	sg := NewSightings()
	sg.now = func() time.Time { return clock }
	noHost := &transport.UnreachableError{Host: "pg1", Addr: "10.0.0.11:22", Err: &os.SyscallError{Syscall: "connect", Err: syscall.EHOSTUNREACH}}
	sg.record("pg1", []int{5432}, noHost)
	if got := sg.Recent(); len(got) != 1 || len(got["pg1"]) != 1 || got["pg1"][0] != 5432 {
		t.Fatalf("Recent() = %v, want pg1: [5432]", got)
	}
	clock = clock.Add(DownReuse)
	if got := sg.Recent(); len(got) != 0 {
		t.Errorf("Recent() %v after the finding = %v, want none", DownReuse, got)
	}
	sg.record("pg1", []int{5432}, noHost)
	sg.ForgetAll()
	if got := sg.Recent(); len(got) != 0 {
		t.Errorf("Recent() after ForgetAll = %v, want none", got)
	}
	if r := sg.recent("pg1", nil); r != nil {
		t.Errorf("a probe after ForgetAll took %v", r)
	}
}
