package textcheck

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestShellcheckDiesWithValidate: a shellcheck process (here sleep, as a
// hung wrapper) dies when the process that started it is killed by
// SIGKILL, which gives it no time to kill the process's group. The
// helper process starts it, its output a pipe the test reads: the pipe
// ends once both are gone.
func TestShellcheckDiesWithValidate(t *testing.T) {
	if os.Getenv("TEXTCHECK_HELPER") == "deathsig" {
		deathsigHelper()
		return
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	stdin, hold, err := os.Pipe() // the helper waits on it
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	helper := exec.Command(os.Args[0], "-test.run=^TestShellcheckDiesWithValidate$")
	helper.Env = append(os.Environ(), "TEXTCHECK_HELPER=deathsig")
	helper.Stdin = stdin
	helper.ExtraFiles = []*os.File{w}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	w.Close()
	line, err := bufio.NewReader(r).ReadString('\n')
	var pid int
	if _, serr := fmt.Sscanf(line, "started %d\n", &pid); err != nil || serr != nil {
		t.Fatalf("the helper said %q, %v", line, err)
	}
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	helper.Wait()
	// A bound, not a synchronisation: without the death signal, sleep
	// holds the pipe for a minute.
	r.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.Copy(io.Discard, r); err != nil {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("the shellcheck process outlived its parent: %v", err)
	}
}

// deathsigHelper starts a process as shellcheck is started, its output
// the pipe at fd 3, says so there, and waits to be killed.
func deathsigHelper() {
	out := os.NewFile(3, "pipe")
	cmd := exec.CommandContext(context.Background(), "sleep", "60")
	boundProcess(cmd)
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		os.Exit(1)
	}
	fmt.Fprintf(out, "started %d\n", cmd.Process.Pid)
	io.Copy(io.Discard, os.Stdin) // until killed
	os.Exit(0)
}
