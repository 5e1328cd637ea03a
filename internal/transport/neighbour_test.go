package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// neighbourHelperEnv names the addresses TestNeighbourHelper dials, when
// the test binary runs it inside the network namespace of
// TestDialTCPTellsNoMachineFromReject.
const neighbourHelperEnv = "RUNBOOK_TEST_NEIGHBOUR_DIAL"

type neighbourDial struct {
	Addr        string
	Err         string
	Unreachable bool
	NoNeighbour bool
	Rejected    bool
	Took        time.Duration
}

// TestNeighbourHelper is not a test of its own: it dials the addresses
// of neighbourHelperEnv and prints what DialTCP said, one JSON line each.
func TestNeighbourHelper(t *testing.T) {
	addrs := os.Getenv(neighbourHelperEnv)
	if addrs == "" {
		t.Skip("run by TestDialTCPTellsNoMachineFromReject")
	}
	for _, a := range strings.Split(addrs, ",") {
		start := time.Now()
		c, err := DialTCP(context.Background(), net.Dialer{Timeout: 10 * time.Second}, a)
		if c != nil {
			c.Close()
		}
		var nn *NoNeighbourError
		var rej *RejectedError
		d := neighbourDial{Addr: a, Unreachable: errors.Is(err, syscall.EHOSTUNREACH), NoNeighbour: errors.As(err, &nn), Rejected: errors.As(err, &rej) && !Silent(err), Took: time.Since(start)}
		if err != nil {
			d.Err = err.Error()
		}
		b, _ := json.Marshal(d)
		fmt.Printf("DIAL %s\n", b)
	}
}

// TestDialTCPTellsNoMachineFromReject: on a real link (a veth pair between
// two network namespaces), a dial to an address no machine has ends in
// the kernel's own ARP failure, a NoNeighbourError; a live machine that
// rejects the connection with ICMP host unreachable (the same type and
// code, as a firewall's REJECT --reject-with icmp-host-unreachable sends)
// gives the same EHOSTUNREACH to the connect, at once, and is not one: it
// is a RejectedError, an answer (the machine is up), not silence; an ICMP
// packet filtered from another address (as from a router) is not one
// either, and is silence. Needs root and ip(8).
func TestDialTCPTellsNoMachineFromReject(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8)")
	}
	a := fmt.Sprintf("rbnA%d", os.Getpid())
	b := fmt.Sprintf("rbnB%d", os.Getpid())
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", a).Run()
		_ = exec.Command("ip", "netns", "del", b).Run()
	})
	ip("netns", "add", a)
	ip("netns", "add", b)
	ip("-n", a, "link", "set", "lo", "up")
	ip("-n", b, "link", "set", "lo", "up")
	ip("-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b)
	ip("-n", a, "addr", "add", "10.99.0.1/24", "dev", "va")
	ip("-n", a, "link", "set", "va", "up")
	// b is a live machine at .3 and .4; nothing has .2.
	ip("-n", b, "addr", "add", "10.99.0.3/24", "dev", "vb")
	ip("-n", b, "addr", "add", "10.99.0.4/24", "dev", "vb")
	ip("-n", b, "link", "set", "vb", "up")
	// It answers ARP, and rejects TCP from a: at .3 with ICMP host
	// unreachable (a route of type unreachable), at .4 with packet
	// filtered (prohibit). A router sends these only when forwarding.
	ip("netns", "exec", b, "sysctl", "-qw", "net.ipv4.conf.all.forwarding=1")
	ip("-n", b, "rule", "add", "pref", "100", "lookup", "local")
	ip("-n", b, "rule", "del", "pref", "0")
	ip("-n", b, "route", "add", "unreachable", "default", "table", "100")
	ip("-n", b, "rule", "add", "pref", "10", "from", "10.99.0.1", "to", "10.99.0.3", "ipproto", "tcp", "lookup", "100")
	ip("-n", b, "rule", "add", "pref", "11", "from", "10.99.0.1", "to", "10.99.0.4", "ipproto", "tcp", "prohibit")

	cmd := exec.Command("ip", "netns", "exec", a, os.Args[0], "-test.run", "^TestNeighbourHelper$", "-test.count", "1")
	cmd.Env = append(os.Environ(), neighbourHelperEnv+"=10.99.0.2:22,10.99.0.3:22,10.99.0.4:22")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the dials in namespace %s: %v\n%s", a, err, out)
	}
	got := map[string]neighbourDial{}
	for _, l := range strings.Split(string(out), "\n") {
		if j, ok := strings.CutPrefix(l, "DIAL "); ok {
			var d neighbourDial
			if err := json.Unmarshal([]byte(j), &d); err != nil {
				t.Fatal(err)
			}
			got[d.Addr] = d
		}
	}
	for _, c := range []struct {
		addr                string
		noMachine, rejected bool
	}{
		{"10.99.0.2:22", true, false},
		// The ICMP comes from the address dialled, as a firewall's
		// REJECT sends it: an answer.
		{"10.99.0.3:22", false, true},
		// The ICMP comes from another address (b's first one, as from
		// a router): neither an answer nor definitive, silence.
		{"10.99.0.4:22", false, false},
	} {
		addr, want, rejected := c.addr, c.noMachine, c.rejected
		d, ok := got[addr]
		if !ok {
			t.Fatalf("no dial of %s in\n%s", addr, out)
		}
		if !d.Unreachable {
			t.Errorf("%s: %q, want EHOSTUNREACH", addr, d.Err)
		}
		if d.NoNeighbour != want {
			t.Errorf("%s: NoNeighbourError = %v after %v (%s), want %v", addr, d.NoNeighbour, d.Took, d.Err, want)
		}
		if d.Rejected != rejected {
			t.Errorf("%s: an answer from the machine (RejectedError, not Silent) = %v (%s), want %v", addr, d.Rejected, d.Err, rejected)
		}
		if NoMachine(errors.New(d.Err)) {
			t.Errorf("NoMachine of a plain error text %q is true", d.Err)
		}
	}
	// The kernel gives up on a neighbour after its probes (1 s apart);
	// a REJECT comes back in a round trip.
	if d := got["10.99.0.2:22"]; d.Took < time.Second {
		t.Errorf("the neighbour failure came after %v, before the kernel's probes could end", d.Took)
	}
}
