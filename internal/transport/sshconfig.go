package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// SSHTarget is what runbook knows of a host before OpenSSH's configuration
// is read: the inventory's settings (which win over ~/.ssh/config, as
// ssh's command-line options do) and how runbook was started.
type SSHTarget struct {
	// Name is the inventory name; Address, when set, is what ssh would be
	// given instead (an ssh_config Host alias or an address).
	Name, Address string
	Port          int
	User          string
	// IdentityFile replaces the configured identity files.
	IdentityFile string
	// KnownHosts replaces the configured known_hosts files.
	KnownHosts string
	// ConfigFile replaces ~/.ssh/config and /etc/ssh/ssh_config, as ssh -F.
	ConfigFile        string
	AcceptNewHostKeys bool
	Passphrase        func(file string) ([]byte, error)
}

// ResolveSSH returns how to reach t as OpenSSH would: it asks OpenSSH's own
// ssh -G for the host's configuration, so ~/.ssh/config is read exactly as
// ssh reads it (Include, Match host/user/exec, negated patterns, the first
// value winning, canonical host names, HostName tokens), then expands the
// tokens ssh expands itself (%h, %p, %r, %d, %u, ... in IdentityFile and
// UserKnownHostsFile). The notes name the options runbook does not honour,
// with the file and line that sets them; an option that would take the
// connection somewhere else (ProxyCommand) is an error instead.
func ResolveSSH(ctx context.Context, t SSHTarget) (SSHConfig, []string, error) {
	if _, err := exec.LookPath("ssh"); err != nil {
		cfg, err := resolveWithLibrary(t)
		note := "OpenSSH's ssh is not installed here, so the SSH configuration is read by runbook's own reader, which does not evaluate Match blocks, tokens or canonical host names: install openssh-client for ssh's own reading"
		return cfg, []string{note}, err
	}
	r := &resolver{ctx: ctx, target: t}
	return r.resolve(t.Name, t.addressOrName(), t.Port, t.User, t.IdentityFile, t.KnownHosts, 0, true)
}

func (t SSHTarget) addressOrName() string {
	if t.Address != "" {
		return t.Address
	}
	return t.Name
}

type resolver struct {
	ctx    context.Context
	target SSHTarget
	notes  []string
	// applying are the places of the configuration that apply to the host
	// being resolved, in the order ssh reads them (from its debug log).
	applying []block
}

// block is a part of a configuration file that applies to a host: the
// lines after a Host or Match line (line), or before the file's first
// (line 0).
type block struct {
	file string
	line int
}

// sshG runs ssh -G and returns its options (lower-case keys), each with
// its values in order.
func (r *resolver) sshG(configFile, host string, port int, user string) (map[string][]string, error) {
	if strings.HasPrefix(host, "-") || host == "" {
		return nil, fmt.Errorf("host %q: a host name cannot be empty or start with -", host)
	}
	args := []string{"-G"}
	// The debug log says which Host and Match blocks apply, for notes
	// that name the line an option comes from.
	verbose := configFile != os.DevNull
	if verbose {
		args = append(args, "-vvv")
	}
	if configFile != "" {
		args = append(args, "-F", configFile)
	}
	if port != 0 {
		args = append(args, "-p", strconv.Itoa(port))
	}
	if user != "" {
		args = append(args, "-l", user)
	}
	args = append(args, host)
	// Match exec runs commands; they get the time a connection would.
	ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", args...)
	var stdout, stderr bytes.Buffer
	var stderr2 []string
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var log []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.HasPrefix(l, "debug") || strings.HasPrefix(l, "OpenSSH_") {
			if verbose {
				log = append(log, l)
			}
			continue
		}
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "Pseudo-terminal") {
			stderr2 = append(stderr2, l)
		}
	}
	if verbose {
		r.applying = applyingBlocks(log)
	}
	if err != nil {
		msg := strings.Join(stderr2, "; ")
		if msg == "" {
			msg = err.Error()
		}
		where := "~/.ssh/config"
		if configFile != "" {
			where = configFile
		}
		return nil, fmt.Errorf("host %s: OpenSSH cannot read its configuration (%s): %s", host, where, msg)
	}
	opts := map[string][]string{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		opts[k] = append(opts[k], v)
	}
	return opts, nil
}

