package transport

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
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
//
// A line that is one simple command (words, single-quoted values, no shell
// syntax) is exec'd by the login shell itself: same meaning in every POSIX
// shell, and one /bin/sh fewer per step. When that command is one of the
// builtins every POSIX shell has with the same meaning as the program
// (true, false, :, test), the login shell runs it itself, as it would for
// `ssh host true`: exec would start /usr/bin/true instead, a process more
// per step (about 1 ms on a loaded machine) for the same result.
func killable(line string) string {
	if simpleCommand(line) {
		if sameAsBuiltin[commandName(line)] {
			return "printf '" + pidMarker + "%s\\n' \"$$\" >&2; " + line
		}
		return "printf '" + pidMarker + "%s\\n' \"$$\" >&2; exec " + line
	}
	return "printf '" + pidMarker + "%s\\n' \"$$\" >&2; exec /bin/sh -c " + quote(line)
}

// shellOnly are the commands that are shell builtins without a program of
// the same name: exec would not find them.
var shellOnly = map[string]bool{
	"cd": true, "export": true, "unset": true, "set": true, "exit": true, "return": true,
	"source": true, "eval": true, "exec": true, "read": true, "wait": true, "ulimit": true,
	"umask": true, "alias": true, "unalias": true, "trap": true, "shift": true, "break": true,
	"continue": true, "readonly": true, "times": true, "type": true, "command": true,
	"hash": true, "jobs": true, "fg": true, "bg": true, "getopts": true, "local": true,
	"let": true, "declare": true, "typeset": true, "builtin": true, "shopt": true,
	"enable": true, "history": true, "fc": true, "logout": true, "disown": true, "suspend": true,
}

// sameAsBuiltin are the commands that dash, bash and BusyBox's ash run as
// builtins behaving as the program of the same name does. (echo is not one
// of them: dash's interprets backslashes, /bin/echo does not.)
var sameAsBuiltin = map[string]bool{"true": true, "false": true, ":": true, "test": true}

// commandName is the first word of a simple command.
func commandName(line string) string {
	line = strings.TrimLeft(line, " \t")
	if i := strings.IndexAny(line, " \t"); i >= 0 {
		return line[:i]
	}
	return line
}

// simpleCommand reports whether line is words of plain characters and
// single-quoted strings only, the first a program name: nothing a shell
// would expand, redirect, or treat as syntax.
func simpleCommand(line string) bool {
	first := true
	name := strings.Builder{}
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			if first && name.Len() > 0 {
				first = false
			}
			i++
		case c == '\'':
			if first {
				return false
			}
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return false
			}
			i += j + 2
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '.' || c == '/' || c == '-' || c == '+' || c == ',' || c == ':' || c == '@' || c == '%':
			if first {
				name.WriteByte(c)
			}
			i++
		case c == '=' && !first:
			i++
		default:
			return false
		}
	}
	n := name.String()
	return n != "" && !shellOnly[n]
}

// pidWriter passes standard error on to w after taking the PID line off
// its front.
type pidWriter struct {
	w     io.Writer
	buf   []byte
	done  bool
	pid   chan int
	found bool
	// onPID, if set, is told the PID as soon as it is read, in a goroutine
	// of its own: the record it makes (the journal's) is written while the
	// session goes on to its end, not before the rest of standard error is
	// read. wait returns once it has been told.
	onPID func(int)
	told  chan struct{}
}

func newPIDWriter(w io.Writer) *pidWriter { return &pidWriter{w: w, pid: make(chan int, 1)} }

// wait returns once onPID has returned, if it was called: call it after
// the session ended, so that what onPID records comes before the
// command's outcome.
func (p *pidWriter) wait() {
	if p.told != nil {
		<-p.told
	}
}

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
			if p.onPID != nil {
				p.told = make(chan struct{})
				go func() {
					defer close(p.told)
					p.onPID(pid)
				}()
			}
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

// checkEnvNames refuses a variable name a POSIX shell cannot export.
func checkEnvNames(env map[string]string) error {
	for k := range env {
		if !validEnvName(k) {
			return fmt.Errorf("env: %q is not a valid variable name", k)
		}
	}
	return nil
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
