package transport_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/internal/testsshd"
	"github.com/runbook-dev/runbook/internal/transport"
)

// sshG is OpenSSH's own reading of a configuration for host.
func sshG(t *testing.T, config, host string, port int, user string) map[string][]string {
	t.Helper()
	args := []string{"-G", "-F", config}
	if port != 0 {
		args = append(args, "-p", strconv.Itoa(port))
	}
	if user != "" {
		args = append(args, "-l", user)
	}
	out, err := exec.Command("ssh", append(args, host)...).Output()
	if err != nil {
		t.Fatalf("ssh -G %s: %v", host, err)
	}
	m := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(l, " ")
		m[k] = append(m[k], v)
	}
	return m
}

// TestResolveSSHAsOpenSSH compares runbook's reading of ssh_config with
// ssh -G's for configurations that use what OpenSSH offers: Include,
// Match host/user/exec, negated Host patterns, the first value winning,
// tokens, known_hosts lists, ProxyJump, StrictHostKeyChecking. Where the
// case can connect, runbook and OpenSSH's ssh both reach a real sshd with
// the resolved settings.
func TestResolveSSHAsOpenSSH(t *testing.T) {
	requireSSH(t)
	s := testsshd.Start(t)
	dir := t.TempDir()
	// The client key under a name made of tokens: %h_%r_%p.
	tokKey := filepath.Join(dir, fmt.Sprintf("%s_root_%d", s.Host, s.Port))
	for _, ext := range []string{"", ".pub"} {
		copyFile(t, s.IdentityFile+ext, tokKey+ext)
	}
	other := filepath.Join(dir, "included")
	if err := os.WriteFile(other, []byte(fmt.Sprintf("Host inc\n  HostName %s\n  Port %d\n", s.Host, s.Port)), 0o600); err != nil {
		t.Fatal(err)
	}
	common := fmt.Sprintf("  IdentityFile %s\n  UserKnownHostsFile %s\n  IdentitiesOnly yes\n", s.IdentityFile, s.KnownHosts)
	// The key and known_hosts under the host key alias, in a directory
	// named by an environment variable: ${RB_TEST_KEYDIR}/%k.
	aliasKey := filepath.Join(dir, "keyalias")
	for _, ext := range []string{"", ".pub"} {
		copyFile(t, s.IdentityFile+ext, aliasKey+ext)
	}
	kh, err := os.ReadFile(s.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	var aliased []string
	for _, l := range strings.Split(strings.TrimSpace(string(kh)), "\n") {
		if f := strings.Fields(l); len(f) >= 3 {
			aliased = append(aliased, "keyalias "+strings.Join(f[1:], " "))
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "kh_keyalias"), []byte(strings.Join(aliased, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RB_TEST_KEYDIR", dir)
	tests := []struct {
		name, config, host string
		port               int
		user               string
		connect            bool
		// wantIdentity is the first identity file, tokens expanded.
		wantIdentity string
	}{
		{name: "Match host and exec", host: "db2", connect: true, config: fmt.Sprintf("Match host db2 exec \"test -d %s\"\n  HostName %s\n  Port %d\n%s", dir, s.Host, s.Port, common)},
		{name: "Match exec false", host: "db2", config: fmt.Sprintf("Match host db2 exec false\n  Port 2\nHost *\n  HostName %s\n", s.Host)},
		{name: "negated Host pattern", host: "db3", config: "Host * !db3\n  User nobody\n  Port 2\nHost *\n  User admin\n"},
		{name: "first value wins", host: "db", connect: true, config: fmt.Sprintf("Host db\n  Port %d\n  HostName %s\n%sHost *\n  Port 1\n  HostName 10.255.255.1\n", s.Port, s.Host, common)},
		{name: "Include", host: "inc", connect: true, config: fmt.Sprintf("Include %s\nHost *\n%s", other, common)},
		{name: "HostName token", host: "db", config: "Host db\n  HostName %h.example.net\n"},
		{name: "tokens in IdentityFile", host: "tok", connect: true, wantIdentity: tokKey, config: fmt.Sprintf("Host tok\n  HostName %s\n  Port %d\n  User root\n  IdentityFile %s/%%h_%%r_%%p\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n", s.Host, s.Port, dir, s.KnownHosts)},
		{name: "environment and %k in IdentityFile and UserKnownHostsFile", host: "envtok", connect: true, wantIdentity: aliasKey, config: fmt.Sprintf("Host envtok\n  HostName %s\n  Port %d\n  User root\n  HostKeyAlias keyalias\n  IdentityFile ${RB_TEST_KEYDIR}/%%k\n  UserKnownHostsFile ${RB_TEST_KEYDIR}/kh_%%k\n  IdentitiesOnly yes\n", s.Host, s.Port)},
		{name: "known_hosts lists", host: "db", config: "Host db\n  UserKnownHostsFile /x/one ~/two\n  GlobalKnownHostsFile /etc/three\n"},
		{name: "Match user from the inventory", host: "db", user: "admin", config: "Match user admin\n  Port 2222\n"},
		{name: "inventory port wins", host: "db", port: 2022, config: "Host db\n  Port 2222\n"},
		{name: "ProxyJump", host: "behind", config: "Host behind\n  ProxyJump ops@jump:2200\nHost jump\n  HostName 10.0.0.9\n  IdentityFile /k/jump\n"},
		{name: "ProxyJump chain", host: "behind", config: "Host behind\n  ProxyJump j1,j2\nHost j2\n  Port 2202\n"},
		// ssh reaches each later hop of a chain with -J and the hops before
		// it, which overrides that hop's own ProxyJump.
		{name: "ProxyJump chain of three, a hop with its own ProxyJump", host: "behind", config: "Host behind\n  ProxyJump ops@j1:2201,j2,[::1]:2203\nHost j2\n  ProxyJump nosuchhost.invalid\n  Port 2202\n"},
		{name: "StrictHostKeyChecking accept-new", host: "db", config: "Host db\n  StrictHostKeyChecking accept-new\n"},
		{name: "Host alias with canonical case", host: "DB", config: "Host db\n  Port 2200\n"},
		{name: "HostKeyAlias", host: "db", config: "Host db\n  HostKeyAlias pg-primary\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := sshConfigFile(t, t.TempDir(), tt.config)
			cfg, notes, err := transport.ResolveSSH(context.Background(), transport.SSHTarget{Name: "h", Address: tt.host, Port: tt.port, User: tt.user, ConfigFile: file})
			if err != nil {
				t.Fatal(err)
			}
			if len(notes) > 0 {
				t.Errorf("notes: %v", notes)
			}
			compareWithSSHG(t, file, tt.host, tt.port, tt.user, cfg)
			if tt.wantIdentity != "" && (len(cfg.IdentityFiles) == 0 || cfg.IdentityFiles[0] != tt.wantIdentity) {
				t.Errorf("identity files %v, want %s first", cfg.IdentityFiles, tt.wantIdentity)
			}
			if !tt.connect {
				return
			}
			if out, err := exec.Command("ssh", "-F", file, "-o", "BatchMode=yes", tt.host, "true").CombinedOutput(); err != nil {
				t.Fatalf("OpenSSH's ssh with this configuration: %v %s", err, out)
			}
			c, err := transport.DialSSH(context.Background(), cfg)
			if err != nil {
				t.Fatalf("runbook with this configuration: %v", err)
			}
			c.Close()
		})
	}
}

// compareWithSSHG checks each setting runbook uses against ssh -G.
func compareWithSSHG(t *testing.T, file, host string, port int, user string, cfg transport.SSHConfig) {
	t.Helper()
	g := sshG(t, file, host, port, user)
	def := sshG(t, os.DevNull, host, port, user)
	if cfg.Address != g["hostname"][0] {
		t.Errorf("address %q, ssh -G hostname %q", cfg.Address, g["hostname"][0])
	}
	if strconv.Itoa(cfg.Port) != g["port"][0] {
		t.Errorf("port %d, ssh -G port %s", cfg.Port, g["port"][0])
	}
	wantUser := ""
	if g["user"][0] != def["user"][0] || user != "" {
		wantUser = g["user"][0]
	}
	if cfg.User != wantUser {
		t.Errorf("user %q, ssh -G user %q (default %q)", cfg.User, g["user"][0], def["user"][0])
	}
	if len(cfg.IdentityFiles) != len(g["identityfile"]) {
		t.Errorf("identity files %v, ssh -G %v", cfg.IdentityFiles, g["identityfile"])
	}
	var kh []string
	for _, k := range []string{"userknownhostsfile", "globalknownhostsfile"} {
		for _, f := range strings.Fields(g[k][0]) {
			kh = append(kh, transport.ExpandHome(f))
		}
	}
	if strings.Join(cfg.KnownHosts, " ") != strings.Join(kh, " ") {
		t.Errorf("known hosts %v, ssh -G %v", cfg.KnownHosts, kh)
	}
	if alias := g["hostkeyalias"]; len(alias) > 0 && cfg.HostKeyAlias != alias[0] || len(alias) == 0 && cfg.HostKeyAlias != "" {
		t.Errorf("HostKeyAlias %q, ssh -G %v", cfg.HostKeyAlias, alias)
	}
	if cfg.IdentitiesOnly != (g["identitiesonly"][0] == "yes") {
		t.Errorf("IdentitiesOnly %v, ssh -G %s", cfg.IdentitiesOnly, g["identitiesonly"][0])
	}
	if cfg.AcceptNewHostKeys != (g["stricthostkeychecking"][0] == "accept-new") {
		t.Errorf("accept new host keys %v, ssh -G StrictHostKeyChecking %s", cfg.AcceptNewHostKeys, g["stricthostkeychecking"][0])
	}
	jump := ""
	if v := g["proxyjump"]; len(v) > 0 {
		jump = v[0]
	}
	var chain []string
	for j := cfg.ProxyJump; j != nil; j = j.ProxyJump {
		chain = append([]string{j.Name}, chain...)
	}
	var hops []string
	for _, h := range strings.Split(jump, ",") {
		if h != "" {
			_, name, _ := strings.Cut("@"+h, "@")
			if i := strings.LastIndex(name, "@"); i >= 0 {
				name = name[i+1:]
			}
			if v6, _, ok := strings.Cut(strings.TrimPrefix(name, "["), "]"); ok && strings.HasPrefix(name, "[") {
				name = v6
			} else {
				name, _, _ = strings.Cut(name, ":")
			}
			hops = append(hops, name)
		}
	}
	if strings.Join(chain, ",") != strings.Join(hops, ",") {
		t.Errorf("jump hosts %v, ssh -G ProxyJump %q", chain, jump)
	}
	if cfg.ProxyJump != nil && len(hops) > 0 {
		// The nearest hop is resolved with the configuration too.
		last := strings.Split(jump, ",")
		// runbook hangs the earlier hops of a chain on the nearest one.
		j := *cfg.ProxyJump
		if len(hops) > 1 {
			j.ProxyJump = nil
		}
		compareWithSSHG(t, file, hops[len(hops)-1], jumpPort(last[len(last)-1]), jumpUser(last[len(last)-1]), j)
	}
}

func jumpUser(h string) string {
	if u, _, ok := strings.Cut(h, "@"); ok {
		return u
	}
	return ""
}

func jumpPort(h string) int {
	if i := strings.LastIndex(h, ":"); i >= 0 {
		p, _ := strconv.Atoi(h[i+1:])
		return p
	}
	return 0
}

// requireSSH skips the test, or fails it where every real program is
// required (testsshd.Require), without OpenSSH's ssh.
func requireSSH(t *testing.T) {
	t.Helper()
	_, err := exec.LookPath("ssh")
	testsshd.Require(t, err == nil, "OpenSSH's ssh is not installed (apt-get install openssh-client)")
}

// sshConfigFile writes content as the ssh_config in dir, and returns its
// path.
func sshConfigFile(t *testing.T, dir, content string) string {
	t.Helper()
	file := filepath.Join(dir, "ssh_config")
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// resolveHost resolves the host name through the ssh_config file alone.
func resolveHost(file, name string) (transport.SSHConfig, []string, error) {
	return transport.ResolveSSH(context.Background(), transport.SSHTarget{Name: name, ConfigFile: file})
}

// TestResolveSSHSaysWhatItCannotDo: an option runbook cannot honour is
// named with the file and line that sets it; ProxyCommand, which would
// take the connection elsewhere, is an error.
func TestResolveSSHSaysWhatItCannotDo(t *testing.T) {
	requireSSH(t)
	dir := t.TempDir()
	inc := filepath.Join(dir, "inc.conf")
	if err := os.WriteFile(inc, []byte("# forwarding\nHost db\n  LocalForward 5433 localhost:5432\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := sshConfigFile(t, dir, "Include "+inc+"\nHost db\n  StrictHostKeyChecking no\n  HostKeyAlias pg\nHost proxied\n  ProxyCommand nc %h %p\n")
	cfg, notes, err := resolveHost(file, "db")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HostKeyAlias != "pg" {
		t.Errorf("HostKeyAlias %q, want pg", cfg.HostKeyAlias)
	}
	all := strings.Join(notes, "\n")
	for _, want := range []string{inc + ":3: localforward", file + ":3: StrictHostKeyChecking no is not honoured"} {
		if !strings.Contains(all, want) {
			t.Errorf("no note %q in:\n%s", want, all)
		}
	}
	_, _, err = resolveHost(file, "proxied")
	if err == nil || !strings.Contains(err.Error(), file+":6: ProxyCommand nc") {
		t.Fatalf("ProxyCommand: %v, want an error naming %s:6", err, file)
	}
}

// TestResolveSSHFailsClosed: RevokedHostKeys makes ssh refuse a revoked
// host and IdentityAgent chooses (or excludes) the agent; runbook honours
// neither, so either is an error rather than a note and a connection.
// IdentityAgent SSH_AUTH_SOCK, what runbook does anyway, is accepted.
func TestResolveSSHFailsClosed(t *testing.T) {
	requireSSH(t)
	dir := t.TempDir()
	file := sshConfigFile(t, dir, "Host krl\n  RevokedHostKeys "+filepath.Join(dir, "krl")+"\nHost noagent\n  IdentityAgent none\n"+
		"Host otheragent\n  IdentityAgent "+filepath.Join(dir, "agent.sock")+"\nHost envagent\n  IdentityAgent SSH_AUTH_SOCK\n")
	for host, want := range map[string]string{"krl": file + ":2: revokedhostkeys", "noagent": file + ":4: identityagent none", "otheragent": "identityagent " + filepath.Join(dir, "agent.sock")} {
		_, _, err := resolveHost(file, host)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming %s", host, err, want)
		}
	}
	if _, _, err := resolveHost(file, "envagent"); err != nil {
		t.Errorf("IdentityAgent SSH_AUTH_SOCK: %v", err)
	}
}

// TestResolveSSHKnownHostsNone: UserKnownHostsFile none and
// GlobalKnownHostsFile none mean no file (ssh_config(5)), never a file
// named none in the working directory that a later run would trust.
func TestResolveSSHKnownHostsNone(t *testing.T) {
	requireSSH(t)
	dir := t.TempDir()
	kh := filepath.Join(dir, "kh")
	cfg, _, err := resolveHost(sshConfigFile(t, dir, "Host db\n  UserKnownHostsFile none\n  GlobalKnownHostsFile "+kh+"\n"), "db")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.KnownHosts) != 1 || cfg.KnownHosts[0] != kh {
		t.Fatalf("known_hosts files %q, want only %s", cfg.KnownHosts, kh)
	}
}

// TestResolveSSHUnsetVariable: an environment variable that is not set in
// IdentityFile is an error naming it, as ssh refuses the configuration.
func TestResolveSSHUnsetVariable(t *testing.T) {
	requireSSH(t)
	file := sshConfigFile(t, t.TempDir(), "Host db\n  IdentityFile ${RB_TEST_NOT_SET}/id\n")
	os.Unsetenv("RB_TEST_NOT_SET")
	_, _, err := resolveHost(file, "db")
	if err == nil || !strings.Contains(err.Error(), "RB_TEST_NOT_SET is not set") {
		t.Fatalf("got %v", err)
	}
}

// TestResolveSSHNotesNameTheLineThatApplies: a note names the line of the
// block that applies to the host (as ssh's own log says), not the first
// line anywhere that sets the option; a tab between key and value is read.
func TestResolveSSHNotesNameTheLineThatApplies(t *testing.T) {
	requireSSH(t)
	file := sshConfigFile(t, t.TempDir(), "Host other\n  LocalForward 5000 127.0.0.1:5432\n  Ciphers aes128-ctr\n"+
		"Host t1\n  HostName 127.0.0.1\n  LocalForward 6000 [127.0.0.1]:5432\n  Ciphers\taes256-ctr\n"+
		"Match host 127.0.0.1\n  Compression yes\n  ForwardAgent yes\n")
	_, notes, err := resolveHost(file, "t1")
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(notes, "\n")
	for _, want := range []string{file + ":6: localforward", file + ":7: ciphers", file + ":10: forwardagent"} {
		if !strings.Contains(strings.ToLower(all), strings.ToLower(want)) {
			t.Errorf("no note %q in:\n%s", want, all)
		}
	}
	if strings.Contains(all, file+":2:") || strings.Contains(all, file+":3:") {
		t.Errorf("a note names a line of Host other:\n%s", all)
	}
}
