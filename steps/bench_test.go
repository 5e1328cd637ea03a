package steps_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/testsshd"
	"github.com/runbook-dev/runbook/steps"
)

func truePlaybook(n int, host string) *engine.Playbook {
	var b strings.Builder
	b.WriteString("version: 1\nname: bench\nsteps:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - host: %s\n    ssh-exec: {command: \"true\"}\n", host)
	}
	pb, ds := (&engine.Loader{Registry: steps.Builtin()}).Load("bench.yaml", []byte(b.String()))
	if pb == nil {
		panic(fmt.Sprint(ds))
	}
	return pb
}

// BenchmarkSSHExec100 runs a playbook of 100 ssh-exec steps of `true` on
// one host over a real sshd (SetEnv SHLVL=1, so root's shell profile is
// skipped). ns/op is the time for 100 steps, connection included.
func BenchmarkSSHExec100(b *testing.B) {
	s := testsshd.Start(b)
	inv, _ := engine.ParseInventory("inv.yaml", []byte(s.Inventory("pg1")))
	pb := truePlaybook(100, "pg1")
	r := &engine.Runner{Inventory: inv, Connect: dialHost}
	for b.Loop() {
		if err := r.Run(context.Background(), pb, engine.Inputs{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFloorGoSSH100 is the floor: 100 sessions running `true` on one
// x/crypto/ssh connection, nothing else.
func BenchmarkFloorGoSSH100(b *testing.B) {
	s := testsshd.Start(b)
	key, _ := os.ReadFile(s.IdentityFile)
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		c, err := ssh.Dial("tcp", s.Addr(), &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.InsecureIgnoreHostKey()})
		if err != nil {
			b.Fatal(err)
		}
		for range 100 {
			sess, err := c.NewSession()
			if err != nil {
				b.Fatal(err)
			}
			if err := sess.Run("true"); err != nil {
				b.Fatal(err)
			}
			sess.Close()
		}
		c.Close()
	}
}

// BenchmarkFloorControlMaster100 is OpenSSH's own floor: `ssh` run 100
// times over a ControlMaster-multiplexed connection.
func BenchmarkFloorControlMaster100(b *testing.B) {
	s := testsshd.Start(b)
	ctl := filepath.Join(b.TempDir(), "ctl")
	args := []string{"-i", s.IdentityFile, "-o", "UserKnownHostsFile=" + s.KnownHosts, "-o", "StrictHostKeyChecking=yes", "-o", "ControlPath=" + ctl, "-o", "BatchMode=yes", "-p", strconv.Itoa(s.Port), "-l", "root", s.Host}
	master := exec.Command("ssh", append([]string{"-M", "-N", "-o", "ControlPersist=no"}, args...)...)
	if err := master.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = master.Process.Kill(); _ = master.Wait() }()
	for range 100 {
		if _, err := os.Stat(ctl); err == nil {
			break
		}
		if err := exec.Command("sleep", "0.05").Run(); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		for range 100 {
			if out, err := exec.Command("ssh", append(args, "true")...).CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
	}
}

// BenchmarkLocalStepOverhead is the engine's own cost per step: 100 steps
// on the local transport whose command is skipped by creates, so no
// process runs. ns/op / 100 is the overhead of one step.
func BenchmarkLocalStepOverhead(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("version: 1\nname: bench\nsteps:\n")
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&sb, "  - id: s%d\n    ssh-exec: {command: \"echo ${{ params.x }}\", creates: /}\n", i)
	}
	src := strings.Replace(sb.String(), "steps:\n", "params:\n  x: {type: string, default: y}\nsteps:\n", 1)
	pb, ds := (&engine.Loader{Registry: steps.Builtin()}).Load("bench.yaml", []byte(src))
	if pb == nil {
		b.Fatal(ds)
	}
	r := &engine.Runner{}
	in := engine.Inputs{Params: map[string]any{"x": "y"}}
	for b.Loop() {
		if err := r.Run(context.Background(), pb, in); err != nil {
			b.Fatal(err)
		}
	}
}
