//go:build !linux

package textcheck

import "syscall"

// procAttr is the attributes of a shellcheck process: a process group of
// its own (boundProcess). Only Linux can also have it killed when
// validate dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