// honoured are the options runbook acts on; harmless are those whose
// setting changes nothing runbook does (logging, display, what ssh does
// with a terminal or its own key store). Any other option set in the
// configuration gets a note.
var honoured = map[string]bool{
	"hostname": true, "port": true, "user": true, "identityfile": true, "identitiesonly": true,
	"userknownhostsfile": true, "globalknownhostsfile": true, "stricthostkeychecking": true,
	"proxyjump": true, "proxycommand": true, "connecttimeout": true, "serveraliveinterval": true,
	"serveralivecountmax": true, "hostkeyalias": true,
	// Resolved by ssh -G itself before runbook sees the result.
	"canonicalizehostname": true, "canonicaldomains": true, "canonicalizefallbacklocal": true,
	"canonicalizemaxdots": true, "canonicalizepermittedcnames": true,
}

var harmless = map[string]bool{
	"loglevel": true, "logverbose": true, "visualhostkey": true, "hashknownhosts": true, "updatehostkeys": true,
	"addkeystoagent": true, "batchmode": true, "checkhostip": true, "escapechar": true, "requesttty": true,
	"sessiontype": true, "stdinnull": true, "forkafterauthentication": true, "permitlocalcommand": true,
	"localcommand": true, "tcpkeepalive": true, "compression": true, "sendenv": true,
	"gssapiauthentication": true, "gssapidelegatecredentials": true, "passwordauthentication": true,
	"kbdinteractiveauthentication": true, "challengeresponseauthentication": true, "hostbasedauthentication": true,
	"forwardx11": true, "forwardx11trusted": true, "forwardx11timeout": true, "xauthlocation": true,
	"numberofpasswordprompts": true, "connectionattempts": true, "enableescapecommandline": true,
	"obscurekeystroketiming": true, "verifyhostkeydns": true, "pubkeyauthentication": true,
	"exitonforwardfailure": true, "clearallforwardings": true, "gatewayports": true,
}

// failClosed are options that make ssh refuse a host or keep keys away
// from it, which runbook does not implement: connecting anyway would do
// what the configuration forbids, so their setting is an error, never a
// note. IdentityAgent naming SSH_AUTH_SOCK is what runbook does anyway.
var failClosed = map[string]string{
	"revokedhostkeys": "runbook cannot read a revoked-keys file (KRL) and will not connect to a host the file may revoke; list revoked keys as @revoked in known_hosts instead",
	"identityagent":   "runbook uses only the agent at $SSH_AUTH_SOCK and will not use an agent the configuration excludes or miss the one it names; remove the option (or point SSH_AUTH_SOCK at the agent)",
}

