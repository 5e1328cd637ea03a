package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHConfig says how to reach a host over SSH. Empty fields take OpenSSH's
// configuration (~/.ssh/config) and then the defaults.
type SSHConfig struct {
	// Name is the host's inventory name, used in messages.
	Name    string
	Address string
	Port    int
	User    string
	// IdentityFiles are offered first, through the agent when it holds
	// them; missing files are skipped.
	IdentityFiles []string
	// IdentitiesOnly offers only IdentityFiles, not the agent's other keys
	// (OpenSSH's IdentitiesOnly).
	IdentitiesOnly bool
	// KnownHosts are the files host keys are checked against; the first one
	// receives keys accepted with AcceptNewHostKeys.
	KnownHosts []string
	// AcceptNewHostKeys trusts the key of a host not yet in known_hosts on
	// first use and records it. A changed key is never accepted.
	AcceptNewHostKeys bool
	// HostKeyAlias is the name the host's keys are looked up and recorded
	// under in known_hosts instead of its address (OpenSSH's HostKeyAlias).
	HostKeyAlias string
	// ProxyJump is a jump host (user@host:port), as OpenSSH's ProxyJump.
	ProxyJump *SSHConfig
	// Passphrase asks for the passphrase of an encrypted key; nil when no
	// terminal is attached.
	Passphrase func(file string) ([]byte, error)
	// ConnectTimeout bounds the TCP connection and handshake.
	ConnectTimeout time.Duration
	// Keepalive is the interval of keepalive requests (default 15s;
	// OpenSSH's ServerAliveInterval).
	Keepalive time.Duration
	// KeepaliveMissed is how many intervals a keepalive may go unanswered
	// before the connection is closed as dead (default KeepaliveMissed;
	// OpenSSH's ServerAliveCountMax).
	KeepaliveMissed int
}

func (c *SSHConfig) addr() string {
	port := c.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(c.Address, strconv.Itoa(port))
}

// SSH is a connection to a host over SSH: one TCP connection, on which
// every command, file transfer and tunnel is a channel.
type SSH struct {
	cfg    SSHConfig
	client *ssh.Client
	jump   *ssh.Client
	asRoot bool

	sftpOnce sync.Once
	sftp     *sftp.Client
	sftpErr  error

	stop chan struct{}
	once sync.Once

	whyMu sync.Mutex
	// why is what closed the connection under its commands, if not Close.
	why error
}

var _ Conn = (*SSH)(nil)

// HostKeyError is a host key that is not known or does not match.
type HostKeyError struct {
	Host        string
	Addr        string
	Fingerprint string
	KeyType     string
	// Changed is true when a different key is known for the host.
	Changed   bool
	KnownFile string
	KnownLine int
}

func (e *HostKeyError) Error() string {
	if e.Changed {
		return fmt.Sprintf("host key of %s (%s) does NOT match known_hosts (%s:%d): it presents %s %s. Someone may be intercepting the connection, or the host was reinstalled; verify the new key out of band and replace the line",
			e.Host, e.Addr, e.KnownFile, e.KnownLine, e.KeyType, e.Fingerprint)
	}
	return fmt.Sprintf("host key of %s (%s) is not known: it presents %s %s. Verify it and add it to %s (ssh-keyscan), or run with --accept-new-host-keys to trust it on first use",
		e.Host, e.Addr, e.KeyType, e.Fingerprint, e.KnownFile)
}

// AuthError is a host that refused every key offered.
type AuthError struct {
	Host, User string
	Tried      []string
	Err        error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("authentication to %s as %s failed (tried %s): %v", e.Host, e.User, strings.Join(e.Tried, ", "), e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// DialSSH opens an SSH connection, verifying the host key strictly.
func DialSSH(ctx context.Context, cfg SSHConfig) (*SSH, error) {
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.KeepaliveMissed <= 0 {
		cfg.KeepaliveMissed = KeepaliveMissed
	}
	if cfg.Keepalive == 0 {
		cfg.Keepalive = 15 * time.Second
	}
	if cfg.User == "" {
		cfg.User = "root"
	}
	s := &SSH{cfg: cfg, stop: make(chan struct{}), asRoot: cfg.User == "root"}
	var jumpClient *ssh.Client
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		// DialTCP: a failure says whether no machine has the address
		// (NoMachine), which a REJECT from a live one does not.
		return DialTCP(ctx, net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}, addr)
	}
	if cfg.ProxyJump != nil {
		j, err := DialSSH(ctx, *cfg.ProxyJump)
		if err != nil {
			// %v, not %w: a jump host that does not answer says nothing
			// about the host behind it, which must not count as down.
			return nil, fmt.Errorf("jump host for %s: %v (the state of %s is unknown)", cfg.Name, err, cfg.Name)
		}
		jumpClient = j.client
		s.jump = j.client
		dial = func(ctx context.Context, addr string) (net.Conn, error) {
			return jumpClient.DialContext(ctx, "tcp", addr)
		}
	}
	client, err := s.handshake(ctx, dial)
	if err != nil {
		if jumpClient != nil {
			jumpClient.Close()
		}
		return nil, err
	}
	s.client = client
	go s.keepalive()
	go s.watch()
	return s, nil
}

