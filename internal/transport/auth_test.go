package transport_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/internal/testsshd"
	"github.com/runbook-dev/runbook/internal/transport"
)

// TestSSHAgent: with no identity file, the keys of a real ssh-agent
// (started by the test, stopped by its PID) authenticate.
func TestSSHAgent(t *testing.T) {
	s := testsshd.Start(t)
	sock := startAgent(t, t.TempDir())
	noKeys := func(c *transport.SSHConfig) { c.IdentityFiles = nil }
	t.Setenv("SSH_AUTH_SOCK", sock)
	// An empty agent is tried, and said so.
	if _, err := dial(t, s, noKeys); err == nil || !strings.Contains(err.Error(), "ssh-agent") {
		t.Fatalf("an empty agent: %v", err)
	}
	sshAdd(t, sock, s.IdentityFile)
	c, err := dial(t, s, noKeys)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Run(context.Background(), &transport.Command{Line: "id -un"})
	if err != nil || strings.TrimSpace(string(out.Stdout)) != "root" {
		t.Fatalf("through the agent: %q %v", out.Stdout, err)
	}
}

// TestSSHEncryptedKey: an identity file encrypted with a passphrase is
// opened with the passphrase the callback gives (a prompt on a terminal,
// in the CLI); a wrong one names the file as unusable.
func TestSSHEncryptedKey(t *testing.T) {
	s := testsshd.Start(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	enc := encryptedCopy(t, s.IdentityFile, t.TempDir(), "correct horse")
	var asked []string
	with := func(pass string) func(*transport.SSHConfig) {
		return func(c *transport.SSHConfig) {
			c.IdentityFiles = []string{enc}
			c.Passphrase = func(file string) ([]byte, error) {
				asked = append(asked, file)
				return []byte(pass), nil
			}
		}
	}
	if _, err := dial(t, s, with("wrong")); err == nil || !strings.Contains(err.Error(), enc+" (unusable") {
		t.Fatalf("a wrong passphrase: %v", err)
	}
	c, err := dial(t, s, with("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != 2 || asked[1] != enc {
		t.Errorf("asked for %v", asked)
	}
	if out, err := c.Run(context.Background(), &transport.Command{Line: "true"}); err != nil || out.ExitCode != 0 {
		t.Fatalf("with the passphrase: %v", err)
	}
	// Without a way to ask, the encrypted key is skipped, and said so.
	if _, err := dial(t, s, func(c *transport.SSHConfig) { c.IdentityFiles = []string{enc} }); err == nil || !strings.Contains(err.Error(), "unusable") {
		t.Fatalf("no passphrase callback: %v", err)
	}
}

// encryptedCopy copies the private key at key into dir as id_encrypted,
// encrypted with passphrase, and returns its path.
func encryptedCopy(t *testing.T, key, dir, passphrase string) string {
	t.Helper()
	enc := filepath.Join(dir, "id_encrypted")
	copyFile(t, key, enc)
	if out, err := exec.Command("ssh-keygen", "-q", "-p", "-P", "", "-N", passphrase, "-f", enc).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -p: %v %s", err, out)
	}
	return enc
}

// copyFile copies the file from to to, readable by its owner only.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// startAgent starts a real ssh-agent with its socket in dir, stopped by its
// PID when the test ends, and waits until it answers.
func startAgent(t *testing.T, dir string) string {
	t.Helper()
	sock := filepath.Join(dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		testsshd.Require(t, false, "ssh-agent is not installed (apt-get install openssh-client)")
	}
	t.Cleanup(func() {
		_ = agent.Process.Signal(syscall.SIGTERM)
		_ = agent.Wait()
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		// ssh-add -l exits 1 for an empty agent, 2 when it cannot connect.
		l := exec.Command("ssh-add", "-l")
		l.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
		err := l.Run()
		var ee *exec.ExitError
		if err == nil || errors.As(err, &ee) && ee.ExitCode() == 1 {
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh-agent does not answer on %s: %v", sock, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sshAdd(t *testing.T, sock, key string) {
	t.Helper()
	add := exec.Command("ssh-add", "-q", key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add %s: %v %s", key, err, out)
	}
}

// TestSSHEncryptedKeyWithoutPubInAgent: an identity kept encrypted, its
// .pub not copied, whose key the agent holds: as OpenSSH does, the public
// part is read from the private key file and the agent's copy is offered,
// so IdentitiesOnly (which keeps the agent's other keys away) still
// authenticates without asking for the passphrase.
func TestSSHEncryptedKeyWithoutPubInAgent(t *testing.T) {
	s := testsshd.Start(t)
	dir := t.TempDir()
	enc := encryptedCopy(t, s.IdentityFile, dir, "sekret")
	sock := startAgent(t, dir)
	sshAdd(t, sock, s.IdentityFile)
	t.Setenv("SSH_AUTH_SOCK", sock)
	if _, err := os.Stat(enc + ".pub"); err == nil {
		t.Fatal("the test needs no .pub beside the identity")
	}
	c, err := dial(t, s, func(c *transport.SSHConfig) { c.IdentityFiles, c.IdentitiesOnly = []string{enc}, true })
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c.Run(context.Background(), &transport.Command{Line: "true"}); err != nil || out.ExitCode != 0 {
		t.Fatalf("through the agent's copy: %v", err)
	}
}
