package transport

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// streamConn makes a command's standard input and output a net.Conn, so
// that a protocol client (pgx) can talk through a relay process.
type streamConn struct {
	w      io.WriteCloser
	r      io.Reader
	closer func() error
	once   sync.Once
	mu     sync.Mutex
	timer  *time.Timer
	err    error
}

func (c *streamConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *streamConn) Write(p []byte) (int, error) { return c.w.Write(p) }

func (c *streamConn) Close() error {
	c.once.Do(func() {
		_ = c.w.Close()
		c.err = c.closer()
	})
	return c.err
}

func (c *streamConn) LocalAddr() net.Addr  { return streamAddr{} }
func (c *streamConn) RemoteAddr() net.Addr { return streamAddr{} }

// SetDeadline closes the stream when the deadline passes: a pipe cannot
// time out a single read, and clients set a deadline to interrupt a read
// when their context ends, after which the connection is done anyway.
func (c *streamConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if t.IsZero() {
		return nil
	}
	d := time.Until(t)
	if d <= 0 {
		go c.Close()
		return nil
	}
	c.timer = time.AfterFunc(d, func() { _ = c.Close() })
	return nil
}

func (c *streamConn) SetReadDeadline(t time.Time) error  { return c.SetDeadline(t) }
func (c *streamConn) SetWriteDeadline(t time.Time) error { return c.SetDeadline(t) }

type streamAddr struct{}

func (streamAddr) Network() string { return "stream" }
func (streamAddr) String() string  { return "command stream" }

// ErrNoRelay is returned when a host has no program to relay a socket.
var ErrNoRelay = errors.New("no relay program (perl) on the host")

// UnixRelay is a command that connects its standard input and output to a
// Unix socket. It uses perl, which Debian installs everywhere (perl-base)
// and RHEL hosts have, so that nothing needs installing on a database
// host. Run as the database's OS user, it gives PostgreSQL's peer
// authentication the identity sudo -u postgres psql would have.
func UnixRelay(socket string) string {
	const script = `use IO::Socket::UNIX; use IO::Select; $|=1;` +
		`my $s=IO::Socket::UNIX->new(Peer=>$ARGV[0]) or die "connect $ARGV[0]: $!\n";` +
		`binmode STDIN; binmode STDOUT; my $sel=IO::Select->new(\*STDIN,$s);` +
		`while(my @r=$sel->can_read){for my $h (@r){my $n=sysread($h,my $b,65536);exit 0 unless $n;` +
		`if($h==$s){syswrite(STDOUT,$b)}else{syswrite($s,$b)}}}`
	return "exec perl -e " + quote(script) + " " + quote(socket)
}
