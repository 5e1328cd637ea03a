package transport_test

import (
	"context"
	"sync"
	"testing"

	"github.com/runbook-dev/runbook/internal/testsshd"
	"github.com/runbook-dev/runbook/internal/transport"
)

// TestMoreSessionsThanMaxSessions runs more commands at once on one
// connection than sshd's MaxSessions allows (the lab's hosts keep the
// default, 10): each waits for a session instead of failing with sshd's
// "open failed", and a file read (the sftp subsystem, a session too)
// opened while they run works.
func TestMoreSessionsThanMaxSessions(t *testing.T) {
	s := testsshd.StartWith(t, testsshd.Options{MaxSessions: 2})
	c, err := dial(t, s)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 9)
	for range 8 {
		wg.Go(func() {
			out, err := c.Run(context.Background(), &transport.Command{Line: "sleep 0.2; echo ok"})
			if err == nil && string(out.Stdout) != "ok\n" {
				t.Errorf("stdout %q", out.Stdout)
			}
			errs <- err
		})
	}
	wg.Go(func() {
		_, err := c.ReadFile(context.Background(), "/etc/hostname")
		errs <- err
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
