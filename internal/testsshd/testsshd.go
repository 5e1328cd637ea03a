// Package testsshd starts a real OpenSSH server on a loopback port for
// tests: its own host key, an authorized client key and a known_hosts file
// that holds the host key. Nothing about it is simulated.
package testsshd

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// Server is a running sshd.
type Server struct {
	Dir  string
	Host string
	Port int
	// IdentityFile is the client's private key, authorized for root.
	IdentityFile string
	// KnownHosts holds the server's host key.
	KnownHosts string
	// HostKeyLine is the known_hosts line of the server's key.
	HostKeyLine string
	// CAKey is, with Options.HostCertificate, the public key (type and
	// base64) of the CA that signed the host key's certificate.
	CAKey string
}

// Options change how StartWith sets the server up.
type Options struct {
	// HostCertificate has the host key signed by a CA of its own
	// (ssh-keygen -s -h, principals the server's address and localhost)
	// and the certificate served with HostCertificate.
	HostCertificate bool
	// UserCertificateAsHost, with HostCertificate, signs the host key as
	// a user certificate (no -h): what an impostor holding a user
	// certificate from the same CA would present.
	UserCertificateAsHost bool
	// UserCertificate accepts only a user certificate for root from a CA
	// of the server's own (TrustedUserCAKeys, no authorized_keys), and
	// puts the client's certificate beside IdentityFile (-cert.pub), where
	// OpenSSH finds it.
	UserCertificate bool
	// MaxSessions is sshd's MaxSessions (sessions on one connection); 0
	// is 100.
	MaxSessions int
}

// Require skips the test when a real part cannot run here, or fails it
// when RUNBOOK_REQUIRE_REAL is set (as .ci/run does), so that CI never
// passes by skipping.
func Require(t testing.TB, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("RUNBOOK_REQUIRE_REAL") != "" {
		t.Fatalf("cannot run: %s", why)
	}
	t.Skip(why)
}

// Available says whether sshd can run here, and why not.
func Available() (bool, string) {
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		return false, "openssh-server is not installed (apt-get install openssh-server)"
	}
	if os.Geteuid() != 0 {
		return false, "sshd needs root to authenticate users"
	}
	return true, ""
}

// Start starts sshd and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	ok, why := Available()
	Require(t, ok, why)
	s, err := StartIn(t.TempDir(), t.Cleanup)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	ok, why := Available()
	Require(t, ok, why)
	s, err := startIn(t.TempDir(), t.Cleanup, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// StartIn starts sshd with its files in dir; cleanup registers its stop.
func StartIn(dir string, cleanup func(func())) (*Server, error) {
	return startIn(dir, cleanup, Options{})
}

func startIn(dir string, cleanup func(func()), o Options) (*Server, error) {
	s := &Server{Dir: dir, Host: "127.0.0.1"}
	keygen := func(file string) error {
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "runbook-test", "-f", file).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ssh-keygen: %v: %s", err, out)
		}
		return nil
	}
	hostKey := filepath.Join(dir, "host_ed25519")
	if err := keygen(hostKey); err != nil {
		return nil, err
	}
	s.IdentityFile = filepath.Join(dir, "id_ed25519")
	if err := keygen(s.IdentityFile); err != nil {
		return nil, err
	}
	pub, err := os.ReadFile(s.IdentityFile + ".pub")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		return nil, err
	}
	hostPub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		return nil, err
	}
	fields := strings.Fields(string(hostPub))
	s.KnownHosts = filepath.Join(dir, "known_hosts")
	// SetEnv SHLVL=1 keeps root's ~/.bashrc (which may run slow shell
	// initialisation) out of every command, as on the benchmark target.
	conf := fmt.Sprintf(`ListenAddress %s
HostKey %s
PidFile %s
AuthorizedKeysFile %s
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
UseDNS no
MaxSessions %d
MaxStartups 100:30:200
Subsystem sftp /usr/lib/openssh/sftp-server
SetEnv SHLVL=1
LogLevel ERROR
`, s.Host, hostKey, filepath.Join(dir, "sshd.pid"), filepath.Join(dir, "authorized_keys"), cmp.Or(o.MaxSessions, 100))
	if o.HostCertificate {
		ca := filepath.Join(dir, "host_ca")
		if err := keygen(ca); err != nil {
			return nil, err
		}
		args := []string{"-q", "-s", ca, "-I", "runbook-test-host", "-h", "-n", s.Host + ",localhost", hostKey + ".pub"}
		if o.UserCertificateAsHost {
			args = append(args[:5], args[6:]...)
		}
		if out, err := exec.Command("ssh-keygen", args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ssh-keygen -s: %v: %s", err, out)
		}
		conf += "HostCertificate " + hostKey + "-cert.pub\n"
		caPub, err := os.ReadFile(ca + ".pub")
		if err != nil {
			return nil, err
		}
		f := strings.Fields(string(caPub))
		s.CAKey = f[0] + " " + f[1]
	}
	if o.UserCertificate {
		ca := filepath.Join(dir, "user_ca")
		if err := keygen(ca); err != nil {
			return nil, err
		}
		if out, err := exec.Command("ssh-keygen", "-q", "-s", ca, "-I", "runbook-test-user", "-n", "root", s.IdentityFile+".pub").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ssh-keygen -s: %v: %s", err, out)
		}
		conf = strings.Replace(conf, "AuthorizedKeysFile "+filepath.Join(dir, "authorized_keys"), "AuthorizedKeysFile none", 1)
		conf += "TrustedUserCAKeys " + ca + ".pub\n"
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, err
	}
	// The port is found free and then released for sshd to bind: another
	// process may take it in between, and then sshd exits saying so. A
	// few tries with other ports make that race harmless.
	for try := 1; ; try++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.Port = port
		s.HostKeyLine = fmt.Sprintf("[%s]:%d %s %s", s.Host, s.Port, fields[0], fields[1])
		if err := os.WriteFile(s.KnownHosts, []byte(s.HostKeyLine+"\n"), 0o600); err != nil {
			return nil, err
		}
		err = s.launch(fmt.Sprintf("Port %d\n", port)+conf, cleanup)
		if err == nil || !errors.Is(err, ErrPortTaken) || try == 5 {
			return s, err
		}
	}
}

