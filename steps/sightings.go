package steps

import (
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/runbook-dev/runbook/internal/transport"
)

// DownReuse is how long after a probe found a host down by a definitive
// signal another probe of that host, at the same address, in the same run
// takes the finding instead of asking the network again.
//
// Why this is safe, and why so short: a definitive signal is this
// machine's kernel finding no neighbour at the host's address on an
// attached link (no answer to ARP or neighbour discovery:
// transport.NoNeighbourError), at the address the host's service ports
// are judged at, with every service port tried there silent too. An
// EHOSTUNREACH that an ICMP message from a router or from the host itself
// gave (a live machine's firewall REJECT) is not one. A machine that was
// off cannot boot and start its services within DownReuse. What it does
// not cover is a link that comes back (a partition healing) in those
// seconds, which a probe made at that moment would see; so the window is
// kept to the time a run takes from one step to the next when nobody is
// asked anything, and a probe after a confirmation typed at a terminal
// (seconds or minutes later) asks the network again (the engine drops
// every finding then: ForgetAll). A silent timeout is never reused:
// silence is also what a host whose SSH port is filtered gives, and the
// next probe may see it answer elsewhere. No finding stands in for a look
// from another machine: the bundled promotion's last look is the
// standby's own, kept up from its guard until pg_ctl promote or made
// right then (playbooks/shared/look.vars.yaml).
const DownReuse = 2 * time.Second

// Sightings are the hosts a run's probes found down by a definitive
// signal, by host and address, with when and which service ports were
// tried silent there: probes of one host at the same address within
// DownReuse of a finding share it (see DownReuse) instead of each waiting
// for the network to give up (about 3s on a LAN for a fresh ARP
// resolution, 8s with a stale ARP entry). A probe that dials an address
// of its own from this machine (sql's address, http's URL) neither takes
// nor leaves a finding. Safe for concurrent use; a nil *Sightings shares
// nothing.
type Sightings struct {
	mu   sync.Mutex
	down map[sightingKey]sighting
	// now is the clock, replaced in tests.
	now func() time.Time
}

// sightingKey is a host and the address its SSH port and service ports
// were tried at.
type sightingKey struct{ host, address string }

type sighting struct {
	at    time.Time
	ports []int
	err   string
}

// NewSightings returns an empty set of sightings for one run.
func NewSightings() *Sightings {
	return &Sightings{down: map[sightingKey]sighting{}, now: time.Now}
}

// ownDialer is a step whose probe may dial an address of its own from
// this machine rather than go through its host's SSH connection: a
// finding about the host's address says nothing of it.
type ownDialer interface {
	dialsOwnAddress(x *Exec) bool
}

// shares says whether a probe of s on x may take or leave a finding.
func shares(x *Exec, s Step) bool {
	if x.Sightings == nil || x.Host.Address == "" {
		return false
	}
	d, ok := s.(ownDialer)
	return !ok || !d.dialsOwnAddress(x)
}

// recent returns the result of a probe of host at address that found it
// down less than DownReuse ago, with every port of ports tried silent, or
// nil.
func (s *Sightings) recent(host, address string, ports []int) Result {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.down[sightingKey{host, address}]
	if !ok {
		return nil
	}
	age := s.now().Sub(g.at)
	if age < 0 || age >= DownReuse {
		return nil
	}
	for _, p := range ports {
		if !slices.Contains(g.ports, p) {
			return nil
		}
	}
	return Result{"reachable": false, "error": fmt.Sprintf("%s (seen %.1fs ago in this run: no machine answered ARP or neighbour discovery for %s; not asked again within %s)", g.err, age.Seconds(), address, DownReuse)}
}

// record keeps a probe's finding that host is down at address, when this
// machine's kernel found no neighbour at that very address (see
// DownReuse: not an ssh_config HostName's other address, not through a
// jump host) and ports were tried silent there.
func (s *Sightings) record(host, address string, ports []int, u *transport.UnreachableError) {
	if s == nil || u.Via != "" || !transport.NoMachine(u.Err) {
		return
	}
	if h, _, err := net.SplitHostPort(u.Addr); err != nil || h != address {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down[sightingKey{host, address}] = sighting{at: s.now(), ports: slices.Clone(ports), err: u.Error()}
}

// forget drops what is known of host: a probe reached it.
func (s *Sightings) forget(host string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.down {
		if k.host == host {
			delete(s.down, k)
		}
	}
}

// ForgetAll drops every finding: after a confirmation typed at a terminal
// every probe asks the network again.
func (s *Sightings) ForgetAll() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.down)
}

// dialsOwnAddress: a sql step connects from this machine unless it goes
// through the host's SSH connection (via_ssh, or become: the server's
// socket there) to the host's own server; with an address of its own it
// may reach another machine.
func (s *sqlStep) dialsOwnAddress(x *Exec) bool {
	return s.address != nil || x.Become == "" && !s.viaSSH
}

// dialsOwnAddress: an http step connects to its URL from this machine
// unless via_ssh.
func (h *httpStep) dialsOwnAddress(*Exec) bool { return !h.viaSSH }