// watch closes the connection as soon as the host closes it (a reboot, an
// sshd restart): the pool then opens a new one for the next step, instead
// of handing this one out until a keepalive goes unanswered.
func (s *SSH) watch() {
	err := s.client.Wait()
	if s.Closed() {
		return
	}
	if err == nil {
		err = io.EOF
	}
	s.closeBecause(fmt.Errorf("the host closed the connection (%v)", err))
}

func (s *SSH) handshake(ctx context.Context, dial func(context.Context, string) (net.Conn, error)) (*ssh.Client, error) {
	cfg := &s.cfg
	addr := cfg.addr()
	hostKey, algos, err := s.hostKeyCallback()
	if err != nil {
		return nil, err
	}
	auth, tried, closeAgent := s.authMethods()
	defer closeAgent()
	clientCfg := &ssh.ClientConfig{
		User:              cfg.User,
		Auth:              auth,
		HostKeyCallback:   hostKey,
		HostKeyAlgorithms: algos,
		Timeout:           cfg.ConnectTimeout,
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	nc, err := dial(ctx, addr)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			// Before Silent: a DNS server that does not answer is a
			// timeout, and says nothing of the machine.
			return nil, &ResolveError{Host: cfg.Name, Name: cfg.Address, Err: dnsErr}
		}
		if Silent(err) || jumpSilent(err) {
			u := &UnreachableError{Host: cfg.Name, Addr: addr, Err: err}
			if cfg.ProxyJump != nil {
				u.Via = cfg.ProxyJump.Name
			}
			return nil, u
		}
		return nil, &SessionError{Host: cfg.Name, Addr: addr, Stage: "connect", Err: err}
	}
	// The handshake has no context: a deadline on the socket bounds it.
	_ = nc.SetDeadline(time.Now().Add(cfg.ConnectTimeout))
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = nc.Close()
		case <-done:
		}
	}()
	c, chans, reqs, err := ssh.NewClientConn(nc, addr, clientCfg)
	close(done)
	if err != nil {
		nc.Close()
		var hk *HostKeyError
		var rk *RevokedKeyError
		switch {
		case errors.As(err, &hk):
			return nil, hk
		case errors.As(err, &rk):
			return nil, rk
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, &AuthError{Host: cfg.Name, User: cfg.User, Tried: tried, Err: errors.New("no key was accepted")}
		case strings.Contains(err.Error(), "Too many authentication failures"):
			return nil, &AuthError{Host: cfg.Name, User: cfg.User, Tried: tried, Err: errors.New("the server closed the connection after too many keys were offered (its MaxAuthTries): name the host's key with identity_file in the inventory or IdentityFile in ~/.ssh/config (offered first), or set IdentitiesOnly yes to offer no other agent key")}
		case ctx.Err() != nil || Silent(err):
			// The port accepted the connection: something listens there,
			// so the machine is up even if its sshd never speaks.
			return nil, &SessionError{Host: cfg.Name, Addr: addr, Stage: "handshake", Err: fmt.Errorf("the port accepted the connection but no SSH handshake finished within %s", cfg.ConnectTimeout)}
		}
		return nil, &SessionError{Host: cfg.Name, Addr: addr, Stage: "handshake", Err: err}
	}
	_ = nc.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// hostKeyCallback verifies host keys against the known_hosts files as
