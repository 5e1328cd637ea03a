package lab

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestCloseInheritedOnExec: a descriptor this process got without
// close-on-exec (as `flock LOCK cmd` passes its lock) reaches a child
// before closeInheritedOnExec, and not after.
func TestCloseInheritedOnExec(t *testing.T) {
	fd, err := syscall.Open(filepath.Join(t.TempDir(), "lock"), syscall.O_CREAT|syscall.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	inherited := func() bool {
		out, err := exec.Command("sh", "-c", "test -e /proc/self/fd/"+strconv.Itoa(fd)+" && echo open || echo closed").Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out)) == "open"
	}
	if !inherited() {
		t.Fatalf("fd %d without close-on-exec did not reach the child: the test proves nothing", fd)
	}
	closeInheritedOnExec()
	if inherited() {
		t.Fatalf("fd %d still reaches a child after closeInheritedOnExec", fd)
	}
}
