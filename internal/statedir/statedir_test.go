package statedir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// victim is a file outside the state directory that a planted link points
// to: it must never change.
func victim(t *testing.T) (string, func()) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(p, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, func() {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil || string(b) != "precious\n" {
			t.Errorf("the file outside the state directory changed: %q %v", b, err)
		}
	}
}

func unsafe(t *testing.T, err error, want string) {
	t.Helper()
	var ue *UnsafeError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want an UnsafeError saying %q", err, want)
	}
}

func TestCreatesPrivateDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "home", ".local", "state", "runbook")
	if _, err := Open(path, false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a missing directory without create: %v", err)
	}
	d, err := Open(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, p := range []string{path, filepath.Dir(path), filepath.Dir(filepath.Dir(path))} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v, want mode 0700", p, st.Mode(), err)
		}
	}
	sub, err := d.Sub("runs", true)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	f, err := sub.OpenFile("a.journal", os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if names, err := sub.Names(); err != nil || len(names) != 1 || names[0] != "a.journal" {
		t.Errorf("names %v %v", names, err)
	}
}

func TestRefusesSymlinkedFiles(t *testing.T) {
	path, unchanged := victim(t)
	dir := t.TempDir()
	d, err := Open(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := os.Symlink(path, filepath.Join(dir, "x.lock")); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []int{os.O_RDWR | os.O_CREATE, os.O_APPEND | os.O_CREATE | os.O_WRONLY, os.O_RDONLY, os.O_RDWR | os.O_CREATE | os.O_TRUNC} {
		_, err := d.OpenFile("x.lock", flag, 0o600)
		unsafe(t, err, "is a symbolic link")
	}
	// A hard link to another file (made while the directory was not safe).
	if err := os.Link(path, filepath.Join(dir, "hard.lock")); err != nil {
		t.Fatal(err)
	}
	_, err = d.OpenFile("hard.lock", os.O_RDWR, 0)
	unsafe(t, err, "has 2 hard links")
	// A FIFO is refused without hanging.
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = d.OpenFile("fifo", os.O_RDONLY, 0)
	unsafe(t, err, "not a regular file")
	unchanged()
}

func TestRefusesDirectoriesOthersCanWrite(t *testing.T) {
	base := t.TempDir()
	group := filepath.Join(base, "group")
	if err := os.Mkdir(group, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(group, 0o770); err != nil {
		t.Fatal(err)
	}
	_, err := Open(group, true)
	unsafe(t, err, "is writable by group or others (mode 0770)")

	// A subdirectory too.
	ok := filepath.Join(base, "ok")
	d, err := Open(ok, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := os.Mkdir(filepath.Join(ok, "locks"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(ok, "locks"), 0o777); err != nil {
		t.Fatal(err)
	}
	_, err = d.Sub("locks", true)
	unsafe(t, err, "is writable by group or others")

	// A parent others can write in, without the sticky bit: they could
	// move the state directory away and put their own in its place.
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err = Open(filepath.Join(open, "state"), true)
	unsafe(t, err, "a parent of the state directory) is writable by group or others (mode 0777) without the sticky bit")
	if _, err := os.Stat(filepath.Join(open, "state")); err == nil {
		t.Error("the state directory was created under an unsafe parent")
	}
	// With the sticky bit (as /tmp) it is fine.
	if err := os.Chmod(open, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	d2, err := Open(filepath.Join(open, "state"), true)
	if err != nil {
		t.Fatalf("under a sticky directory: %v", err)
	}
	d2.Close()
}

// TestRefusesDirectoryOfAnotherUser: a state directory someone else made
// first (in /tmp, say) is not used.
func TestRefusesDirectoryOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory to another user")
	}
	base := t.TempDir()
	theirs := filepath.Join(base, "theirs")
	if err := os.Mkdir(theirs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err := Open(theirs, true)
	unsafe(t, err, "is owned by uid 65534, not by this user (uid 0)")
	// Below a parent of another user.
	_, err = Open(filepath.Join(theirs, "state"), true)
	unsafe(t, err, "a parent of the state directory) is owned by uid 65534")
	// A file of another user in one's own directory.
	d, err := Open(filepath.Join(base, "mine"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	p := filepath.Join(base, "mine", "x.journal")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err = d.OpenFile("x.journal", os.O_RDWR, 0)
	unsafe(t, err, "is owned by uid 65534")
}

func TestRefusesSymlinkedDirectory(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(base, "state")); err != nil {
		t.Fatal(err)
	}
	_, err := Open(filepath.Join(base, "state"), true)
	unsafe(t, err, "is a symbolic link or not a directory, where the state directory should be")
	// A link among the parents is followed, and where it leads is checked.
	d, err := Open(filepath.Join(base, "state", "runbook"), true)
	if err != nil {
		t.Fatalf("a link among the parents: %v", err)
	}
	defer d.Close()
	if d.Path() != filepath.Join(real, "runbook") {
		t.Errorf("path %s", d.Path())
	}
	// runs as a link to another directory.
	other := t.TempDir()
	if err := os.Symlink(other, filepath.Join(real, "runbook", "runs")); err != nil {
		t.Fatal(err)
	}
	_, err = d.Sub("runs", true)
	unsafe(t, err, "is a symbolic link")
}

func TestNoStateDirectory(t *testing.T) {
	if _, err := Open("", true); err == nil || !strings.Contains(err.Error(), "set XDG_STATE_HOME or HOME, or pass --state-dir") {
		t.Fatalf("got %v", err)
	}
}