// launch writes conf, starts sshd and waits until it completes an SSH
// handshake. It fails with ErrPortTaken when sshd exits unable to bind.
func (s *Server) launch(conf string, cleanup func(func())) error {
	confFile := filepath.Join(s.Dir, "sshd_config")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		return err
	}
	cmd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", confFile)
	logName := filepath.Join(s.Dir, "sshd.log")
	logFile, err := os.Create(logName)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	cleanup(func() {
		// Only the sshd this test started, and its session children.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		<-exited
		logFile.Close()
	})
	// Ready when an SSH handshake with the client key, the host key
	// checked, succeeds.
	return WaitReady("sshd", s.Port, logName, exited, 20*time.Millisecond, s.handshake)
}

// handshake opens an SSH connection as root with the client key, checking
// the host key, and closes it.
func (s *Server) handshake() error {
	key, err := os.ReadFile(s.IdentityFile)
	if err != nil {
		return err
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		return err
	}
	signers := []ssh.Signer{signer}
	if b, err := os.ReadFile(s.IdentityFile + "-cert.pub"); err == nil {
		// A server of Options.UserCertificate takes only the certificate.
		pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
		if err != nil {
			return err
		}
		cert, ok := pub.(*ssh.Certificate)
		if !ok {
			return fmt.Errorf("%s-cert.pub holds no certificate", s.IdentityFile)
		}
		cs, err := ssh.NewCertSigner(cert, signer)
		if err != nil {
			return err
		}
		signers = []ssh.Signer{cs}
	}
	_, _, hostPub, _, _, err := ssh.ParseKnownHosts([]byte(s.HostKeyLine))
	if err != nil {
		return err
	}
	// A deadline on the whole handshake, not only on the connect: a port
	// taken by a process that accepts and never speaks must not hang it.
	conn, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, s.Addr(), &ssh.ClientConfig{
		User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signers...)},
		HostKeyCallback: ssh.FixedHostKey(hostPub), HostKeyAlgorithms: []string{hostPub.Type()},
	})
	if err != nil {
		return err
	}
	return ssh.NewClient(c, chans, reqs).Close()
}

// Addr returns host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Inventory returns an inventory with the given host names all pointing at
// this server.
func (s *Server) Inventory(names ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "defaults: {user: root, port: %d, identity_file: %s, known_hosts: %s}\nhosts:\n", s.Port, s.IdentityFile, s.KnownHosts)
	for _, n := range names {
		fmt.Fprintf(&b, "  %s: {address: %s}\n", n, s.Host)
	}
	return b.String()
}

// freePort is FreePort; a variable so that a test can hand out a taken
// port.
var freePort = FreePort