// OpenSSH does (see knownHosts) and returns the key algorithms to ask for,
// so that the server is asked for a key that can be checked rather than
// whichever it prefers.
func (s *SSH) hostKeyCallback() (ssh.HostKeyCallback, []string, error) {
	cfg := &s.cfg
	var files []string
	for _, f := range cfg.KnownHosts {
		files = append(files, ExpandHome(f))
	}
	primary := ExpandHome("~/.ssh/known_hosts")
	if len(files) > 0 {
		primary = files[0]
	}
	kh, err := loadKnownHosts(files)
	if err != nil {
		return nil, nil, err
	}
	addr := cfg.addr()
	var mu sync.Mutex
	cb := func(_ string, _ net.Addr, key ssh.PublicKey) error {
		err := kh.check(cfg, addr, key)
		var hk *HostKeyError
		if err == nil || !errors.As(err, &hk) {
			return err
		}
		if hk.KnownFile == "" {
			hk.KnownFile = primary
		}
		if hk.Changed || !cfg.AcceptNewHostKeys {
			return hk
		}
		if _, ok := key.(*ssh.Certificate); ok {
			// Trust on first use records a plain key, never a certificate.
			return hk
		}
		mu.Lock()
		defer mu.Unlock()
		name, _, _ := lookupNames(cfg, addr)
		return appendKnownHost(primary, name, key)
	}
	return cb, kh.algorithms(cfg, addr), nil
}

// appendKnownHost records key for the host name known_hosts looks it up
// by ([host]:port, or its HostKeyAlias).
func appendKnownHost(file, name string, key ssh.PublicKey) error {
	if err := os.MkdirAll(path.Dir(file), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintln(f, knownhosts.Line([]string{name}, key))
	return err
}

// authMethods offers the agent's keys first, then the identity files.
// authMethods returns the keys to offer, in OpenSSH's order: the identity
// files' keys first (through the agent when it holds them, so their
// passphrase is not asked), then the agent's other keys unless
// IdentitiesOnly. sshd counts every key offered against its MaxAuthTries
// (6 by default) and disconnects after that many (sshd_config(5)), so an
// agent full of keys must not come before the one the host expects.
func (s *SSH) authMethods() ([]ssh.AuthMethod, []string, func()) {
	var tried []string
	closer := func() {}
	var agentKeys []ssh.Signer
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if c, err := net.Dial("unix", sock); err == nil {
			closer = func() { c.Close() }
			if keys, err := agent.NewClient(c).Signers(); err == nil {
				agentKeys = keys
			}
			tried = append(tried, fmt.Sprintf("ssh-agent (%d keys)", len(agentKeys)))
		}
	}
	inAgent := func(pub ssh.PublicKey) ssh.Signer {
		for _, k := range agentKeys {
			if bytes.Equal(k.PublicKey().Marshal(), pub.Marshal()) {
				return k
			}
		}
		return nil
	}
	var signers []ssh.Signer
	used := map[string]bool{}
	// A certificate beside an identity (ID-cert.pub) is offered before the
	// key itself, as OpenSSH loads it (ssh_config(5), IdentityFile).
	withCert := func(f string, k ssh.Signer) {
		if c, ok := readPublicKey(f + "-cert.pub").(*ssh.Certificate); ok && bytes.Equal(c.Key.Marshal(), k.PublicKey().Marshal()) {
			if cs, err := ssh.NewCertSigner(c, k); err == nil {
				signers = append(signers, cs)
				tried = append(tried, f+"-cert.pub")
			}
		}
	}
	for _, f := range s.cfg.IdentityFiles {
		f = ExpandHome(f)
		if pub := identityPublicKey(f); pub != nil {
			if k := inAgent(pub); k != nil {
				withCert(f, k)
				signers = append(signers, k)
				used[string(pub.Marshal())] = true
				tried = append(tried, f+" (from the agent)")
				continue
			}
		}
		signer, err := s.loadIdentity(f)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				tried = append(tried, f+" (unusable: "+err.Error()+")")
			}
			continue
		}
		if k := inAgent(signer.PublicKey()); k != nil {
			signer = k
		}
		withCert(f, signer)
		used[string(signer.PublicKey().Marshal())] = true
		signers = append(signers, signer)
		tried = append(tried, f)
	}
	if !s.cfg.IdentitiesOnly {
		for _, k := range agentKeys {
			if !used[string(k.PublicKey().Marshal())] {
				signers = append(signers, k)
			}
		}
	}
	if len(tried) == 0 {
		tried = append(tried, "no agent and no identity file")
	}
	var methods []ssh.AuthMethod
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
	}
	return methods, tried, closer
}

