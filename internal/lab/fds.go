package lab

import (
	"os"
	"strconv"
	"syscall"
)

// closeInheritedOnExec marks every file descriptor above 2 of this process
// close-on-exec. Go opens its own so; one this process inherited (flock's
// lock on /work/lab.lock, given to `flock LOCK go test`) is not, and a
// container started from here would keep it open: a lab left up by a
// test that died would then hold every other user's lock until someone
// kills its containers. This process keeps the descriptor (and the lock);
// its children do not get it.
func closeInheritedOnExec() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}