// resolve reads the configuration of one host; its own ProxyJump is
// followed when ownJump is set (a host reached directly, or the first hop
// of a chain: ssh gives every later hop of a chain the hops before it with
// -J, which overrides the hop's own ProxyJump).
func (r *resolver) resolve(name, alias string, port int, user, identity, knownHosts string, depth int, ownJump bool) (SSHConfig, []string, error) {
	t := r.target
	if depth > 10 {
		return SSHConfig{}, r.notes, fmt.Errorf("host %s: ProxyJump nests too deep", name)
	}
	got, err := r.sshG(t.ConfigFile, alias, port, user)
	if err != nil {
		return SSHConfig{}, r.notes, err
	}
	// OpenSSH's defaults for this host: what the configuration changes is
	// what differs from them.
	base, err := r.sshG(os.DevNull, alias, port, user)
	if err != nil {
		return SSHConfig{}, r.notes, err
	}
	set := func(k string) bool { return strings.Join(got[k], "\n") != strings.Join(base[k], "\n") }
	one := func(k string) string {
		if v := got[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	cfg := SSHConfig{Name: name, Address: one("hostname"), Port: port, User: user, AcceptNewHostKeys: t.AcceptNewHostKeys, Passphrase: t.Passphrase}
	if cfg.Port == 0 {
		cfg.Port, _ = strconv.Atoi(one("port"))
	}
	if cfg.User == "" && set("user") {
		cfg.User = one("user")
	}
	// runbook's default user is root, not the local user ssh would take.
	tok := r.tokens(alias, cfg)
	if set("hostkeyalias") {
		// %k is the host key alias when there is one (ssh_config(5)).
		tok['k'] = one("hostkeyalias")
	}
	if identity != "" {
		cfg.IdentityFiles = []string{identity}
	} else {
		for _, f := range got["identityfile"] {
			p, err := tok.expand(f)
			if err != nil {
				return cfg, r.notes, fmt.Errorf("host %s: %sIdentityFile %s: %w", name, r.where("IdentityFile"), f, err)
			}
			cfg.IdentityFiles = append(cfg.IdentityFiles, p)
		}
	}
	cfg.IdentitiesOnly = one("identitiesonly") == "yes"
	if knownHosts != "" {
		cfg.KnownHosts = []string{knownHosts}
	} else {
		for _, k := range []string{"userknownhostsfile", "globalknownhostsfile"} {
			for _, f := range strings.Fields(one(k)) {
				if f == "none" { // ssh_config(5): no file, not ./none
					continue
				}
				// ssh -G prints these expanded already (tokens,
				// environment, ~): expanding again would read %%h as a
				// host name.
				cfg.KnownHosts = append(cfg.KnownHosts, ExpandHome(f))
			}
		}
	}
	switch strings.ToLower(one("stricthostkeychecking")) {
	case "accept-new":
		cfg.AcceptNewHostKeys = true
	case "no", "off", "false":
		r.note("StrictHostKeyChecking", "StrictHostKeyChecking no is not honoured: runbook checks host keys strictly (--accept-new-host-keys trusts a new host's key on first use, never a changed one)")
	}
	if v := one("proxycommand"); v != "" && v != "none" {
		return cfg, r.notes, fmt.Errorf("host %s: %sProxyCommand %s: runbook cannot connect through a command; use ProxyJump, or reach the host directly", name, r.where("ProxyCommand"), v)
	}
	if set("hostkeyalias") {
		cfg.HostKeyAlias = one("hostkeyalias")
	}
	if v, err := strconv.Atoi(one("connecttimeout")); err == nil && v > 0 {
		cfg.ConnectTimeout = time.Duration(v) * time.Second
	}
	if v, err := strconv.Atoi(one("serveraliveinterval")); err == nil && v > 0 {
		cfg.Keepalive = time.Duration(v) * time.Second
	}
	if v, err := strconv.Atoi(one("serveralivecountmax")); err == nil && v > 0 && set("serveralivecountmax") {
		cfg.KeepaliveMissed = v
	}
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if why, ok := failClosed[k]; ok && set(k) {
			if v := one(k); k == "identityagent" && (v == "SSH_AUTH_SOCK" || v == "$SSH_AUTH_SOCK") {
				continue
			}
			return cfg, r.notes, fmt.Errorf("host %s: %s%s %s: %s", name, r.where(k), k, strings.Join(got[k], ", "), why)
		}
		if !honoured[k] && !harmless[k] && set(k) {
			r.note(k, "%s %s is not honoured by runbook", k, strings.Join(got[k], ", "))
		}
	}
	if jump := one("proxyjump"); ownJump && jump != "" && jump != "none" {
		j, err := r.chain(strings.Split(jump, ","), depth+1)
		if err != nil {
			return cfg, r.notes, err
		}
		cfg.ProxyJump = &j
	}
	return cfg, r.notes, nil
}

// chain resolves the jump hops a,b,...,z of a ProxyJump: the target is
// reached through z, z through the hops before it, and only a, the first,
// through its own ProxyJump.
func (r *resolver) chain(hops []string, depth int) (SSHConfig, error) {
	ju, jh, jp := splitJump(strings.TrimSpace(hops[len(hops)-1]))
	if jh == "" {
		return SSHConfig{}, fmt.Errorf("ProxyJump %s: an empty hop", strings.Join(hops, ","))
	}
	j, _, err := r.resolve(jh, jh, jp, ju, "", "", depth, len(hops) == 1)
	if err != nil {
		return SSHConfig{}, err
	}
	if len(hops) > 1 {
		before, err := r.chain(hops[:len(hops)-1], depth+1)
		if err != nil {
			return SSHConfig{}, err
		}
		j.ProxyJump = &before
	}
	return j, nil
}

func (r *resolver) note(option, format string, args ...any) {
	n := r.where(option) + fmt.Sprintf(format, args...)
	for _, m := range r.notes {
		if m == n {
			return
		}
	}
	r.notes = append(r.notes, n)
}

// where returns "FILE:LINE: " of the first line that sets option in the
// files ssh reads (Include followed), or "" when none is found.
func (r *resolver) where(option string) string {
	option = strings.ToLower(option)
	for _, b := range r.applying {
		if w := findInBlock(b, option); w != "" {
			return w + ": "
		}
	}
	return ""
}

// findInBlock returns FILE:LINE where option is set in block b, or "".
func findInBlock(b block, option string) string {
	data, err := os.ReadFile(b.file)
	if err != nil {
		return ""
	}
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		if n <= b.line {
			continue
		}
		f := strings.FieldsFunc(line, func(r rune) bool { return unicode.IsSpace(r) || r == '=' })
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch key := strings.ToLower(f[0]); key {
		case "host", "match":
			return ""
		case option:
			return fmt.Sprintf("%s:%d", b.file, n)
		}
	}
	return ""
}