// readPublicKey reads an OpenSSH public key file; nil when there is none.
func readPublicKey(path string) ssh.PublicKey {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return nil
	}
	return pub
}

// identityPublicKey returns the public key of the identity f without its
// passphrase: from f.pub, or, as OpenSSH does when that file is missing,
// from the private key file itself (an OpenSSH-format key keeps its public
// part unencrypted). nil when neither gives it.
func identityPublicKey(f string) ssh.PublicKey {
	if pub := readPublicKey(f + ".pub"); pub != nil {
		return pub
	}
	b, err := os.ReadFile(f)
	if err != nil {
		return nil
	}
	_, err = ssh.ParsePrivateKey(b)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return missing.PublicKey
	}
	return nil
}

// loadIdentity reads a private key, asking for its passphrase when it is
// encrypted and a terminal can ask.
func (s *SSH) loadIdentity(f string) (ssh.Signer, error) {
	b, err := os.ReadFile(f)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(b)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) && s.cfg.Passphrase != nil {
		pass, perr := s.cfg.Passphrase(f)
		if perr != nil {
			return nil, perr
		}
		signer, err = ssh.ParsePrivateKeyWithPassphrase(b, pass)
	}
	return signer, err
}

// KeepaliveMissed is how many keepalive intervals a host may leave a
// request unanswered, by default, before its connection is closed as dead
// (OpenSSH's ServerAliveCountMax defaults to 3 as well).
const KeepaliveMissed = 3

// keepalive asks the server for an answer every interval, and closes the
// connection when one does not come within KeepaliveMissed intervals: a
// frozen host (a stopped VM, a hung sshd) would otherwise hold every
// command on it forever. Commands then end with a lost connection.
func (s *SSH) keepalive() {
	t := time.NewTicker(s.cfg.Keepalive)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		done := make(chan error, 1)
		go func() {
			_, _, err := s.client.SendRequest("keepalive@openssh.com", true, nil)
			done <- err
		}()
		bound := time.Duration(s.cfg.KeepaliveMissed) * s.cfg.Keepalive
		limit := time.NewTimer(bound)
		select {
		case <-s.stop:
			limit.Stop()
			return
		case err := <-done:
			limit.Stop()
			if err != nil {
				s.closeBecause(fmt.Errorf("keepalive: %w", err))
				return
			}
		case <-limit.C:
			s.closeBecause(fmt.Errorf("the host stopped answering: no reply to keepalives for %s", bound))
			return
		}
	}
}

// closeBecause closes the connection and keeps why, for the errors of the
// commands it cuts short.
func (s *SSH) closeBecause(why error) {
	s.whyMu.Lock()
	if s.why == nil {
		s.why = why
	}
	s.whyMu.Unlock()
	s.Close()
}

// Closed reports whether the connection was closed (by Close, or because
// the host stopped answering): a new one must be opened.
func (s *SSH) Closed() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// Run runs a command in a new session of the connection. Cancelling ctx
// sends TERM to the command's process group, then closes the session.
func (s *SSH) Run(ctx context.Context, c *Command) (*Output, error) {
	line, stdin := c.Line, c.Stdin
	if len(c.Env) > 0 {
		if err := checkEnvNames(c.Env); err != nil {
			return nil, err
		}
		var pre []byte
		line, pre = envWrapper(line, c.Env)
		stdin = append(pre, stdin...)
	}
	line = killable(BecomeLine(line, c.Become, s.asRoot))
	sess, err := s.newSession(ctx)
	if err != nil {
		return nil, s.unopened(err)
	}
	defer sess.Close()
	stdout, stderr, over := outputBuffers(c)
	pw := newPIDWriter(stderr)
	pw.onPID = c.Started
	sess.Stdout, sess.Stderr = stdout, pw
	if stdin != nil {
		sess.Stdin = bytes.NewReader(stdin)
	}
	if err := sess.Start(line); err != nil {
		return nil, s.lost(err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-over.reached():
		s.stopReported(pw)
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			return nil, fmt.Errorf("the command printed more than its limit of %d bytes and did not stop when told to", stdout.max)
		}
	case <-ctx.Done():
		s.stopReported(pw)
		select {
		case <-done:
			pw.wait()
		case <-time.After(2 * time.Second):
		}
		return nil, context.Cause(ctx)
	}
	pw.wait()
	out, err := ended(stdout, stderr, err, sshExitCode)
	if err != nil {
		return nil, s.lost(err)
	}
	return out, nil
}

