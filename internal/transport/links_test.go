package transport_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/runbook-dev/runbook/internal/testkit"
	"github.com/runbook-dev/runbook/internal/testsshd"
	"github.com/runbook-dev/runbook/internal/transport"
)

// attrs describes a file as the tools an operator would look with do: its
// mode and owner (stat), its ACL (getfacl) and a user extended attribute.
func attrs(t *testing.T, p string) string {
	t.Helper()
	st, err := exec.Command("stat", "-c", "%a %u:%g %F", p).CombinedOutput()
	if err != nil {
		t.Fatalf("stat: %v %s", err, st)
	}
	acl, err := exec.Command("getfacl", "-c", "-p", p).CombinedOutput()
	if err != nil {
		t.Fatalf("getfacl: %v %s", err, acl)
	}
	x := make([]byte, 64)
	n, err := unix.Getxattr(p, "user.runbook-test", x)
	if err != nil {
		t.Fatalf("getxattr: %v", err)
	}
	return string(st) + string(acl) + "user.runbook-test=" + string(x[:n])
}

// TestWriteFileFollowsLinks: writing through a symbolic link (conf/ ->
// the file the server reads) replaces the file the link names, keeping
// its mode, owner, ACL and extended attributes; the link stays a link. A
// link to nothing is refused. Over SSH and on this machine.
func TestWriteFileFollowsLinks(t *testing.T) {
	_, err := exec.LookPath("setfacl")
	testsshd.Require(t, err == nil, "setfacl is not installed (apt-get install acl)")
	s := testsshd.Start(t)
	sshConn := mustDial(t, s)
	for name, c := range map[string]transport.Conn{"ssh": sshConn, "local": transport.Local{}} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			real := filepath.Join(dir, "etc", "postgresql.conf")
			link := filepath.Join(dir, "data", "conf", "postgresql.conf")
			hop := filepath.Join(dir, "data", "postgresql.conf")
			testkit.WriteFile(t, real, "port = 5432\n", 0o640)
			if err := os.Chown(real, 101, 104); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("setfacl", "-m", "u:nobody:r", real).CombinedOutput(); err != nil {
				t.Fatalf("setfacl: %v %s", err, out)
			}
			if err := unix.Setxattr(real, "user.runbook-test", []byte("label"), 0); err != nil {
				t.Fatal(err)
			}
			// conf/postgresql.conf -> ../postgresql.conf -> /…/etc/postgresql.conf
			testkit.Symlink(t, "../postgresql.conf", link)
			testkit.Symlink(t, real, hop)
			before := attrs(t, real)
			if got, err := c.Resolve(ctx, link); err != nil || got != real {
				t.Fatalf("Resolve = %q %v, want %s", got, err, real)
			}
			if err := c.WriteFile(ctx, link, []byte("port = 5433\n"), transport.WriteOptions{Mode: 0o600, UID: -1, GID: -1}); err != nil {
				t.Fatal(err)
			}
			for _, l := range []string{link, hop} {
				if fi, err := os.Lstat(l); err != nil || fi.Mode()&os.ModeSymlink == 0 {
					t.Fatalf("%s is no longer a symbolic link: %v %v", l, fi.Mode(), err)
				}
			}
			if b, _ := os.ReadFile(real); string(b) != "port = 5433\n" {
				t.Fatalf("the linked file holds %q", b)
			}
			if after := attrs(t, real); after != before {
				t.Fatalf("attributes changed:\n--- before\n%s\n--- after\n%s", before, after)
			}
			if entries, _ := os.ReadDir(filepath.Dir(real)); len(entries) != 1 {
				t.Errorf("temporary files left: %v", entries)
			}
			dangling := filepath.Join(dir, "data", "dangling.conf")
			if err := os.Symlink(filepath.Join(dir, "nowhere.conf"), dangling); err != nil {
				t.Fatal(err)
			}
			err := c.WriteFile(ctx, dangling, []byte("x\n"), transport.WriteOptions{Mode: 0o600, UID: -1, GID: -1})
			if err == nil || !strings.Contains(err.Error(), "does not exist") {
				t.Fatalf("write through a link to nothing: %v, want a refusal", err)
			}
			if fi, err := os.Lstat(dangling); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Fatalf("the dangling link was replaced")
			}
		})
	}
}

// TestWriteFileLinkUnderLinkedDirectory: etc/pg -> srv/pgconf, and
// srv/pgconf/postgresql.conf -> ../data/pg.conf. The kernel resolves the
// relative target against srv/pgconf, where the link really lives, so the
// file cat reads is srv/data/pg.conf; a decoy at etc/data/pg.conf (the
// textual directory's ../data) must stay untouched, and without the decoy
// the link is not dangling. Over SSH and on this machine.
func TestWriteFileLinkUnderLinkedDirectory(t *testing.T) {
	s := testsshd.Start(t)
	sshConn := mustDial(t, s)
	for name, c := range map[string]transport.Conn{"ssh": sshConn, "local": transport.Local{}} {
		for _, decoy := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/decoy=%v", name, decoy), func(t *testing.T) {
				ctx := context.Background()
				dir := t.TempDir()
				for _, d := range []string{"etc", "srv/pgconf", "srv/data"} {
					if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
						t.Fatal(err)
					}
				}
				real := filepath.Join(dir, "srv/data/pg.conf")
				if err := os.WriteFile(real, []byte("work_mem = 4MB\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(filepath.Join(dir, "srv/pgconf"), filepath.Join(dir, "etc/pg")); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("../data/pg.conf", filepath.Join(dir, "srv/pgconf/postgresql.conf")); err != nil {
					t.Fatal(err)
				}
				decoyPath := filepath.Join(dir, "etc/data/pg.conf")
				if decoy {
					testkit.WriteFile(t, decoyPath, "# decoy\n", 0o644)
				}
				p := filepath.Join(dir, "etc/pg/postgresql.conf")
				if out, err := exec.Command("cat", p).Output(); err != nil || string(out) != "work_mem = 4MB\n" {
					t.Fatalf("cat %s = %q %v: the setup is not what the kernel reads", p, out, err)
				}
				if got, err := c.Resolve(ctx, p); err != nil || got != real {
					t.Fatalf("Resolve = %q %v, want %s", got, err, real)
				}
				if err := c.WriteFile(ctx, p, []byte("work_mem = 64MB\n"), transport.WriteOptions{Mode: 0o644, UID: -1, GID: -1}); err != nil {
					t.Fatal(err)
				}
				if out, _ := exec.Command("cat", p).Output(); string(out) != "work_mem = 64MB\n" {
					t.Fatalf("cat after the write = %q", out)
				}
				if decoy {
					if b, _ := os.ReadFile(decoyPath); string(b) != "# decoy\n" {
						t.Fatalf("the decoy was written: %q", b)
					}
				}
			})
		}
	}
}