// applyingBlocks reads ssh -vvv's log for the parts of the configuration
// that apply: every file read (its lines before any Host or Match), each
// Host block "Applying options for" the host, each Match block found.
func applyingBlocks(log []string) []block {
	var out []block
	var pending *block
	for _, l := range log {
		switch {
		case strings.HasPrefix(l, "debug1: Reading configuration data "):
			out = append(out, block{file: strings.TrimSpace(strings.TrimPrefix(l, "debug1: Reading configuration data "))})
		case strings.Contains(l, ": Applying options for "):
			if f, n, ok := logFileLine(l); ok {
				out = append(out, block{f, n})
			}
		case strings.HasPrefix(l, "debug3: ") && strings.Contains(l, ": matched '"):
			if f, n, ok := logFileLine(l); ok {
				pending = &block{f, n}
			}
		case strings.HasPrefix(l, "debug2: match found"):
			if pending != nil {
				out = append(out, *pending)
			}
			pending = nil
		case strings.HasPrefix(l, "debug2: match not found"):
			pending = nil
		}
	}
	return out
}

// logFileLine reads the FILE and LINE of "debugN: FILE line LINE: ...".
func logFileLine(l string) (string, int, bool) {
	_, rest, ok := strings.Cut(l, ": ")
	i := strings.Index(rest, " line ")
	if !ok || i < 0 {
		return "", 0, false
	}
	num, _, _ := strings.Cut(rest[i+len(" line "):], ":")
	n, err := strconv.Atoi(num)
	return rest[:i], n, err == nil
}

// tokens are the values of ssh_config's % tokens for one connection
// (ssh_config(5) TOKENS).
type tokens map[byte]string

func (r *resolver) tokens(alias string, cfg SSHConfig) tokens {
	home, _ := os.UserHomeDir()
	local, _ := os.Hostname()
	short, _, _ := strings.Cut(local, ".")
	u, _ := user.Current()
	remoteUser := cfg.User
	if remoteUser == "" {
		remoteUser = "root"
	}
	t := tokens{'%': "%", 'd': home, 'h': cfg.Address, 'l': local, 'L': short, 'n': alias,
		'p': strconv.Itoa(cfg.Port), 'r': remoteUser, 'k': alias}
	if u != nil {
		t['u'], t['i'] = u.Username, u.Uid
	}
	sum := sha1.Sum([]byte(local + cfg.Address + strconv.Itoa(cfg.Port) + remoteUser))
	t['C'] = hex.EncodeToString(sum[:])
	return t
}

// expand replaces ~, the % tokens and the ${NAME} environment variables
// of s, as ssh does for IdentityFile and UserKnownHostsFile
// (ssh_config(5), TOKENS and ENVIRONMENT VARIABLES). A variable that is
// not set is an error, as it is for ssh.
func (t tokens) expand(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+1 < len(s) {
			if v, ok := t[s[i+1]]; ok {
				b.WriteString(v)
				i++
				continue
			}
		}
		if strings.HasPrefix(s[i:], "${") {
			if j := strings.IndexByte(s[i:], '}'); j > 2 {
				name := s[i+2 : i+j]
				v, ok := os.LookupEnv(name)
				if !ok {
					return "", fmt.Errorf("the environment variable %s is not set (ssh refuses the configuration too): set it, or write the path", name)
				}
				b.WriteString(v)
				i += j
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return ExpandHome(b.String()), nil
}

// splitJump parses [user@]host[:port], the host of an IPv6 address in
// brackets ([2001:db8::1]:22).
func splitJump(s string) (user, host string, port int) {
	// ssh -J also takes ssh://[user@]host[:port] (ssh(1)).
	s = strings.TrimSuffix(strings.TrimPrefix(s, "ssh://"), "/")
	if i := strings.LastIndex(s, "@"); i >= 0 {
		user, s = s[:i], s[i+1:]
	}
	if strings.HasPrefix(s, "[") {
		if i := strings.Index(s, "]"); i > 0 {
			host = s[1:i]
			if p, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], ":")); err == nil {
				port = p
			}
			return user, host, port
		}
	}
	host = s
	if i := strings.LastIndex(s, ":"); i >= 0 && !strings.Contains(s[:i], ":") {
		if p, err := strconv.Atoi(s[i+1:]); err == nil {
			host, port = s[:i], p
		}
	}
	return user, host, port
}
