package transport_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/internal/testsshd"
	"github.com/runbook-dev/runbook/internal/transport"
)

// TestSSHHostCertificates: a server whose host key is certified by a CA
// that known_hosts lists as @cert-authority is accepted, also when an
// outdated plain key of the host is still listed; a host key or CA listed
// as @revoked is refused. Each case is decided by OpenSSH's own client on
// the same files too, and runbook must decide the same.
func TestSSHHostCertificates(t *testing.T) {
	s := testsshd.StartWith(t, testsshd.Options{HostCertificate: true})
	hostPub := strings.Join(strings.Fields(s.HostKeyLine)[1:], " ")
	other, err := os.ReadFile(s.IdentityFile + ".pub") // a key that is not the host's
	if err != nil {
		t.Fatal(err)
	}
	stale := strings.Join(strings.Fields(string(other))[:2], " ")
	hp := fmt.Sprintf("[%s]:%d", s.Host, s.Port)
	tests := []struct {
		name, knownHosts string
		accept           bool
		hash             bool
		// alias is a HostKeyAlias, given to both clients.
		alias string
	}{
		{"CA for the host", "@cert-authority " + hp + " " + s.CAKey, true, false, ""},
		{"CA for every host", "@cert-authority * " + s.CAKey, true, false, ""},
		{"CA and an outdated plain key", hp + " " + stale + "\n@cert-authority " + hp + " " + s.CAKey, true, false, ""},
		{"CA for other hosts only", "@cert-authority [10.9.9.9]:22 " + s.CAKey, false, false, ""},
		{"host key revoked", "@cert-authority * " + s.CAKey + "\n@revoked * " + hostPub, false, false, ""},
		{"CA revoked", "@cert-authority * " + s.CAKey + "\n@revoked * " + s.CAKey, false, false, ""},
		{"plain key revoked", hp + " " + hostPub + "\n@revoked * " + hostPub, false, false, ""},
		{"CA for every host but this one", "@cert-authority *,!" + s.Host + ",!" + hp + " " + s.CAKey, false, false, ""},
		{"CA for the bare host name", "@cert-authority " + s.Host + " " + s.CAKey, true, false, ""},
		{"hashed names", hp + " " + hostPub, true, true, ""},
		{"hashed name, outdated key", hp + " " + stale, false, true, ""},
		{name: "HostKeyAlias, plain key", knownHosts: "pgalias " + hostPub, accept: true, alias: "pgalias"},
		{name: "HostKeyAlias, key under the address only", knownHosts: hp + " " + hostPub, accept: false, alias: "pgalias"},
		{name: "HostKeyAlias naming a principal, CA", knownHosts: "@cert-authority localhost " + s.CAKey, accept: true, alias: "localhost"},
		{name: "HostKeyAlias not a principal, CA", knownHosts: "@cert-authority pgalias " + s.CAKey, accept: false, alias: "pgalias"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			if err := os.WriteFile(kh, []byte(tt.knownHosts+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if tt.hash {
				if out, err := exec.Command("ssh-keygen", "-q", "-H", "-f", kh).CombinedOutput(); err != nil {
					t.Fatalf("ssh-keygen -H: %v %s", err, out)
				}
			}
			args := []string{"-F", "/dev/null"}
			if tt.alias != "" {
				args = append(args, "-o", "HostKeyAlias="+tt.alias)
			}
			out, err := exec.Command("ssh", append(args, "-o", "UserKnownHostsFile="+kh, "-o", "GlobalKnownHostsFile=/dev/null",
				"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", s.IdentityFile,
				"-p", strconv.Itoa(s.Port), "root@"+s.Host, "true")...).CombinedOutput()
			if openssh := err == nil; openssh != tt.accept {
				t.Fatalf("OpenSSH accepts: %v, the case says %v: %s", openssh, tt.accept, out)
			}
			_, err = dial(t, s, func(c *transport.SSHConfig) { c.KnownHosts, c.HostKeyAlias = []string{kh}, tt.alias })
			if (err == nil) != tt.accept {
				t.Fatalf("runbook: %v; OpenSSH accepts: %v (%s)", err, tt.accept, strings.TrimSpace(string(out)))
			}
		})
	}
}

// TestSSHUserCertificateAsHostKey: a server presenting a *user*
// certificate signed by a CA trusted as @cert-authority is refused, as
// OpenSSH refuses it ("not a host certificate"): a user certificate from
// a CA shared by users and hosts must not let its holder pose as a host.
func TestSSHUserCertificateAsHostKey(t *testing.T) {
	s := testsshd.StartWith(t, testsshd.Options{HostCertificate: true, UserCertificateAsHost: true})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte("@cert-authority * "+s.CAKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ssh", "-F", "/dev/null", "-o", "UserKnownHostsFile="+kh, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", s.IdentityFile,
		"-p", strconv.Itoa(s.Port), "root@"+s.Host, "true").CombinedOutput()
	if err == nil {
		t.Fatalf("OpenSSH accepts a user certificate as host key: %s", out)
	}
	_, err = dial(t, s, func(c *transport.SSHConfig) { c.KnownHosts = []string{kh} })
	if err == nil || !strings.Contains(err.Error(), "not a host certificate") {
		t.Fatalf("runbook: %v, want a refusal naming a user certificate (OpenSSH: %s)", err, strings.TrimSpace(string(out)))
	}
}

// TestSSHUserCertificate: a server that accepts only user certificates
// from its CA is reached with the certificate beside the identity
// (ID-cert.pub), as OpenSSH's ssh reaches it; without the certificate
// neither does.
func TestSSHUserCertificate(t *testing.T) {
	s := testsshd.StartWith(t, testsshd.Options{UserCertificate: true})
	sshArgs := []string{"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-i", s.IdentityFile,
		"-o", "UserKnownHostsFile=" + s.KnownHosts, "-p", strconv.Itoa(s.Port), "root@" + s.Host, "true"}
	if out, err := exec.Command("ssh", sshArgs...).CombinedOutput(); err != nil {
		t.Fatalf("OpenSSH's ssh with the certificate: %v %s", err, out)
	}
	if _, err := dial(t, s, func(c *transport.SSHConfig) { c.IdentitiesOnly = true }); err != nil {
		t.Fatalf("runbook with the certificate beside the identity: %v", err)
	}
	if err := os.Rename(s.IdentityFile+"-cert.pub", s.IdentityFile+"-cert.pub.away"); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ssh", sshArgs...).CombinedOutput(); err == nil {
		t.Fatalf("OpenSSH's ssh without the certificate got in: %s", out)
	}
	if _, err := dial(t, s, func(c *transport.SSHConfig) { c.IdentitiesOnly = true }); err == nil {
		t.Fatal("runbook without the certificate got in")
	}
}
