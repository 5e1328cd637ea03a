package steps

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/runbook-dev/runbook/internal/transport"
)

// DownReuse is how long after a probe found a host down by a definitive
// signal another probe of that host in the same run takes the finding
// instead of asking the network again.
//
// Why this is safe, and why so short: a definitive signal is the network
// saying that no machine has the address (the neighbour did not answer
// ARP or neighbour discovery, or a router sent host unreachable:
// EHOSTUNREACH, ENETUNREACH, EHOSTDOWN), and every service port tried on
// that address was silent too. A machine that was off cannot boot and
// start its services within DownReuse. What it does not cover is a link
// that comes back (a partition healing) in those seconds, which a probe
// made at that moment would see; so the window is kept to the time a run
// takes from one step to the next when nobody is asked anything, and a
// probe after a confirmation typed at a terminal (seconds or minutes
// later) asks the network again (the engine drops every finding then:
// ForgetAll). A silent timeout is never reused: silence is also what a
// host whose SSH port is filtered gives, and the next probe may see it
// answer elsewhere. The bundled promotion's own last look, from the
// standby right before pg_ctl promote, takes a finding from here only in
// a run confirmed with --yes, after the standby's own look in the guards
// saw nothing either (docs/safety.md says why that is safe).
const DownReuse = 2 * time.Second

// Sightings are the hosts a run's probes found down by a definitive
// signal, with when: probes of one host within DownReuse of a finding
// share it (see DownReuse) instead of each waiting for the network to
// give up (about 3s on a LAN for a fresh ARP resolution, 8s or a silent
// timeout with a stale ARP entry). Safe for concurrent use; a nil
// *Sightings shares nothing.
type Sightings struct {
	mu   sync.Mutex
	down map[string]sighting
	// now is the clock, replaced in tests.
	now func() time.Time
}

type sighting struct {
	at    time.Time
	ports []int
	err   string
}

// NewSightings returns an empty set of sightings for one run.
func NewSightings() *Sightings {
	return &Sightings{down: map[string]sighting{}, now: time.Now}
}

// recent returns the result of a probe of host that found it down less
// than DownReuse ago, with every port of ports tried silent, or nil.
func (s *Sightings) recent(host string, ports []int) Result {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.down[host]
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
	return Result{"reachable": false, "error": fmt.Sprintf("%s (seen %.1fs ago in this run: the network reported that no machine has the address; not asked again within %s)", g.err, age.Seconds(), DownReuse)}
}

// record keeps a probe's finding that host is down, when the network said
// so definitively (see DownReuse) and not through a jump host.
func (s *Sightings) record(host string, ports []int, u *transport.UnreachableError) {
	if s == nil || u.Via != "" || !transport.NoMachine(u.Err) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down[host] = sighting{at: s.now(), ports: slices.Clone(ports), err: u.Error()}
}

// forget drops what is known of host: a probe reached it.
func (s *Sightings) forget(host string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.down, host)
}

// Recent returns, for each host found down by a definitive signal less
// than DownReuse ago, the service ports its probe tried silent.
func (s *Sightings) Recent() map[string][]int {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out map[string][]int
	for h, g := range s.down {
		if age := s.now().Sub(g.at); age < 0 || age >= DownReuse {
			continue
		}
		if out == nil {
			out = map[string][]int{}
		}
		out[h] = slices.Clone(g.ports)
	}
	return out
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
