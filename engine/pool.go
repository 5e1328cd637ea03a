package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/runbook-dev/runbook/internal/transport"
)

// pool holds one connection per host, opened on first use and shared by
// every step of the run.
type pool struct {
	inv     *Inventory
	connect Connector
	mu      sync.Mutex
	conns   map[string]*poolEntry
}

type poolEntry struct {
	mu   sync.Mutex
	conn transport.Conn
	// failed is when the last dial failed, and err its error.
	failed time.Time
	err    error
}

func (p *pool) get(ctx context.Context, h *HostSpec) (transport.Conn, error) {
	if h.Transport == TransportLocal {
		return transport.Local{}, nil
	}
	p.mu.Lock()
	e := p.conns[h.Name]
	if e == nil {
		e = &poolEntry{}
		p.conns[h.Name] = e
	}
	p.mu.Unlock()
	// One dial per host at a time. A failed dial is shared by the callers
	// that were waiting for it (guards probing one host at once wait for
	// one timeout, not one each), and not remembered beyond them, so a
	// host that comes back (a wait-until on a rebooting machine) is reached.
	asked := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn != nil {
		if c, ok := e.conn.(interface{ Closed() bool }); !ok || !c.Closed() {
			return e.conn, nil
		}
		// Lost (the host stopped answering, or the link broke): open a
		// new one, so that the next step can reach a host that is back.
		e.conn = nil
	}
	if e.err != nil && e.failed.After(asked) {
		return nil, e.err
	}
	if p.connect == nil {
		return nil, fmt.Errorf("host %s: the ssh transport is not available", h.Name)
	}
	c, err := p.connect(ctx, h)
	if err != nil {
		e.failed, e.err = time.Now(), err
		return nil, err
	}
	e.conn = c
	return c, nil
}

// closeAll closes every connection; it runs even after the run's context
// was cancelled.
func (p *pool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, e := range p.conns {
			e.mu.Lock()
			if e.conn != nil {
				_ = e.conn.Close()
				e.conn = nil
			}
			e.mu.Unlock()
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}
