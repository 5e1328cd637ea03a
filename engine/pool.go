package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
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

// get returns the host's connection, opened on first use, as a step uses
// it (see redialing).
func (p *pool) get(ctx context.Context, h *HostSpec) (transport.Conn, error) {
	if h.Transport == TransportLocal {
		return transport.Local{}, nil
	}
	c, err := p.conn(ctx, h)
	if err != nil {
		return nil, err
	}
	return &redialing{p: p, h: h, conn: c}, nil
}

// conn returns the host's open connection, or dials one.
func (p *pool) conn(ctx context.Context, h *HostSpec) (transport.Conn, error) {
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

// drop closes the host's connection c, found closed by the host, so that
// the next use dials a new one (unless another caller already did).
func (p *pool) drop(h *HostSpec, c transport.Conn) {
	p.mu.Lock()
	e := p.conns[h.Name]
	p.mu.Unlock()
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn == c {
		_ = c.Close()
		e.conn = nil
	}
}

// redialing is a host's pooled connection as a step holds it. An
// operation that finds the connection closed by the host before anything
// ran (*transport.ClosedError: the host rebooted, or its sshd restarted,
// and no keepalive has noticed yet) is tried once more on a new
// connection; the new dial's error then says what the host is (refused
// or silent: unreachable). Without it, every step after a reboot would
// fail on the dead connection with "the machine is up".
type redialing struct {
	p    *pool
	h    *HostSpec
	mu   sync.Mutex
	conn transport.Conn
}

var _ transport.Conn = (*redialing)(nil)

func (r *redialing) current() transport.Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conn
}

// again returns a new connection when err says that c was found closed
// before anything ran on it.
func (r *redialing) again(ctx context.Context, c transport.Conn, err error) (transport.Conn, bool, error) {
	var closed *transport.ClosedError
	if !errors.As(err, &closed) {
		return nil, false, nil
	}
	r.p.drop(r.h, c)
	fresh, derr := r.p.conn(ctx, r.h)
	if derr != nil {
		return nil, true, derr
	}
	r.mu.Lock()
	r.conn = fresh
	r.mu.Unlock()
	return fresh, true, nil
}

// redial runs op on the connection, and once more on a new one when the
// first was found closed before anything ran.
func redial[T any](ctx context.Context, r *redialing, op func(transport.Conn) (T, error)) (T, error) {
	c := r.current()
	v, err := op(c)
	if err == nil {
		return v, nil
	}
	fresh, retry, derr := r.again(ctx, c, err)
	switch {
	case !retry:
		return v, err
	case derr != nil:
		var zero T
		return zero, derr
	}
	return op(fresh)
}

func (r *redialing) Run(ctx context.Context, c *transport.Command) (*transport.Output, error) {
	return redial(ctx, r, func(conn transport.Conn) (*transport.Output, error) { return conn.Run(ctx, c) })
}

func (r *redialing) ReadFile(ctx context.Context, path string) ([]byte, error) {
	return redial(ctx, r, func(conn transport.Conn) ([]byte, error) { return conn.ReadFile(ctx, path) })
}

func (r *redialing) Stat(ctx context.Context, path string) (*transport.FileInfo, error) {
	return redial(ctx, r, func(conn transport.Conn) (*transport.FileInfo, error) { return conn.Stat(ctx, path) })
}

func (r *redialing) Resolve(ctx context.Context, path string) (string, error) {
	return redial(ctx, r, func(conn transport.Conn) (string, error) { return conn.Resolve(ctx, path) })
}

func (r *redialing) WriteFile(ctx context.Context, path string, data []byte, opt transport.WriteOptions) error {
	_, err := redial(ctx, r, func(conn transport.Conn) (struct{}, error) { return struct{}{}, conn.WriteFile(ctx, path, data, opt) })
	return err
}

func (r *redialing) Remove(ctx context.Context, path string) error {
	_, err := redial(ctx, r, func(conn transport.Conn) (struct{}, error) { return struct{}{}, conn.Remove(ctx, path) })
	return err
}

func (r *redialing) MkdirAll(ctx context.Context, path string) error {
	_, err := redial(ctx, r, func(conn transport.Conn) (struct{}, error) { return struct{}{}, conn.MkdirAll(ctx, path) })
	return err
}

func (r *redialing) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return redial(ctx, r, func(conn transport.Conn) (net.Conn, error) { return conn.Dial(ctx, network, addr) })
}

func (r *redialing) Stream(ctx context.Context, c *transport.Command) (net.Conn, error) {
	return redial(ctx, r, func(conn transport.Conn) (net.Conn, error) { return conn.Stream(ctx, c) })
}

// Close closes the pooled connection (as the connection itself would).
func (r *redialing) Close() error { return r.current().Close() }

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
