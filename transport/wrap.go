package transport

import (
	"crypto/rand"
	"encoding/hex"
	"sort"
	"strings"
)

// killWrapper makes a remote command killable as a whole: the command runs
// in the background of a small shell that, on TERM (sent by the session's
// signal request when a step is cancelled), kills its whole process group.
// Without it only the login shell would get the signal and the command's
// children would run on. Standard input is kept for the command (an
// asynchronous list would otherwise read /dev/null).
//
// The token, a random word on the wrapper's command line, lets a second
// session find the wrapper with pkill -f: OpenSSH does not act on the
// session's signal request in every version and configuration.
func killWrapper(line, token string) string {
	return "trap 'trap - TERM INT HUP; kill -TERM 0 2>/dev/null' TERM INT HUP; : " + token + "; exec 3<&0; " +
		"/bin/sh -c " + quote(line) + " 0<&3 3<&- & wait $!"
}

// newToken returns a random word that marks one command's wrapper.
func newToken() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return "runbook-" + hex.EncodeToString(b[:])
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
