package transport

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kevinburke/ssh_config"
)

// resolveWithLibrary reads the SSH configuration with
// github.com/kevinburke/ssh_config where OpenSSH's ssh is not installed to
// read it: Host blocks and Include, no Match, no tokens.
func resolveWithLibrary(t SSHTarget) (SSHConfig, error) {
	settings := ssh_config.DefaultUserSettings
	if t.ConfigFile != "" {
		f := t.ConfigFile
		settings = &ssh_config.UserSettings{IgnoreErrors: false}
		settings.ConfigFinder(func() string { return f })
	}
	return libraryConfig(settings, t, t.Name, t.addressOrName(), t.Port, t.User, t.IdentityFile, t.KnownHosts, 0)
}

func libraryConfig(settings *ssh_config.UserSettings, t SSHTarget, name, alias string, port int, user, identity, knownHosts string, depth int) (SSHConfig, error) {
	// configured returns a value only when the configuration sets it, not
	// the library's built-in default.
	configured := func(key string) string {
		v := settings.Get(alias, key)
		if v == ssh_config.Default(key) {
			return ""
		}
		return v
	}
	if depth > 5 {
		return SSHConfig{}, fmt.Errorf("host %s: ProxyJump nests too deep", name)
	}
	cfg := SSHConfig{Name: name, Address: alias, Port: port, User: user, AcceptNewHostKeys: t.AcceptNewHostKeys, Passphrase: t.Passphrase}
	if hn := configured("HostName"); hn != "" {
		cfg.Address = hn
	}
	if cfg.Port == 0 {
		if p, err := strconv.Atoi(configured("Port")); err == nil {
			cfg.Port = p
		}
	}
	if v, err := strconv.Atoi(configured("ServerAliveInterval")); err == nil && v > 0 {
		cfg.Keepalive = time.Duration(v) * time.Second
	}
	if n, err := strconv.Atoi(configured("ServerAliveCountMax")); err == nil && n > 0 {
		cfg.KeepaliveMissed = n
	}
	if v, err := strconv.Atoi(configured("ConnectTimeout")); err == nil && v > 0 {
		cfg.ConnectTimeout = time.Duration(v) * time.Second
	}
	if cfg.User == "" {
		cfg.User = configured("User")
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
	cfg.IdentitiesOnly = strings.EqualFold(configured("IdentitiesOnly"), "yes")
	switch {
	case knownHosts != "":
		cfg.KnownHosts = []string{knownHosts}
	case configured("UserKnownHostsFile") != "":
		cfg.KnownHosts = strings.Fields(configured("UserKnownHostsFile"))
	default:
		cfg.KnownHosts = []string{"~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts"}
	}
	if pc := configured("ProxyCommand"); pc != "" && !strings.EqualFold(pc, "none") {
		return cfg, fmt.Errorf("host %s: ProxyCommand %s: runbook cannot connect through a command; use ProxyJump, or reach the host directly", name, pc)
	}
	if jump := configured("ProxyJump"); jump != "" && !strings.EqualFold(jump, "none") {
		hops := strings.Split(jump, ",")
		ju, jh, jp := splitJump(strings.TrimSpace(hops[len(hops)-1]))
		jcfg, err := libraryConfig(settings, t, jh, jh, jp, ju, "", "", depth+1)
		if err != nil {
			return cfg, err
		}
		if len(hops) > 1 && jcfg.ProxyJump == nil {
			fu, fh, fp := splitJump(strings.TrimSpace(strings.Join(hops[:len(hops)-1], ",")))
			first, err := libraryConfig(settings, t, fh, fh, fp, fu, "", "", depth+1)
			if err != nil {
				return cfg, err
			}
			jcfg.ProxyJump = &first
		}
		cfg.ProxyJump = &jcfg
	}
	return cfg, nil
}