// sshExitCode is the exit status sshd reported, 128 + the signal's number
// for a command killed by a signal, as a shell reports it.
func sshExitCode(err error) (int, bool) {
	var exitErr *ssh.ExitError
	if !errors.As(err, &exitErr) {
		return 0, false
	}
	if exitErr.Signal() != "" {
		return 128 + signalNumber(exitErr.Signal()), true
	}
	return exitErr.ExitStatus(), true
}

// stopReported kills the process group of the command whose PID pw has
// reported. A shell that has not even reported its PID has started nothing
// yet, and closing the session ends it.
func (s *SSH) stopReported(pw *pidWriter) {
	select {
	case pid := <-pw.pid:
		s.killGroup(pid)
	default:
	}
}

// killGroup sends TERM, then KILL, to a session's process group, from a new
// session.
func (s *SSH) killGroup(pid int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, err := s.newSession(ctx)
	if err != nil {
		return
	}
	defer sess.Close()
	g := strconv.Itoa(pid)
	_ = sess.Run("kill -TERM -- -" + g + " 2>/dev/null; sleep 1; kill -KILL -- -" + g + " 2>/dev/null; true")
}

// lost describes a connection that broke under a command. The host had
// answered, so this is a SessionError, never "unreachable".
func (s *SSH) lost(err error) error {
	var missing *ssh.ExitMissingError
	if errors.Is(err, io.EOF) || errors.As(err, &missing) || strings.Contains(err.Error(), "connection") || s.Closed() {
		s.whyMu.Lock()
		why := s.why
		s.whyMu.Unlock()
		if why != nil {
			err = fmt.Errorf("%w (%v)", why, err)
		}
		return &SessionError{Host: s.cfg.Name, Addr: s.cfg.addr(), Stage: "session", Err: fmt.Errorf("connection lost: %w", err)}
	}
	return err
}

// alive says whether the connection still carries requests: a global
// request that the host answers. A host that does not answer within the
// connect timeout is taken as gone, as the keepalive would take it.
func (s *SSH) alive() bool {
	if s.Closed() {
		return false
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := s.client.SendRequest("keepalive@openssh.com", true, nil)
		done <- err
	}()
	t := time.NewTimer(s.cfg.ConnectTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err == nil
	case <-t.C:
		return false
	}
}

// unopened describes a session (or file transfer) that could not be
// opened, or a read-only transfer that failed. When the connection is
// gone (it no longer carries requests), nothing was started on the host:
// the connection is closed for good and a *ClosedError says a new one may
// be opened and the operation tried again. A session the host refused on
// a live connection (its MaxSessions) is reported as it is.
func (s *SSH) unopened(err error) error {
	var refused *ssh.OpenChannelError
	if errors.As(err, &refused) || s.alive() {
		return s.lost(err)
	}
	s.closeBecause(fmt.Errorf("the host closed the connection (%v)", err))
	return &ClosedError{Host: s.cfg.Name, Addr: s.cfg.addr(), Err: err}
}

// newSession opens a session, waiting while the host has as many open
// as it allows on one connection.
func (s *SSH) newSession(ctx context.Context) (sess *ssh.Session, err error) {
	err = s.whileSessionsFull(ctx, func() (err error) {
		sess, err = s.client.NewSession()
		return err
	})
	return sess, err
}

