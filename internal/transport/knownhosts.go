package transport

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// knownHosts is what known_hosts files say, read as OpenSSH reads them
// (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): plain host keys, CAs trusted to
// certify host keys (@cert-authority) and keys never to accept
// (@revoked), each for the hosts its patterns match (wildcards, !negation,
// hashed names).
//
// golang.org/x/crypto/ssh/knownhosts cannot be used for the whole: it
// takes a @cert-authority line's key for a plain host key of the host (a
// certified host then shows as a changed key), and checks @revoked against
// a certificate as a whole, not against its key and its CA.
type knownHosts struct {
	lines []knownLine
}

type knownLine struct {
	file     string
	line     int
	marker   string // "", "cert-authority" or "revoked"
	patterns []string
	key      ssh.PublicKey
}

func (l *knownLine) where() string { return fmt.Sprintf("%s:%d", l.file, l.line) }

// loadKnownHosts reads files; a missing one is skipped.
func loadKnownHosts(files []string) (*knownHosts, error) {
	kh := &knownHosts{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
		for n, raw := range bytes.Split(b, []byte("\n")) {
			line := bytes.TrimSpace(raw)
			if len(line) == 0 || line[0] == '#' {
				continue
			}
			marker, hosts, key, _, _, err := ssh.ParseKnownHosts(line)
			if err != nil {
				// OpenSSH skips a line it cannot read; so does a key type
				// this library does not know.
				continue
			}
			kh.lines = append(kh.lines, knownLine{file: f, line: n + 1, marker: marker, patterns: hosts, key: key})
		}
	}
	return kh, nil
}

// hostName is the name OpenSSH looks a host's plain keys up by: host, or
// [host]:port for another port than 22.
func hostName(addr string) string { return knownhosts.Normalize(addr) }

// caNames are the names OpenSSH looks a host's CAs (and revoked keys) up
// by: a CA line matches when its patterns match [host]:port or the bare
// host (as OpenSSH 9 does: "*,!host" still trusts the CA for [host]:port).
func caNames(addr string) []string {
	names := []string{hostName(addr)}
	if host, _, err := net.SplitHostPort(addr); err == nil && strings.ToLower(host) != names[0] {
		names = append(names, strings.ToLower(host))
	}
	return names
}

// lookupNames are the names a host's keys are looked up by: its
// HostKeyAlias when it has one (as OpenSSH: the alias alone, no port), and
// the principal its certificate must name.
func lookupNames(cfg *SSHConfig, addr string) (name string, ca []string, principal string) {
	if a := strings.ToLower(cfg.HostKeyAlias); a != "" {
		return a, []string{a}, a
	}
	principal, _, err := net.SplitHostPort(addr)
	if err != nil {
		principal = addr
	}
	return hostName(addr), caNames(addr), strings.ToLower(principal)
}

// matchesAny reports whether the line matches one of names.
func (l *knownLine) matchesAny(names []string) bool {
	for _, n := range names {
		if l.matches(n) {
			return true
		}
	}
	return false
}

// matches reports whether the line's patterns match name: one pattern
// matches and no negated one does.
func (l *knownLine) matches(name string) bool {
	name = strings.ToLower(name)
	ok := false
	for _, p := range l.patterns {
		if strings.HasPrefix(p, "|1|") {
			if hashedMatch(p, name) {
				ok = true
			}
			continue
		}
		neg := strings.HasPrefix(p, "!")
		if wildcard(strings.ToLower(strings.TrimPrefix(p, "!")), name) {
			if neg {
				return false
			}
			ok = true
		}
	}
	return ok
}

// hashedMatch matches a hashed name, |1|salt|HMAC-SHA1(salt, name).
func hashedMatch(p, name string) bool {
	parts := strings.Split(p, "|")
	if len(parts) != 4 {
		return false
	}
	salt, err1 := base64.StdEncoding.DecodeString(parts[2])
	want, err2 := base64.StdEncoding.DecodeString(parts[3])
	if err1 != nil || err2 != nil {
		return false
	}
	m := hmac.New(sha1.New, salt)
	m.Write([]byte(name))
	return hmac.Equal(m.Sum(nil), want)
}

