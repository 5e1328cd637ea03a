package testsshd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
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