// whileSessionsFull calls open until it succeeds, fails otherwise than by
// the host's limit of sessions on one connection, or ctx ends. OpenSSH's
// sshd refuses a session past its MaxSessions (10 by default) with
// "open failed" (sshd_config(5), MaxSessions); runbook's facts, guards and
// steps on one host may run more at once, and each ends soon.
func (s *SSH) whileSessionsFull(ctx context.Context, open func() error) error {
	wait := 10 * time.Millisecond
	for {
		err := open()
		var oc *ssh.OpenChannelError
		if err == nil || !errors.As(err, &oc) || oc.Reason != ssh.ConnectionFailed || oc.Message != "open failed" || !s.alive() {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-s.stop:
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// jumpSilent reports whether a jump host said that nothing answered at the
// target: OpenSSH's sshd rejects the forwarding with the connect error's
// strerror text.
func jumpSilent(err error) bool {
	var oc *ssh.OpenChannelError
	if !errors.As(err, &oc) || oc.Reason != ssh.ConnectionFailed {
		return false
	}
	m := strings.ToLower(oc.Message)
	return strings.Contains(m, "timed out") || strings.Contains(m, "no route to host") || strings.Contains(m, "network is unreachable")
}

func signalNumber(sig string) int {
	switch sig {
	case "HUP":
		return 1
	case "INT":
		return 2
	case "KILL":
		return 9
	case "PIPE":
		return 13
	case "TERM":
		return 15
	}
	return 0
}

func (s *SSH) sftpClient() (*sftp.Client, error) {
	s.sftpOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.sftpErr = s.whileSessionsFull(ctx, func() (err error) {
			s.sftp, err = sftp.NewClient(s.client, sftp.UseFstat(true))
			return err
		})
		var closed *ClosedError
		if s.sftpErr != nil && errors.As(s.unopened(s.sftpErr), &closed) {
			s.sftpErr = closed
		} else if s.sftpErr != nil {
			s.sftpErr = fmt.Errorf("sftp on %s: %w (is the sftp subsystem enabled in sshd_config?)", s.cfg.Name, s.sftpErr)
		}
	})
	return s.sftp, s.sftpErr
}

// ReadFile reads a file of the host over SFTP.
func (s *SSH) ReadFile(_ context.Context, p string) ([]byte, error) {
	return sftpRead(s, func(sc *sftp.Client) ([]byte, error) {
		f, err := sc.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return io.ReadAll(f)
	})
}

// sftpRead makes a read-only call with the host's SFTP client, its failure
// described by readFailed.
func sftpRead[T any](s *SSH, read func(*sftp.Client) (T, error)) (T, error) {
	var zero T
	sc, err := s.sftpClient()
	if err != nil {
		return zero, err
	}
	v, err := read(sc)
	if err != nil {
		return zero, s.readFailed(err)
	}
	return v, nil
}

// readFailed describes a read-only file transfer that failed: on a lost
// connection it changed nothing, and may be tried again on a new one
// (*ClosedError).
func (s *SSH) readFailed(err error) error {
	if err = notExist(err); errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var closed *ClosedError
	if errors.As(s.unopened(err), &closed) {
		return closed
	}
	return err
}

func notExist(err error) error {
	var se *sftp.StatusError
	if errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxNoSuchFile || errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %v", fs.ErrNotExist, err)
	}
	return err
}

// Stat describes a file of the host.
func (s *SSH) Stat(_ context.Context, p string) (*FileInfo, error) {
	fi, err := sftpRead(s, func(sc *sftp.Client) (os.FileInfo, error) { return sc.Stat(p) })
	if err != nil {
		return nil, err
	}
	return fileInfo(fi), nil
}

// Resolve follows symbolic links of the host.
func (s *SSH) Resolve(_ context.Context, p string) (string, error) {
	sc, err := s.sftpClient()
	if err != nil {
		return "", err
	}
	return resolveLinks(p, func(p string) (string, bool, error) {
		fi, err := sc.Lstat(p)
		if err != nil {
			if errors.Is(notExist(err), fs.ErrNotExist) {
				return "", false, nil
			}
			return "", false, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return "", false, nil
		}
		t, err := sc.ReadLink(p)
		return t, err == nil, err
	}, func(p string) (bool, error) {
		_, err := sc.Stat(p)
		if err != nil && errors.Is(notExist(err), fs.ErrNotExist) {
			return false, nil
		}
		return err == nil, err
	})
}

