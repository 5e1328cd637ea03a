package textcheck

import "syscall"

// procAttr is the attributes of a shellcheck process: a process group of
// its own (boundProcess), and, on Linux, SIGKILL when validate dies, even
// by SIGKILL, which leaves it no time to kill the group: a hung wrapper
// (docker run, a stuck NFS path) would otherwise run on for good. Only
// the direct child gets it: a wrapper's own children do not, and the
// signal comes when the thread that started the process ends, which in
// Go is the process's end: the runtime ends a thread only when a
// goroutine locked to it (LockOSThread) returns, and none here is.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
