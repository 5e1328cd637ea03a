package transport

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"sort"
	"strconv"
	"strings"
)

// pidMarker starts the line a remote command prints first on standard
// error: the PID of its session, whose process group a cancel kills.
const pidMarker = "runbook-pid:"

// killable makes a remote command killable as a whole. sshd starts each
// session in a process group of its own, led by the login shell; the shell
// reports its PID on standard error and exec's the command line, so that
// on cancel a second session can kill that whole group (the command and
// every child) without a process staying around just to relay signals.
func killable(line string) string {
	return "printf '" + pidMarker + "%s\\n' \"$$\" >&2; exec /bin/sh -c " + quote(line)
}

// pidWriter passes standard error on to w after taking the PID line off
// its front.
type pidWriter struct {
	w     io.Writer
	buf   []byte
	done  bool
	pid   chan int
	found bool
}

func newPIDWriter(w io.Writer) *pidWriter { return &pidWriter{w: w, pid: make(chan int, 1)} }

func (p *pidWriter) Write(b []byte) (int, error) {
	if p.done {
		return p.w.Write(b)
	}
	p.buf = append(p.buf, b...)
	i := bytes.IndexByte(p.buf, '\n')
	if i < 0 && len(p.buf) < 64 {
		return len(b), nil
	}
	p.done = true
	rest := p.buf
	if i >= 0 && bytes.HasPrefix(p.buf, []byte(pidMarker)) {
		if pid, err := strconv.Atoi(string(p.buf[len(pidMarker):i])); err == nil && pid > 1 {
			p.pid <- pid
			p.found = true
		}
		rest = p.buf[i+1:]
	}
	p.buf = nil
	if len(rest) > 0 {
		if _, err := p.w.Write(rest); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// envWrapper passes environment variables through standard input rather
// than the command line, where the process table would show them: the
// wrapper reads export statements up to a random end line, evaluates them,
// then runs the command with the rest of standard input.
func envWrapper(line string, env map[string]string) (string, []byte) {
	var nonce [12]byte
	_, _ = rand.Read(nonce[:])
	end := "__runbook_env_" + hex.EncodeToString(nonce[:])
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var pre strings.Builder
	for _, k := range keys {
		pre.WriteString("export " + k + "=" + quote(env[k]) + "\n")
	}
	pre.WriteString(end + "\n")
	script := "__rb_s=; while IFS= read -r __rb_l; do [ \"$__rb_l\" = " + end + " ] && break; __rb_s=\"$__rb_s$__rb_l\n\"; done; " +
		"eval \"$__rb_s\"; unset __rb_s __rb_l; exec /bin/sh -c " + quote(line)
	return "/bin/sh -c " + quote(script), []byte(pre.String())
}

// validEnvName reports whether k can be exported by a POSIX shell.
func validEnvName(k string) bool {
	if k == "" {
		return false
	}
	for i, r := range k {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
