package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// NoNeighbourError is a TCP connection attempt that this machine's own
// kernel ended because no machine answered its ARP (IPv4) or neighbour
// discovery (IPv6) requests for an address on a directly attached link:
// the only "unreachable" that says no machine has the address. The same
// EHOSTUNREACH also comes from an ICMP message sent by a router or by the
// host itself (a firewall's REJECT, icmp-host-unreachable or
// -prohibited, from a live machine), from a route of type prohibit or
// unreachable, or from a local "no route" (ENETUNREACH): those are not a
// NoNeighbourError. DialTCP tells them apart by the ICMP error the kernel
// queues on the socket (IP_RECVERR): the kernel's own neighbour failure is
// an ICMP "host unreachable" (IPv6: "address unreachable") whose sender is
// an address of this machine, about an address on one of its links.
type NoNeighbourError struct {
	// Addr is the host:port dialled.
	Addr string
	Err  error
}

func (e *NoNeighbourError) Error() string {
	return fmt.Sprintf("%v (no machine answered ARP or neighbour discovery for %s on this machine's link)", e.Err, e.Addr)
}

func (e *NoNeighbourError) Unwrap() error { return e.Err }

// DialTCP dials addr (host:port) with d over TCP, as d.DialContext does,
// and when the attempt fails with EHOSTUNREACH or EHOSTDOWN for every
// address it tried because this machine's kernel found no neighbour at
// them (see NoNeighbourError), returns a *NoNeighbourError wrapping the
// dial's error. d.Control and d.ControlContext are replaced. The
// connection returned has IP_RECVERR off again (with it on, Linux turns a
// soft ICMP error on an established TCP connection into a hard one).
func DialTCP(ctx context.Context, d net.Dialer, addr string) (net.Conn, error) {
	var mu sync.Mutex
	// One duplicate descriptor per socket tried: the dial closes its own
	// descriptor when the connection fails, and the ICMP error queued on
	// the socket is read through the duplicate afterwards.
	var dups []int
	// closed: a late attempt (the other address family's, still running
	// when the dial returned) closes its duplicate at once.
	closed := false
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		closed = true
		for _, fd := range dups {
			unix.Close(fd)
		}
	}()
	d.Control = nil
	d.ControlContext = func(_ context.Context, network, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = setRecvErr(int(fd), network, 1); serr != nil {
				return
			}
			dup, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				serr = err
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if closed {
				unix.Close(dup)
				return
			}
			dups = append(dups, dup)
		})
		if err != nil {
			return err
		}
		return serr
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		if rc, rerr := c.(*net.TCPConn).SyscallConn(); rerr == nil {
			_ = rc.Control(func(fd uintptr) { _ = setRecvErr(int(fd), c.RemoteAddr().Network()+family(c.RemoteAddr()), 0) })
		}
		return c, nil
	}
	if !errors.Is(err, syscall.EHOSTUNREACH) && !errors.Is(err, syscall.EHOSTDOWN) {
		return nil, err
	}
	mu.Lock()
	tried := slices.Clone(dups)
	mu.Unlock()
	if len(tried) == 0 {
		return nil, err
	}
	all := true
	for _, fd := range tried {
		switch icmpSender(fd) {
		case senderTarget:
			return nil, &RejectedError{Addr: addr, Err: err}
		case senderOther:
			all = false
		}
	}
	if !all {
		return nil, err
	}
	return nil, &NoNeighbourError{Addr: addr, Err: err}
}

// RejectedError is a TCP connection attempt answered by an ICMP
// "unreachable" from the very address dialled: a live machine whose
// firewall rejects the connection (REJECT --reject-with
// icmp-host-unreachable, -host-prohibited, -admin-prohibited). The
// machine is up; Silent is false for it.
type RejectedError struct {
	// Addr is the host:port dialled.
	Addr string
	Err  error
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("%v (an ICMP message from %s itself: a live machine whose firewall rejects the connection)", e.Err, e.Addr)
}