// WriteFile replaces the file p resolves to on the host atomically: a
// temporary file in its directory, synced, given the old file's
// attributes, then renamed over it with posix-rename.
func (s *SSH) WriteFile(ctx context.Context, p string, data []byte, opt WriteOptions) error {
	sc, err := s.sftpClient()
	if err != nil {
		return err
	}
	r, err := opt.replacing(ctx, s, p)
	if err != nil {
		return err
	}
	p = r.path
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := path.Join(path.Dir(p), "."+path.Base(p)+".runbook-"+hex.EncodeToString(rnd[:]))
	f, err := sc.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = sc.Remove(tmp)
		}
	}()
	if err := r.own(f, s.asRoot); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil && !isUnsupported(err) {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if r.exists {
		if err := s.copyAttributes(ctx, p, tmp); err != nil {
			return err
		}
		if opt.Replace {
			// The old file's ACLs and label stay; the mode and owner asked
			// for win over the ones cp copied.
			if err := sc.Chmod(tmp, r.mode); err != nil {
				return err
			}
			if r.uid >= 0 && r.gid >= 0 && s.asRoot {
				if err := sc.Chown(tmp, r.uid, r.gid); err != nil {
					return err
				}
			}
		}
	}
	if err := sc.PosixRename(tmp, p); err != nil {
		return fmt.Errorf("rename %s: %w", p, err)
	}
	ok = true
	return nil
}

// copyAttributes gives the file tmp the attributes of the file p: mode,
// owner, ACLs and extended attributes such as the SELinux context, which
// SFTP cannot carry. GNU cp copies them (--attributes-only leaves the
// content; "all" does not fail where SELinux or extended attributes are
// missing). Where cp has no --attributes-only (BusyBox), mode and owner,
// already set, are what is kept.
func (s *SSH) copyAttributes(ctx context.Context, p, tmp string) error {
	out, err := s.Run(ctx, &Command{Line: "cp --attributes-only --preserve=all --no-preserve=timestamps,links -- " + quote(p) + " " + quote(tmp), MaxOutput: 4096})
	if err != nil {
		return fmt.Errorf("copy the attributes of %s: %w", p, err)
	}
	if out.ExitCode != 0 {
		msg := strings.TrimSpace(string(out.Stderr))
		if strings.Contains(msg, "unrecognized option") || strings.Contains(msg, "invalid option") {
			return nil
		}
		return fmt.Errorf("could not give the new %s the attributes of the old one (mode, owner, ACLs, SELinux context): %s; nothing was changed", p, msg)
	}
	return nil
}

func isUnsupported(err error) bool {
	var se *sftp.StatusError
	return errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxOpUnsupported
}

// Remove deletes a file of the host.
func (s *SSH) Remove(_ context.Context, p string) error {
	sc, err := s.sftpClient()
	if err != nil {
		return err
	}
	if err := sc.Remove(p); err != nil && !errors.Is(notExist(err), fs.ErrNotExist) {
		return err
	}
	return nil
}

// MkdirAll creates a directory of the host and its parents.
func (s *SSH) MkdirAll(_ context.Context, p string) error {
	sc, err := s.sftpClient()
	if err != nil {
		return err
	}
	return sc.MkdirAll(p)
}

// Dial opens a TCP connection (or a Unix socket for network "unix") from
// the host.
func (s *SSH) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	var err error
	if network == "unix" {
		c, err = s.client.Dial("unix", addr)
	} else {
		c, err = s.client.DialContext(ctx, "tcp", addr)
	}
	var closed *ClosedError
	if err != nil && ctx.Err() == nil && errors.As(s.unopened(err), &closed) {
		return nil, closed
	}
	return c, err
}

// Stream runs c in a new session with its standard input and output as a
// connection; closing it closes the session.
func (s *SSH) Stream(ctx context.Context, c *Command) (net.Conn, error) {
	sess, err := s.newSession(ctx)
	if err != nil {
		return nil, s.unopened(err)
	}
	w, err := sess.StdinPipe()
	if err != nil {
		sess.Close()
		return nil, err
	}
	r, err := sess.StdoutPipe()
	if err != nil {
		sess.Close()
		return nil, err
	}
	if err := sess.Start(BecomeLine(c.Line, c.Become, s.asRoot)); err != nil {
		sess.Close()
		return nil, s.lost(err)
	}
	return &streamConn{w: w, r: r, closer: sess.Close}, nil
}

// Close closes the connection.
func (s *SSH) Close() error {
	var err error
	s.once.Do(func() {
		close(s.stop)
		// The TCP connection first: closing the file-transfer channel on
		// a connection whose host stopped answering would wait for it.
		err = s.client.Close()
		if s.sftp != nil {
			go s.sftp.Close()
		}
		if s.jump != nil {
			s.jump.Close()
		}
	})
	return err
}

// ExpandHome replaces a leading ~/ with the home directory.
func ExpandHome(p string) string {
	if strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return h + p[1:]
		}
	}
	return p
}
