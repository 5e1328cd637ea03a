// Package testnet gives tests addresses on loopback that behave like the
// network faults a guard must tell apart: a machine that does not answer at
// all, and one whose port accepts connections but never speaks.
package testnet

import (
	"fmt"
	"net"
	"syscall"
	"testing"
)

// SilentAddr returns a loopback host:port at which nothing answers: a
// connection attempt times out, as to a machine that is powered off. It is
// a listening socket whose accept queue is full (backlog 0 holds one
// connection, which SilentAddr makes and keeps): Linux then drops every new
// SYN without a reply (tcp_abort_on_overflow is 0 by default, tcp(7)), so
// nothing, not even a reset, comes back. It is a stand-in for a machine
// that is down; the sockets are closed when the test ends.
func SilentAddr(t testing.TB) string {
	t.Helper()
	return mustAddr(t, Silent)
}

// Silent is SilentAddr for callers without a testing.TB (testscript's
// Setup): cleanup registers what closes the sockets.
func Silent(cleanup func(func())) (string, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return "", err
	}
	if err := syscall.Listen(fd, 0); err != nil {
		return "", err
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	filler, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	cleanup(func() { filler.Close() })
	return addr, nil
}

// HungAddr returns a loopback host:port that accepts TCP connections and
// never sends a byte, as the port of a hung sshd or PostgreSQL does (the
// kernel completes the handshake for a process that no longer reads).
func HungAddr(t testing.TB) string {
	t.Helper()
	return mustAddr(t, Hung)
}

// Hung is HungAddr for callers without a testing.TB.
func Hung(cleanup func(func())) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	cleanup(func() { l.Close(); <-done })
	return l.Addr().String(), nil
}

// ClosedAddr returns a loopback host:port where nothing listens: a
// connection is refused at once (the machine answers with a reset).
func ClosedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// mustAddr is the address open makes, closed when the test ends; a failure
// to make it fails the test.
func mustAddr(t testing.TB, open func(cleanup func(func())) (string, error)) string {
	t.Helper()
	addr, err := open(t.Cleanup)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
