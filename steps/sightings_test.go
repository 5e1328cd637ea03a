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
	x := &Exec{Host: Host{Name: "pg1", Address: "10.0.0.11"}, Sightings: sg}
	noHost := &transport.UnreachableError{Host: "pg1", Addr: "10.0.0.11:22", Err: &transport.NoNeighbourError{Addr: "10.0.0.11:22", Err: &os.SyscallError{Syscall: "connect", Err: syscall.EHOSTUNREACH}}}
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
	noHost.Err.(*transport.NoNeighbourError).Addr = noHost.Addr
	x.Host.Address = "127.0.0.1"
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
		// EHOSTUNREACH without the kernel's own neighbour failure: an
		// ICMP from a router, or a local route.
		"icmp": &transport.UnreachableError{Host: "pg1", Addr: "10.0.0.11:22", Err: &os.SyscallError{Syscall: "connect", Err: syscall.EHOSTUNREACH}},
		// No neighbour at another address than the host's (an
		// ssh_config HostName): nothing is known of its own.
		"other address": &transport.UnreachableError{Host: "pg1", Addr: "10.0.0.99:22", Err: &transport.NoNeighbourError{Addr: "10.0.0.99:22", Err: syscall.EHOSTUNREACH}},
	} {
		t.Run(name, func(t *testing.T) {
			x := &Exec{Host: Host{Name: "pg1", Address: "10.0.0.11"}, Sightings: NewSightings()}
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
	x := &Exec{Host: Host{Name: "pg1", Address: "10.0.0.11"}, Sightings: sg}
	noHost := &transport.UnreachableError{Host: "pg1", Addr: "10.0.0.11:22", Err: &transport.NoNeighbourError{Addr: "10.0.0.11:22", Err: &os.SyscallError{Syscall: "connect", Err: syscall.EHOSTUNREACH}}}
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

// TestSightingsForgetAll: ForgetAll (a confirmation typed at a terminal)
// drops the findings, so the next probe asks again.
func TestSightingsForgetAll(t *testing.T) {
	sg := NewSightings()
	noHost := &transport.UnreachableError{Host: "pg1", Addr: "10.0.0.11:22", Err: &transport.NoNeighbourError{Addr: "10.0.0.11:22", Err: syscall.EHOSTUNREACH}}
	sg.record("pg1", "10.0.0.11", []int{5432}, noHost)
	if r := sg.recent("pg1", "10.0.0.11", []int{5432}); r == nil {
		t.Fatal("a finding just made was not taken")
	}
	if r := sg.recent("pg1", "10.0.0.12", nil); r != nil {
		t.Errorf("a probe at another address of the host took its finding: %v", r)
	}
	sg.ForgetAll()
	if r := sg.recent("pg1", "10.0.0.11", nil); r != nil {
		t.Errorf("a probe after ForgetAll took %v", r)
	}
}

// ownProbe is a probe that dials an address of its own from here.
type ownProbe struct{ countingProbe }

func (*ownProbe) dialsOwnAddress(*Exec) bool { return true }

// ownAnsweringProbe dials an address of its own and finds nothing
// answering there.
type ownAnsweringProbe struct{ countingProbe }

func (*ownAnsweringProbe) dialsOwnAddress(*Exec) bool { return true }
func (p *ownAnsweringProbe) Probe(context.Context, *Exec) (Result, error) {
	p.calls++
	return Result{"answered": false}, nil
}

// TestSightingsNotForAProbeOfItsOwnAddress: a probe that dials an address
// of its own (sql's address, http's URL) never takes the host's finding,
// and a sql or http step is such a probe unless it goes through the
// host's SSH connection.
func TestSightingsNotForAProbeOfItsOwnAddress(t *testing.T) {
	sg := NewSightings()
	x := &Exec{Host: Host{Name: "pg1", Address: "10.0.0.11"}, Sightings: sg}
	noHost := &transport.UnreachableError{Host: "pg1", Addr: "10.0.0.11:22", Err: &transport.NoNeighbourError{Addr: "10.0.0.11:22", Err: syscall.EHOSTUNREACH}}
	if _, err := Observe(context.Background(), x, &countingProbe{err: noHost}); err != nil {
		t.Fatal(err)
	}
	p := &ownProbe{countingProbe{err: nil}}
	r, err := Observe(context.Background(), x, p)
	if err != nil {
		t.Fatal(err)
	}
	if p.calls != 1 || r["reachable"] != true {
		t.Errorf("a probe of its own address took the host's finding: calls %d, %v", p.calls, r)
	}
	// It reached something: the host's finding is gone.
	if sg.recent("pg1", "10.0.0.11", nil) != nil {
		t.Error("a probe of its own address that was answered left the host's finding")
	}
	// One that found nothing answering (sql's answered == false, as the
	// guard "no PostgreSQL answers at the old primary's address, seen
	// from here" does when it ends after the fact's finding) leaves it.
	if _, err := Observe(context.Background(), x, &countingProbe{err: noHost}); err != nil {
		t.Fatal(err)
	}
	silent := &ownAnsweringProbe{}
	if _, err := Observe(context.Background(), x, silent); err != nil {
		t.Fatal(err)
	}
	if silent.calls != 1 || sg.recent("pg1", "10.0.0.11", nil) == nil {
		t.Errorf("a probe of its own address that found nothing answering dropped the host's finding (calls %d)", silent.calls)
	}
	for _, c := range []struct {
		name   string
		s      Step
		become string
		want   bool
	}{
		{"sql from here", &sqlStep{}, "", false},
		{"sql via_ssh", &sqlStep{viaSSH: true}, "", true},
		{"sql on the host's socket", &sqlStep{}, "postgres", true},
		{"http from here", &httpStep{}, "", false},
		{"http via_ssh", &httpStep{viaSSH: true}, "", true},
	} {
		x := &Exec{Host: Host{Name: "pg1", Address: "10.0.0.11"}, Become: c.become, Sightings: sg}
		if got := shares(x, c.s); got != c.want {
			t.Errorf("%s: shares findings = %v, want %v", c.name, got, c.want)
		}
	}
}