// wildcard matches OpenSSH patterns: * any run of characters, ? one.
func wildcard(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for i := len(s); i >= 0; i-- {
				if wildcard(p[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
		default:
			if s == "" || s[0] != p[0] {
				return false
			}
		}
		p, s = p[1:], s[1:]
	}
	return s == ""
}

func sameKey(a, b ssh.PublicKey) bool { return bytes.Equal(a.Marshal(), b.Marshal()) }

// revoked returns the @revoked line for the host that lists key, or nil.
func (kh *knownHosts) revoked(names []string, key ssh.PublicKey) *knownLine {
	for i := range kh.lines {
		l := &kh.lines[i]
		if l.marker == "revoked" && l.matchesAny(names) && sameKey(l.key, key) {
			return l
		}
	}
	return nil
}

// authority reports whether a @cert-authority line for the host lists ca.
func (kh *knownHosts) authority(names []string, ca ssh.PublicKey) bool {
	for _, l := range kh.lines {
		if l.marker == "cert-authority" && l.matchesAny(names) && sameKey(l.key, ca) {
			return true
		}
	}
	return false
}

// hasAuthority reports whether any CA is trusted for the host.
func (kh *knownHosts) hasAuthority(names []string) bool {
	for _, l := range kh.lines {
		if l.marker == "cert-authority" && l.matchesAny(names) {
			return true
		}
	}
	return false
}

// plain returns the plain keys known for name.
func (kh *knownHosts) plain(name string) []*knownLine {
	var out []*knownLine
	for i := range kh.lines {
		l := &kh.lines[i]
		if l.marker == "" && l.matches(name) {
			out = append(out, l)
		}
	}
	return out
}

// RevokedKeyError is a host key, or the CA of its certificate, listed as
// @revoked in known_hosts.
type RevokedKeyError struct {
	Host, Addr, Fingerprint, What, KnownAt string
}

func (e *RevokedKeyError) Error() string {
	return fmt.Sprintf("host key of %s (%s) is REVOKED: %s %s is listed as @revoked at %s; it is never accepted", e.Host, e.Addr, e.What, e.Fingerprint, e.KnownAt)
}

// check decides on the key a host presents, as OpenSSH does: a revoked key
// (or certificate key, or its CA) is refused; a host certificate is
// accepted when a CA trusted for the host signed it for the host's name
// and it is valid now, and otherwise its plain key is judged; a plain key
// is accepted when listed for the host. It returns a *HostKeyError for a
// key that is not known or does not match.
func (kh *knownHosts) check(cfg *SSHConfig, addr string, key ssh.PublicKey) error {
	name, names, principal := lookupNames(cfg, addr)
	hk := &HostKeyError{Host: cfg.Name, Addr: addr, Fingerprint: ssh.FingerprintSHA256(key), KeyType: key.Type()}
	refuse := func(what string, k ssh.PublicKey, l *knownLine) error {
		return &RevokedKeyError{Host: cfg.Name, Addr: addr, Fingerprint: ssh.FingerprintSHA256(k), What: what, KnownAt: l.where()}
	}
	plainKey := key
	if cert, ok := key.(*ssh.Certificate); ok {
		plainKey = cert.Key
		if l := kh.revoked(names, cert.SignatureKey); l != nil {
			return refuse("the CA that certified it", cert.SignatureKey, l)
		}
		if l := kh.revoked(names, cert.Key); l != nil {
			return refuse("its key", cert.Key, l)
		}
		if kh.authority(names, cert.SignatureKey) {
			// CertChecker.CheckCert does not look at the type; OpenSSH
			// refuses a user certificate offered as a host key.
			if cert.CertType != ssh.HostCert {
				return fmt.Errorf("host certificate of %s (%s), signed by a CA trusted in known_hosts, is not valid: not a host certificate (a user certificate, type %d)", cfg.Name, addr, cert.CertType)
			}
			checker := &ssh.CertChecker{IsHostAuthority: func(ssh.PublicKey, string) bool { return true }}
			if err := checker.CheckCert(principal, cert); err != nil {
				return fmt.Errorf("host certificate of %s (%s), signed by a CA trusted in known_hosts, is not valid: %v", cfg.Name, addr, err)
			}
			return nil
		}
		// OpenSSH: "No matching CA found. Retry with plain key."
	}
	if l := kh.revoked(names, plainKey); l != nil {
		return refuse("its key", plainKey, l)
	}
	known := kh.plain(name)
	for _, l := range known {
		if sameKey(l.key, plainKey) {
			return nil
		}
	}
	if len(known) > 0 {
		hk.Changed = true
		hk.KnownFile, hk.KnownLine = known[0].file, known[0].line
	}
	return hk
}

// algorithms returns the host key algorithms to ask the server for, in
// OpenSSH's order: certificates first when a CA is trusted for the host,
// then the types of the plain keys known for it; nil when nothing is known
// (the library's defaults).
func (kh *knownHosts) algorithms(cfg *SSHConfig, addr string) []string {
	name, names, _ := lookupNames(cfg, addr)
	var out []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	if kh.hasAuthority(names) {
		for _, a := range []string{ssh.CertAlgoED25519v01, ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01, ssh.CertAlgoECDSA521v01, ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01} {
			add(a)
		}
	}
	for _, l := range kh.plain(name) {
		switch t := l.key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512)
			add(ssh.KeyAlgoRSASHA256)
			add(t)
		default:
			add(t)
		}
	}
	if len(out) > 0 && kh.hasAuthority(names) && len(kh.plain(name)) == 0 {
		// Only a CA: a server without a certificate must still get to say
		// which key it has, for a clear "not known".
		for _, a := range []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256} {
			add(a)
		}
	}
	return out
}