func (e *RejectedError) Unwrap() error { return e.Err }

// Who sent the ICMP error queued on a socket.
const (
	senderOther     = iota // a router, a local route, nothing queued
	senderNeighbour        // this machine's kernel: no neighbour on the link
	senderTarget           // the address dialled itself
)

func family(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok && t.IP.To4() == nil {
		return "6"
	}
	return "4"
}

// setRecvErr sets IP_RECVERR (IPV6_RECVERR on an IPv6 socket) to on.
func setRecvErr(fd int, network string, on int) error {
	if network == "tcp6" {
		return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVERR, on)
	}
	return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVERR, on)
}

// icmpSender reads the errors queued on the socket fd and says who sent
// the ICMP "unreachable" among them: this machine's kernel after its own
// neighbour failure (an ICMP host unreachable, ICMPv6 address
// unreachable, from an address of this machine about an address on one
// of its attached networks), the address dialled itself (any destination
// unreachable from it), or anyone else.
func icmpSender(fd int) int {
	buf := make([]byte, 512)
	oob := make([]byte, 512)
	for range 8 {
		_, oobn, _, from, err := unix.Recvmsg(fd, buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err != nil {
			return senderOther
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return senderOther
		}
		target, ok := sockaddrIP(from)
		if !ok {
			continue
		}
		for _, m := range msgs {
			v4 := m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_RECVERR
			v6 := m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_RECVERR
			if !v4 && !v6 || len(m.Data) < sizeofSockExtendedErr {
				continue
			}
			ee := (*unix.SockExtendedErr)(unsafe.Pointer(&m.Data[0]))
			unreach := v4 && ee.Origin == unix.SO_EE_ORIGIN_ICMP && ee.Type == 3 ||
				v6 && ee.Origin == unix.SO_EE_ORIGIN_ICMP6 && ee.Type == 1
			if !unreach {
				continue
			}
			// The offender (who sent the ICMP) follows the structure.
			sender, ok := offender(m.Data[sizeofSockExtendedErr:])
			if !ok {
				continue
			}
			if sender == target {
				return senderTarget
			}
			host := v4 && ee.Code == 1 || v6 && ee.Code == 3
			if host && isLocal(sender) && onLink(target) {
				return senderNeighbour
			}
		}
	}
	return senderOther
}

// offender parses the sockaddr after a sock_extended_err.
func offender(b []byte) (netip.Addr, bool) {
	if len(b) < 2 {
		return netip.Addr{}, false
	}
	switch fam := uint16(b[0]) | uint16(b[1])<<8; fam {
	case unix.AF_INET:
		if len(b) < 8 {
			return netip.Addr{}, false
		}
		return netip.AddrFrom4([4]byte(b[4:8])), true
	case unix.AF_INET6:
		if len(b) < 24 {
			return netip.Addr{}, false
		}
		return netip.AddrFrom16([16]byte(b[8:24])).Unmap(), true
	}
	return netip.Addr{}, false
}

func sockaddrIP(sa unix.Sockaddr) (netip.Addr, bool) {
	switch s := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(s.Addr), true
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(s.Addr).Unmap(), true
	}
	return netip.Addr{}, false
}

// isLocal reports whether a is an address of one of this machine's
// interfaces.
func isLocal(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, x := range addrs {
		if n, ok := x.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a {
				return true
			}
		}
	}
	return false
}

// onLink reports whether a is on a network attached to one of this
// machine's interfaces (so that its ARP or neighbour discovery asked for a
// itself, not for a router on the way).
func onLink(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, x := range addrs {
		n, ok := x.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ones, _ := n.Mask.Size()
		if p, err := ip.Unmap().Prefix(ones); err == nil && p.Contains(a) && !ip.IsLoopback() {
			return true
		}
	}
	return false
}

// sizeofSockExtendedErr is sizeof(struct sock_extended_err).
const sizeofSockExtendedErr = int(unsafe.Sizeof(unix.SockExtendedErr{}))
