package testsshd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// ErrPortTaken says a server exited because its port was bound by another
// process between FreePort finding it free and the server binding it.
var ErrPortTaken = errors.New("the port was taken")

// FreePort finds a loopback port no one listens on now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// HandOutTakenPort makes *freePort, a server's way to find its port, hand
// out first a port that another socket holds, then what it handed out
// before; it returns that port and the count of calls, for a test of a
// server that must survive losing its port. Both are undone when the test
// ends.
func HandOutTakenPort(t testing.TB, freePort *func() (int, error)) (taken int, calls *int) {
	t.Helper()
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Close() })
	taken = held.Addr().(*net.TCPAddr).Port
	real, n := *freePort, 0
	*freePort = func() (int, error) {
		n++
		if n == 1 {
			return taken, nil
		}
		return real()
	}
	t.Cleanup(func() { *freePort = real })
	return taken, &n
}

// WaitReady waits until ready, asked every interval, says a server started
// on port answers by its protocol (never by an open port alone). The bound
// is 60 s, wide for a loaded machine; a server that exits (exited is
// closed) ends the wait at once, with ErrPortTaken when its log at logName
// says its address was in use. name names the server in errors.
func WaitReady(name string, port int, logName string, exited <-chan struct{}, interval time.Duration, ready func() error) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logName)
			if strings.Contains(string(log), "Address already in use") {
				return fmt.Errorf("%s on port %d: %w\n%s", name, port, ErrPortTaken, log)
			}
			return fmt.Errorf("%s exited: %v\n%s", name, err, log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logName)
			return fmt.Errorf("%s did not start within 60 s: %v\n%s", name, err, log)
		}
		time.Sleep(interval)
	}
}
