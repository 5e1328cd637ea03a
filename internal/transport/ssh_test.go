package transport_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/internal/testnet"
	"github.com/runbook-dev/runbook/internal/testsshd"
	"github.com/runbook-dev/runbook/internal/transport"
)

func dial(t *testing.T, s *testsshd.Server, mod ...func(*transport.SSHConfig)) (*transport.SSH, error) {
	t.Helper()
	cfg := transport.SSHConfig{Name: "test", Address: s.Host, Port: s.Port, User: "root", IdentityFiles: []string{s.IdentityFile}, KnownHosts: []string{s.KnownHosts}}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := transport.DialSSH(context.Background(), cfg)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func mustDial(t *testing.T, s *testsshd.Server) *transport.SSH {
	t.Helper()
	c, err := dial(t, s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSSHRun(t *testing.T) {
	s := testsshd.Start(t)
	c := mustDial(t, s)
	ctx := context.Background()
	out, err := c.Run(ctx, &transport.Command{Line: `echo out; echo err >&2; read x; echo "got $x"; exit 3`, Stdin: []byte("line\n")})
	if err != nil {
		t.Fatal(err)
	}
	if out.ExitCode != 3 || string(out.Stdout) != "out\ngot line\n" || string(out.Stderr) != "err\n" {
		t.Errorf("got exit %d stdout %q stderr %q", out.ExitCode, out.Stdout, out.Stderr)
	}
	out, err = c.Run(ctx, &transport.Command{Line: "id -un", Become: "nobody"})
	if err != nil || strings.TrimSpace(string(out.Stdout)) != "nobody" {
		t.Errorf("become: %v %q %q", err, out.Stdout, out.Stderr)
	}
	// Cut at the limit, and back to the last whole line.
	out, err = c.Run(ctx, &transport.Command{Line: "yes 123456 | head -c 100000", MaxOutput: 1000})
	if err != nil || len(out.Stdout) != 994 || !out.Truncated || !strings.HasSuffix(string(out.Stdout), "123456\n") {
		t.Errorf("bounded output: %v len %d truncated %v", err, len(out.Stdout), out.Truncated)
	}
}

// TestSSHEnvNotOnCommandLine: environment values reach the command but no
// process's command line shows them.
func TestSSHEnvNotOnCommandLine(t *testing.T) {
	s := testsshd.Start(t)
	c := mustDial(t, s)
	const secret = "pw-4f9c2a\nsecond line 'quoted' $HOME"
	out, err := c.Run(context.Background(), &transport.Command{
		Line:   `printf '%s' "$PGPASSWORD" > ` + filepath.Join(s.Dir, "seen") + `; ps -eo args; cat`,
		Env:    map[string]string{"PGPASSWORD": secret},
		Stdin:  []byte("stdin still works"),
		Become: "root",
	})
	if err != nil {
		t.Fatal(err)
	}
	seen, _ := os.ReadFile(filepath.Join(s.Dir, "seen"))
	if string(seen) != secret {
		t.Errorf("the command saw %q, want %q", seen, secret)
	}
	if strings.Contains(string(out.Stdout), "pw-4f9c2a") {
		t.Errorf("the secret is visible in the process list:\n%s", out.Stdout)
	}
	if !strings.HasSuffix(string(out.Stdout), "stdin still works") {
		t.Errorf("stdin after the environment was lost: %q", out.Stdout)
	}
}

// TestSSHCancelKillsProcessGroup: a cancelled command and its children
// are gone from the host.
func TestSSHCancelKillsProcessGroup(t *testing.T) {
	s := testsshd.Start(t)
	c := mustDial(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Run(ctx, &transport.Command{Line: "sleep 317 & sleep 318; echo done"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Error("cancellation took too long")
	}
	time.Sleep(200 * time.Millisecond)
	out, err := c.Run(context.Background(), &transport.Command{Line: "ps -eo pid,pgid,args | grep [s]leep.31 || true"})
	if err != nil {
		t.Fatal(err)
	}
	if pids := strings.TrimSpace(string(out.Stdout)); pids != "" {
		t.Errorf("processes survived cancellation: %s", pids)
	}
}

// TestSSHSimpleCommand: a one-command line, exec'd by the login shell
// without /bin/sh -c, keeps its arguments word for word, its exit status,
// and stays killable.
func TestSSHSimpleCommand(t *testing.T) {
	s := testsshd.Start(t)
	c := mustDial(t, s)
	out, err := c.Run(context.Background(), &transport.Command{Line: `printf '%s|' 'a b' 'it'\''s' "$HOME" x=1`})
	if err != nil {
		t.Fatal(err)
	}
	// Not simple (a double quote): run by /bin/sh -c, which expands $HOME.
	if got := string(out.Stdout); !strings.HasPrefix(got, "a b|it's|/") || !strings.HasSuffix(got, "|x=1|") {
		t.Errorf("stdout %q", got)
	}
	out, err = c.Run(context.Background(), &transport.Command{Line: `printf '%s|' 'a b' '$HOME' x=1`})
	if err != nil || string(out.Stdout) != "a b|$HOME|x=1|" {
		t.Errorf("simple: %q %v", out.Stdout, err)
	}
	out, err = c.Run(context.Background(), &transport.Command{Line: "false"})
	if err != nil || out.ExitCode != 1 {
		t.Errorf("false: exit %d %v", out.ExitCode, err)
	}
	// Builtins with the program's meaning are run by the login shell
	// itself, with the same exit statuses.
	for line, want := range map[string]int{":": 0, "true": 0, "test -d '/'": 0, "test -f '/nonexistent'": 1} {
		out, err = c.Run(context.Background(), &transport.Command{Line: line})
		if err != nil || out.ExitCode != want {
			t.Errorf("%s: exit %d %v, want %d", line, out.ExitCode, err, want)
		}
	}
	// Started reports the process group the command runs in.
	var pgid int
	out, err = c.Run(context.Background(), &transport.Command{Line: "ps -o pgid= -p $$", Started: func(p int) { pgid = p }})
	if err != nil || pgid == 0 || strings.TrimSpace(string(out.Stdout)) != strconv.Itoa(pgid) {
		t.Errorf("Started gave %d, the command's group is %q (%v)", pgid, out.Stdout, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Run(ctx, &transport.Command{Line: "sleep 319"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
	time.Sleep(200 * time.Millisecond)
	out, _ = c.Run(context.Background(), &transport.Command{Line: "ps -eo pid,args | grep [s]leep.319 || true"})
	if pids := strings.TrimSpace(string(out.Stdout)); pids != "" {
		t.Errorf("a simple command survived cancellation: %s", pids)
	}
}

func TestSSHFiles(t *testing.T) {
	s := testsshd.Start(t)
	c := mustDial(t, s)
	ctx := context.Background()
	p := filepath.Join(s.Dir, "conf", "postgresql.conf")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadFile(ctx, p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist", err)
	}
	if err := os.WriteFile(p, []byte("old\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 101, 104); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteFile(ctx, p, []byte("new\n"), transport.WriteOptions{Mode: 0o600, UID: -1, GID: -1}); err != nil {
		t.Fatal(err)
	}
	got, err := c.ReadFile(ctx, p)
	if err != nil || string(got) != "new\n" {
		t.Fatalf("read back %q %v", got, err)
	}
	st, err := c.Stat(ctx, p)
	if err != nil || st.Mode != 0o640 || st.UID != 101 || st.GID != 104 {
		t.Errorf("stat after write: %+v %v (want mode 0640 owner 101:104 kept)", st, err)
	}
	// Replace: the mode and group asked for win over the old file's.
	if err := c.WriteFile(ctx, p, []byte("newer\n"), transport.WriteOptions{Mode: 0o600, UID: -1, GID: 4242, Replace: true}); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Stat(ctx, p); err != nil || st.Mode != 0o600 || st.UID != 101 || st.GID != 4242 {
		t.Errorf("stat after a write with Replace: %+v %v (want mode 0600 owner 101:4242)", st, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if err := c.Remove(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, p); err != nil {
		t.Errorf("removing a missing file: %v", err)
	}
}

func TestSSHDial(t *testing.T) {
	s := testsshd.Start(t)
	c := mustDial(t, s)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		conn, err := l.Accept()
		if err == nil {
			_, _ = conn.Write([]byte("hello through the tunnel"))
			conn.Close()
		}
	}()
	nc, err := c.Dial(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(nc)
	if string(b) != "hello through the tunnel" {
		t.Errorf("got %q", b)
	}
}

func TestSSHHostKeys(t *testing.T) {
	s := testsshd.Start(t)
	// Unknown host key: refused, naming the host and the fingerprint.
	empty := filepath.Join(t.TempDir(), "known_hosts")
	_, err := dial(t, s, func(c *transport.SSHConfig) { c.KnownHosts = []string{empty}; c.Name = "pg1" })
	var hk *transport.HostKeyError
	if !errors.As(err, &hk) || hk.Changed || !strings.Contains(err.Error(), "pg1") || !strings.Contains(err.Error(), "SHA256:") {
		t.Fatalf("unknown key: %v", err)
	}
	// Trust on first use records the key; the next connection is strict.
	if _, err := dial(t, s, func(c *transport.SSHConfig) { c.KnownHosts = []string{empty}; c.AcceptNewHostKeys = true }); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, s, func(c *transport.SSHConfig) { c.KnownHosts = []string{empty} }); err != nil {
		t.Fatalf("the accepted key was not recorded: %v", err)
	}
	// A changed key is refused, even with AcceptNewHostKeys.
	other := filepath.Join(t.TempDir(), "known_hosts")
	line := strings.Replace(s.HostKeyLine, s.HostKeyLine[strings.LastIndex(s.HostKeyLine, " ")+1:], "AAAAC3NzaC1lZDI1NTE5AAAAIBZ8wLC6fvNnWzmHvUZ5l2QbQ9d2j3iMkH0nzlJ1Tq2u", 1)
	if err := os.WriteFile(other, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = dial(t, s, func(c *transport.SSHConfig) { c.KnownHosts = []string{other}; c.AcceptNewHostKeys = true })
	if !errors.As(err, &hk) || !hk.Changed || !strings.Contains(err.Error(), "does NOT match") {
		t.Fatalf("changed key: %v", err)
	}
}

func TestSSHAuthError(t *testing.T) {
	s := testsshd.Start(t)
	wrongKey := filepath.Join(t.TempDir(), "id")
	if err := os.WriteFile(wrongKey, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := dial(t, s, func(c *transport.SSHConfig) { c.IdentityFiles = []string{wrongKey} })
	var ae *transport.AuthError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "authentication to test as root failed") || transport.IsUnreachable(err) {
		t.Fatalf("auth: %v", err)
	}
}

// TestSSHDownMeansNothingAnswers: only an address where nothing answers is
// unreachable; a refused connection and a port that accepts but never
// speaks SSH (a hung sshd) are errors of a machine that is up.
func TestSSHDownMeansNothingAnswers(t *testing.T) {
	s := testsshd.Start(t)
	at := func(addr string) func(*transport.SSHConfig) {
		host, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		return func(c *transport.SSHConfig) { c.Address, c.Port, c.ConnectTimeout = host, p, 700*time.Millisecond }
	}
	// unconnected: no connection was made (what tolerate: [unreachable]
	// covers), though only silence is a machine that is down.
	cases := []struct {
		name, addr               string
		unreachable, unconnected bool
		stage                    string
	}{
		{"silent", testnet.SilentAddr(t), true, true, ""},
		{"refused", testnet.ClosedAddr(t), false, true, "connect"},
		{"hung sshd", testnet.HungAddr(t), false, false, "handshake"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := dial(t, s, at(c.addr))
			if err == nil {
				t.Fatal("connected")
			}
			if transport.IsUnreachable(err) != c.unreachable {
				t.Fatalf("IsUnreachable = %v, want %v: %v", !c.unreachable, c.unreachable, err)
			}
			if transport.Unconnected(err) != c.unconnected {
				t.Fatalf("Unconnected = %v, want %v: %v", !c.unconnected, c.unconnected, err)
			}
			var se *transport.SessionError
			if !c.unreachable && (!errors.As(err, &se) || se.Stage != c.stage || !strings.Contains(err.Error(), "the machine is up")) {
				t.Fatalf("want a SessionError at %s saying the machine is up, got %v", c.stage, err)
			}
		})
	}
	// A name that does not resolve: nothing was asked, so nothing is said
	// of the machine (not "up", not "down"), and no connection was made.
	t.Run("no such name", func(t *testing.T) {
		_, err := dial(t, s, func(c *transport.SSHConfig) {
			c.Address, c.ConnectTimeout = "no-such-host.invalid", 700*time.Millisecond
		})
		var re *transport.ResolveError
		if !errors.As(err, &re) || transport.IsUnreachable(err) || !transport.Unconnected(err) ||
			!strings.Contains(err.Error(), "its address no-such-host.invalid does not resolve") || strings.Contains(err.Error(), "is up") {
			t.Fatalf("want a ResolveError naming the address, got %v", err)
		}
	})
}

// TestSSHManyAgentKeys: an ssh-agent holding more keys than sshd's
// MaxAuthTries (6) before the right one. The inventory's identity file is
// offered first, through the agent, so the connection succeeds; without it
// the failure is an authentication error that says what to do, never
// "unreachable".
func TestSSHManyAgentKeys(t *testing.T) {
	s := testsshd.Start(t)
	dir := t.TempDir()
	sock := startAgent(t, dir)
	for i := range 7 {
		k := filepath.Join(dir, "other"+strconv.Itoa(i))
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, out)
		}
		sshAdd(t, sock, k)
	}
	t.Setenv("SSH_AUTH_SOCK", sock)
	_, err := dial(t, s, func(c *transport.SSHConfig) { c.IdentityFiles = nil })
	var ae *transport.AuthError
	if !errors.As(err, &ae) || transport.IsUnreachable(err) || !strings.Contains(err.Error(), "MaxAuthTries") {
		t.Fatalf("seven wrong agent keys: %v, want an authentication error naming MaxAuthTries", err)
	}
	sshAdd(t, sock, s.IdentityFile)
	c, err := dial(t, s)
	if err != nil {
		t.Fatalf("the identity file's key, in the agent after seven others: %v", err)
	}
	if out, err := c.Run(context.Background(), &transport.Command{Line: "true"}); err != nil || out.ExitCode != 0 {
		t.Fatalf("run: %v", err)
	}
}

// TestSSHClosedByHost: once the host closes the connection (its sshd
// serving it is gone, as after a reboot or an sshd restart), opening a
// session or reading a file on it is a *ClosedError (nothing ran; a new
// connection may be tried), not a connection lost under a command, and the
// connection reports itself closed so that the pool dials a new one.
func TestSSHClosedByHost(t *testing.T) {
	s := testsshd.Start(t)
	c := mustDial(t, s)
	if _, err := c.Run(context.Background(), &transport.Command{Line: `kill -9 "$PPID"`}); err == nil {
		t.Fatal("the command that closed its connection reported no error")
	}
	var closed *transport.ClosedError
	_, err := c.Run(context.Background(), &transport.Command{Line: "true"})
	if !errors.As(err, &closed) || !strings.Contains(err.Error(), "nothing was run") {
		t.Fatalf("run on the closed connection: %v, want a *ClosedError", err)
	}
	if !c.Closed() {
		t.Fatal("the connection the host closed does not report itself closed")
	}
	if _, err := c.ReadFile(context.Background(), "/etc/hostname"); !errors.As(err, &closed) {
		t.Fatalf("read on the closed connection: %v, want a *ClosedError", err)
	}
}
