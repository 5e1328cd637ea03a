package cli

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kevinburke/ssh_config"
	"golang.org/x/term"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/transport"
)

// sshOptions are the command-line settings of SSH connections.
type sshOptions struct {
	acceptNewHostKeys bool
	// configFile replaces ~/.ssh/config, as ssh -F does.
	configFile string
	settings   *ssh_config.UserSettings
}

func (o *sshOptions) userSettings() *ssh_config.UserSettings {
	if o.settings == nil {
		if o.configFile == "" {
			o.settings = ssh_config.DefaultUserSettings
		} else {
			f := o.configFile
			o.settings = &ssh_config.UserSettings{IgnoreErrors: false}
			o.settings.ConfigFinder(func() string { return f })
		}
	}
	return o.settings
}

// connector returns how runs reach SSH hosts: the inventory's settings,
// then ~/.ssh/config's (HostName, User, Port, IdentityFile,
// UserKnownHostsFile, ProxyJump), then OpenSSH's defaults with user root.
func (e *Env) connector(opt sshOptions) engine.Connector {
	return func(ctx context.Context, h *engine.HostSpec) (transport.Conn, error) {
		cfg, err := e.sshConfigFor(h.Name, h.Address, h.Port, h.User, h.IdentityFile, h.KnownHosts, &opt, 0)
		if err != nil {
			return nil, err
		}
		return transport.DialSSH(ctx, cfg)
	}
}

func (e *Env) sshConfigFor(name, address string, port int, user, identity, knownHosts string, opt *sshOptions, depth int) (transport.SSHConfig, error) {
	settings := opt.userSettings()
	// configured returns a value only when the configuration sets it, not
	// the library's built-in default.
	configured := func(alias, key string) string {
		v := settings.Get(alias, key)
		if v == ssh_config.Default(key) {
			return ""
		}
		return v
	}
	if depth > 5 {
		return transport.SSHConfig{}, fmt.Errorf("host %s: ProxyJump nests too deep", name)
	}
	alias := address
	if alias == "" {
		alias = name
	}
	cfg := transport.SSHConfig{Name: name, Address: alias, Port: port, User: user, AcceptNewHostKeys: opt.acceptNewHostKeys, Passphrase: e.passphrase()}
	if hn := configured(alias, "HostName"); hn != "" {
		cfg.Address = hn
	}
	if cfg.Port == 0 {
		if p, err := strconv.Atoi(configured(alias, "Port")); err == nil {
			cfg.Port = p
		}
	}
	if t, err := strconv.Atoi(configured(alias, "ServerAliveInterval")); err == nil && t > 0 {
		cfg.Keepalive = time.Duration(t) * time.Second
	}
	if n, err := strconv.Atoi(configured(alias, "ServerAliveCountMax")); err == nil && n > 0 {
		cfg.KeepaliveMissed = n
	}
	if t, err := strconv.Atoi(configured(alias, "ConnectTimeout")); err == nil && t > 0 {
		// OpenSSH's ConnectTimeout, in seconds.
		cfg.ConnectTimeout = time.Duration(t) * time.Second
	}
	if cfg.User == "" {
		cfg.User = configured(alias, "User")
	}
	if identity != "" {
		cfg.IdentityFiles = []string{identity}
	} else {
		for _, f := range settings.GetAll(alias, "IdentityFile") {
			if f != ssh_config.Default("IdentityFile") {
				cfg.IdentityFiles = append(cfg.IdentityFiles, f)
			}
		}
		if len(cfg.IdentityFiles) == 0 {
			cfg.IdentityFiles = []string{"~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"}
		}
	}
	cfg.IdentitiesOnly = strings.EqualFold(configured(alias, "IdentitiesOnly"), "yes")
	switch {
	case knownHosts != "":
		cfg.KnownHosts = []string{knownHosts}
	case configured(alias, "UserKnownHostsFile") != "":
		cfg.KnownHosts = strings.Fields(configured(alias, "UserKnownHostsFile"))
	default:
		cfg.KnownHosts = []string{"~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts"}
	}
	if jump := configured(alias, "ProxyJump"); jump != "" && !strings.EqualFold(jump, "none") {
		// A chain a,b reaches b through a: the last hop is the nearest.
		hops := strings.Split(jump, ",")
		last := strings.TrimSpace(hops[len(hops)-1])
		ju, jh, jp := splitJump(last)
		jcfg, err := e.sshConfigFor(jh, jh, jp, ju, "", "", opt, depth+1)
		if err != nil {
			return cfg, err
		}
		if len(hops) > 1 && jcfg.ProxyJump == nil {
			fu, fh, fp := splitJump(strings.TrimSpace(strings.Join(hops[:len(hops)-1], ",")))
			first, err := e.sshConfigFor(fh, fh, fp, fu, "", "", opt, depth+1)
			if err != nil {
				return cfg, err
			}
			jcfg.ProxyJump = &first
		}
		cfg.ProxyJump = &jcfg
	}
	return cfg, nil
}

// splitJump parses [user@]host[:port].
func splitJump(s string) (user, host string, port int) {
	if i := strings.LastIndex(s, "@"); i >= 0 {
		user, s = s[:i], s[i+1:]
	}
	host = s
	if i := strings.LastIndex(s, ":"); i >= 0 && !strings.Contains(s[:i], ":") {
		if p, err := strconv.Atoi(s[i+1:]); err == nil {
			host, port = s[:i], p
		}
	}
	return user, host, port
}

// passphrase asks for a key's passphrase on the terminal, or returns nil
// when stdin is not one.
func (e *Env) passphrase() func(file string) ([]byte, error) {
	f, ok := e.Stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return func(file string) ([]byte, error) {
		fmt.Fprintf(e.Stderr, "passphrase for %s: ", file)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.Stderr)
		return b, err
	}
}
