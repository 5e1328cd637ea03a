package transport

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/runbook-dev/runbook/internal/testsshd"
)

// BenchmarkSessionPIDReport measures what the PID report costs one
// command of `true`, one session at a time, the ways alternated in each
// round on one sshd (median of each, in µs per command):
//
//   - floor: an x/crypto/ssh session running `true`;
//   - floor+report: the same session running the line runbook sends
//     (the report on standard error, then `true`), read by nobody;
//   - run: SSH.Run of `true`, the report taken off standard error and
//     nobody told;
//   - run+record: the same, Started writing a record to a file as the
//     journal does for the step's process.
//
// Run it with -benchtime=300x: each iteration is one round.
func BenchmarkSessionPIDReport(b *testing.B) {
	s := testsshd.Start(b)
	c, err := DialSSH(context.Background(), SSHConfig{Name: "bench", Address: s.Host, Port: s.Port, User: "root", IdentityFiles: []string{s.IdentityFile}, KnownHosts: []string{s.KnownHosts}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	key, _ := os.ReadFile(s.IdentityFile)
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := ssh.Dial("tcp", s.Addr(), &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.InsecureIgnoreHostKey()})
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	journal, err := os.Create(filepath.Join(b.TempDir(), "journal"))
	if err != nil {
		b.Fatal(err)
	}
	defer journal.Close()
	rawRun := func(line string) error {
		sess, err := raw.NewSession()
		if err != nil {
			return err
		}
		defer sess.Close()
		sess.Stderr = io.Discard
		return sess.Run(line)
	}
	record := []byte(`{"kind":"process","data":{"type":"step-process","index":1,"id":"1","name":"true","host":"bench","pid":12345}}` + "\n")
	ways := []struct {
		name string
		f    func() error
	}{
		{"floor", func() error { return rawRun("true") }},
		{"floor+report", func() error { return rawRun(killable("true")) }},
		{"run", func() error { _, err := c.Run(context.Background(), &Command{Line: "true"}); return err }},
		{"run+record", func() error {
			_, err := c.Run(context.Background(), &Command{Line: "true", Started: func(int) { _, _ = journal.Write(record) }})
			return err
		}},
	}
	ds := make([][]time.Duration, len(ways))
	for b.Loop() {
		for i, w := range ways {
			t := time.Now()
			if err := w.f(); err != nil {
				b.Fatal(err)
			}
			ds[i] = append(ds[i], time.Since(t))
		}
	}
	for i, w := range ways {
		sort.Slice(ds[i], func(a, c int) bool { return ds[i][a] < ds[i][c] })
		b.ReportMetric(float64(ds[i][len(ds[i])/2].Microseconds()), w.name+"-µs")
	}
}
