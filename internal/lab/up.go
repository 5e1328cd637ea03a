package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options of Up.
type Options struct {
	Hosts []string
	// Inventory is where the inventory is written (default: in Dir).
	Inventory string
	// Standin is the runbook executable copied into the hosts to serve as
	// the orchestrator stand-in (default: this executable).
	Standin string
	// Orchestrator is the host that runs the stand-in (default: the first);
	// its database is always on the first host.
	Orchestrator string
	// StandinVersion is the inmanta-core version the stand-in behaves as
	// on every host (default DefaultStandinVersion).
	StandinVersion string
	// Layouts lays out PostgreSQL on hosts as another packaging does, by
	// host name (LayoutRHEL, LayoutPGDG); hosts not named keep Debian's.
	Layouts map[string]string
}

// Address returns the address of the i-th host (0-based).
func Address(i int) string { return fmt.Sprintf("%s.%d", Subnet, 11+i) }

// Up clears whatever an earlier lab left behind, then boots the hosts and
// waits until sshd, systemd and PostgreSQL are ready on each.
func (l *Lab) Up(ctx context.Context, opt Options) (*State, error) {
	if err := MissingRequirements(); err != nil {
		return nil, err
	}
	if len(opt.Hosts) == 0 {
		opt.Hosts = []string{"pg1", "pg2"}
	}
	if len(opt.Hosts) > 20 {
		return nil, errors.New("the lab has room for 20 hosts")
	}
	for _, n := range opt.Hosts {
		if !validName(n) {
			return nil, fmt.Errorf("host name %q: use lower-case letters, digits and -, at most 11 characters", n)
		}
	}
	if opt.Standin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		opt.Standin = exe
	}
	if err := l.Down(); err != nil {
		return nil, fmt.Errorf("clearing an earlier lab: %w", err)
	}
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			// A lab that did not come up completely is torn down: nothing
			// half-made stays behind.
			_ = l.Down()
		}
	}()
	if err := run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "runbook-lab", "-f", l.KeyFile()); err != nil {
		return nil, err
	}
	if err := l.network(); err != nil {
		return nil, err
	}
	if opt.Orchestrator == "" {
		opt.Orchestrator = opt.Hosts[0]
	}
	st := &State{}
	var orch *Host
	for i, n := range opt.Hosts {
		h := &Host{Name: n, Address: Address(i), Layout: LayoutDebian}
		if lay, ok := opt.Layouts[n]; ok {
			if _, known := Layouts[lay]; !known {
				return nil, fmt.Errorf("host %s: unknown layout %q", n, lay)
			}
			h.Layout = lay
		}
		st.Hosts = append(st.Hosts, h)
		if n == opt.Orchestrator {
			orch = h
		}
	}
	if orch == nil {
		return nil, fmt.Errorf("the orchestrator host %q is not one of the hosts", opt.Orchestrator)
	}
	if err := l.save(st); err != nil {
		return nil, err
	}
	if opt.StandinVersion == "" {
		opt.StandinVersion = DefaultStandinVersion
	}
	if _, err := ParseStandinVersion(opt.StandinVersion); err != nil {
		return nil, err
	}
	for _, h := range st.Hosts {
		if err := l.prepare(h, st, opt, h == orch); err != nil {
			return nil, fmt.Errorf("preparing %s: %w", h.Name, err)
		}
	}
	for _, h := range st.Hosts {
		l.logf("lab: booting %s (%s)", h.Name, h.Address)
		if err := l.boot(h); err != nil {
			return nil, fmt.Errorf("booting %s: %w", h.Name, err)
		}
		if err := l.save(st); err != nil {
			return nil, err
		}
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(parent, 120*time.Second)
	defer cancel()
	for _, h := range st.Hosts {
		l.logf("lab: waiting for sshd and PostgreSQL on %s", h.Name)
		if err := l.waitReady(ctx, h); err != nil {
			return nil, fmt.Errorf("%s did not come up: %w", h.Name, err)
		}
		if err := l.installStandin(ctx, h); err != nil {
			return nil, fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	l.logf("lab: orchestrator database on %s, stand-in on %s", st.Hosts[0].Name, orch.Name)
	// A deadline of its own: on a loaded machine the hosts may take most
	// of theirs to boot, which must not leave the stand-in none.
	octx, ocancel := context.WithTimeout(parent, 90*time.Second)
	defer ocancel()
	if err := l.orchestratorDatabase(octx, st.Hosts[0], orch); err != nil {
		return nil, err
	}
	if err := l.writeKnownHosts(st); err != nil {
		return nil, err
	}
	inv := opt.Inventory
	if inv == "" {
		inv = l.InventoryPath()
	}
	if err := l.writeInventory(st, inv); err != nil {
		return nil, err
	}
	ok = true
	return st, nil
}

func validName(n string) bool {
	if n == "" || len(n) > 11 {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func (l *Lab) network() error {
	if err := run("ip", "link", "add", Bridge, "type", "bridge"); err != nil {
		return err
	}
	if err := run("ip", "addr", "add", Gateway+"/24", "dev", Bridge); err != nil {
		return err
	}
	return run("ip", "link", "set", Bridge, "up")
}

// units that the machine enables but a lab host does without: timers,
// gettys and clock sync only add noise and memory.
var masked = []string{
	"apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer",
	"fstrim.timer", "man-db.timer", "e2scrub_reap.service", "systemd-timesyncd.service",
	"getty@tty1.service", "console-getty.service", "systemd-pstore.service",
}

// prepare mounts the host's overlay and writes what makes it a host of its
// own: name, machine id, host keys, the lab key, a plain root profile, the
// PostgreSQL access of an installed orchestrator, and the stand-in.
func (l *Lab) prepare(h *Host, st *State, opt Options, orchestrator bool) error {
	dir := l.hostDir(h.Name)
	for _, d := range []string{"upper", "work", "root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	root := l.root(h.Name)
	if err := syscall.Mount("overlay", root, "overlay", 0, fmt.Sprintf("lowerdir=/,upperdir=%s/upper,workdir=%s/work", dir, dir)); err != nil {
		return fmt.Errorf("overlay mount: %w", err)
	}
	write := func(rel, content string, mode os.FileMode) error { return writeUnder(root, rel, content, mode) }
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, o := range st.Hosts {
		fmt.Fprintf(&hosts, "%s\t%s\n", o.Address, o.Name)
	}
	pub, err := os.ReadFile(l.KeyFile() + ".pub")
	if err != nil {
		return err
	}
	files := []struct {
		rel, content string
		mode         os.FileMode
	}{
		{"etc/hostname", h.Name + "\n", 0o644},
		{"etc/hosts", hosts.String(), 0o644},
		{"etc/machine-id", randomHex(16) + "\n", 0o444},
		{"root/.bashrc", "# lab host: a plain root profile\n", 0o644},
		{"root/.ssh/authorized_keys", string(pub), 0o600},
		{"etc/ssh/sshd_config.d/runbook-lab.conf", "UseDNS no\nPermitRootLogin prohibit-password\n", 0o644},
		{"etc/systemd/system/inmanta-server.service", strings.ReplaceAll(standinUnit, "VERSION", opt.StandinVersion), 0o644},
		{"etc/inmanta/inmanta.cfg", standinMainConfig, 0o644},
		{"etc/sysconfig/inmanta-server", "# Environment of inmanta-server (EnvironmentFile of its unit).\n", 0o644},
	}
	for _, f := range files {
		if err := write(f.rel, f.content, f.mode); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(root, "root/.ssh"), 0o700); err != nil {
		return err
	}
	// Each host its own host keys: the copied ones are the machine's.
	keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return err
		}
	}
	if err := run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@"+h.Name, "-f", filepath.Join(root, "etc/ssh/ssh_host_ed25519_key")); err != nil {
		return err
	}
	if err := write("etc/ssh/sshd_config.d/runbook-lab-hostkey.conf", "HostKey /etc/ssh/ssh_host_ed25519_key\n", 0o644); err != nil {
		return err
	}
	for _, u := range masked {
		p := filepath.Join(root, "etc/systemd/system", u)
		_ = os.Remove(p)
		if err := os.Symlink("/dev/null", p); err != nil {
			return err
		}
	}
	if lay := LayoutOf(h); lay.Name != LayoutDebian {
		// The data directory and the orchestrator's access are made once
		// the host runs (initCluster).
		if err := relayout(root, lay); err != nil {
			return fmt.Errorf("laying out PostgreSQL as %s does: %w", lay.Name, err)
		}
		return l.copyStandin(root, opt.Standin, orchestrator)
	}
	// The orchestrator's database access from the lab network, as an
	// installed orchestrator has it; replication is the playbooks' job.
	hba := filepath.Join(root, "etc/postgresql/15/main/pg_hba.conf")
	b, err := os.ReadFile(hba)
	if err != nil {
		return err
	}
	line := fmt.Sprintf("host    inmanta         inmanta         %s.0/24           scram-sha-256\n", Subnet)
	if !strings.Contains(string(b), line) {
		if err := os.WriteFile(hba, append(b, []byte(line)...), 0o640); err != nil {
			return err
		}
	}
	return l.copyStandin(root, opt.Standin, orchestrator)
}

// copyStandin copies the stand-in into a host and, on the orchestrator's
// host, enables its unit.
func (l *Lab) copyStandin(root, standin string, orchestrator bool) error {
	if err := copyFile(standin, filepath.Join(root, "usr/local/bin/runbook"), 0o755); err != nil {
		return err
	}
	if orchestrator {
		link := filepath.Join(root, "etc/systemd/system/multi-user.target.wants/inmanta-server.service")
		_ = os.Remove(link)
		if err := os.Symlink("/etc/systemd/system/inmanta-server.service", link); err != nil {
			return err
		}
	}
	return nil
}

// DefaultStandinVersion is the inmanta-core version the lab's stand-in
// behaves as unless told otherwise.
const DefaultStandinVersion = "19.1.0"

// standinUnit is the RPM's inmanta-server.service (misc/inmanta-server.service
// of inmanta-core) with the stand-in as its program: user inmanta, the
// EnvironmentFile, Restart=on-failure without RestartSec (so systemd's
// default start limit applies: five starts in ten seconds).
const standinUnit = `# runbook lab: an orchestrator STAND-IN under the unit of the Inmanta
# server (its RPM's unit, another program), which cannot be installed here.
[Unit]
Description=The server of the Inmanta platform (runbook lab: a stand-in)
After=network.target

[Service]
Type=simple
User=inmanta
Group=inmanta
EnvironmentFile=/etc/sysconfig/inmanta-server
ExecStart=/usr/local/bin/runbook lab standin --version VERSION
Restart=on-failure

[Install]
WantedBy=multi-user.target
`

// standinMainConfig is the [server] part of the RPM's /etc/inmanta/inmanta.cfg
// (misc/inmanta.cfg): the API on the loopback address only.
const standinMainConfig = `[config]
state-dir=/var/lib/inmanta
log-dir=/var/log/inmanta

[database]
#host = localhost
#port = 5432
#name = inmanta
#username=
#password=

[server]
bind-address = 127.0.0.1
bind-port = 8888
`

// installStandin does on a booted host what the server's package does:
// the system user inmanta (home /var/lib/inmanta) and its configuration
// directory.
func (l *Lab) installStandin(ctx context.Context, h *Host) error {
	const script = `id -u inmanta >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/inmanta --create-home --shell /usr/sbin/nologin inmanta
install -d -o root -g inmanta -m 0755 /etc/inmanta/inmanta.d`
	if b, err := l.Exec(ctx, h.Name, "sh", "-c", script); err != nil {
		return fmt.Errorf("installing the stand-in's user and directories: %v %s", err, b)
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// boot starts the host's systemd-nspawn and gives the host its address.
func (l *Lab) boot(h *Host) error {
	logf, err := os.OpenFile(filepath.Join(l.hostDir(h.Name), "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cgroups, err := l.hostCgroups(h.Name)
	if err != nil {
		return err
	}
	// nspawn must start in the host's own group: a shell joins the groups
	// and then becomes nspawn, keeping its PID.
	args := []string{"-c", intoCgroups, "sh"}
	for _, g := range cgroups {
		args = append(args, filepath.Join(g, "cgroup.procs"))
	}
	args = append(args, "--", "systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--console=passive",
		"-D", l.root(h.Name), "-M", h.Name, "--network-bridge="+Bridge, "-b", "--", "systemd.firstboot=off")
	// The container must not keep a descriptor this process inherited
	// (the caller's flock on the lab's lock).
	closeInheritedOnExec()
	cmd := exec.Command("/bin/sh", args...)
	// The host's systemd on the unified cgroup hierarchy alone, as Debian 12
	// boots it, whatever layout this machine has: nspawn would otherwise
	// give it this machine's (here hybrid: systemd's v1 hierarchy, read-only
	// v1 controllers, "tainted: cgroupsv1").
	cmd.Env = append(os.Environ(), "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	h.PID = cmd.Process.Pid
	// The lab outlives this process: nothing waits for nspawn but the
	// kernel, which reaps it when this process exits.
	go func() { _ = cmd.Wait() }()
	var ld int
	deadline := time.Now().Add(20 * time.Second)
	for {
		if ld, err = leader(h.PID); err == nil {
			break
		}
		if !alive(h.PID) || time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(l.hostDir(h.Name), "console.log"))
			return fmt.Errorf("systemd-nspawn did not start: %s", strings.TrimSpace(string(log)))
		}
		time.Sleep(50 * time.Millisecond)
	}
	ns := []string{"-t", strconv.Itoa(ld), "-n", "--"}
	// The container's end of its veth (host0) may reach the container's
	// network namespace only after its init is there: wait for the link.
	for linkDeadline := time.Now().Add(20 * time.Second); ; {
		err := run("nsenter", append(ns, "ip", "link", "show", "host0")...)
		if err == nil {
			break
		}
		if !alive(h.PID) || time.Now().After(linkDeadline) {
			return fmt.Errorf("%s: its network link host0 did not appear: %w", h.Name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "addr", "add", h.Address + "/24", "dev", "host0"},
		{"ip", "link", "set", "host0", "up"},
	} {
		if err := run("nsenter", append(ns, c...)...); err != nil {
			return err
		}
	}
	return run("ip", "link", "set", vethName(h.Name), "up")
}

// intoCgroups moves the shell into the groups whose cgroup.procs files it
// is given before "--", then runs the rest of its arguments in its place.
const intoCgroups = `while [ "$1" != -- ]; do echo $$ >"$1" || exit 1; shift; done; shift; exec "$@"`

// vethName is the bridge side of a host's network link, as systemd-nspawn
// names it.
func vethName(host string) string {
	n := "vb-" + host
	if len(n) > 15 {
		n = n[:15]
	}
	return n
}

func (l *Lab) waitReady(ctx context.Context, h *Host) error {
	if err := waitTCP(ctx, h.Address+":22"); err != nil {
		return fmt.Errorf("sshd: %w", err)
	}
	if err := l.initCluster(ctx, h); err != nil {
		return err
	}
	return l.waitUnit(ctx, h)
}

// orchestratorDatabase gives the first host the orchestrator's database and
// user, writes the configuration that names them on the orchestrator's
// host, and starts the stand-in there.
func (l *Lab) orchestratorDatabase(ctx context.Context, h, orch *Host) error {
	pw := randomHex(12)
	sql := fmt.Sprintf("CREATE ROLE inmanta LOGIN PASSWORD '%s';\nCREATE DATABASE inmanta OWNER inmanta;\n", pw)
	// The password goes through standard input, never a command line.
	var out strings.Builder
	code, err := l.ExecInteractive(ctx, h.Name, strings.NewReader(sql), &out, &out,
		"runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1")
	if err != nil || code != 0 {
		return fmt.Errorf("creating the orchestrator database: %v %s", err, out.String())
	}
	dbHost := "127.0.0.1"
	if orch != h {
		dbHost = h.Address
		// The database must listen on the lab network for a stand-in on
		// another host; that is the installation, not the HA procedure.
		lay := LayoutOf(h)
		if b, err := l.Exec(ctx, h.Name, "sh", "-c", "sed -i \"s/^#listen_addresses = 'localhost'/listen_addresses = '*'/\" "+lay.Conf+"/postgresql.conf && systemctl restart "+lay.Unit); err != nil {
			return fmt.Errorf("listen on the lab network: %v %s", err, b)
		}
	}
	cfg := fmt.Sprintf("[database]\nhost=%s\nport=5432\nname=inmanta\nusername=inmanta\npassword=%s\n", dbHost, pw)
	// Readable by the server's group, as the install guide has it; the
	// password through standard input.
	out.Reset()
	code, err = l.ExecInteractive(ctx, orch.Name, strings.NewReader(cfg), &out, &out,
		"install", "-o", "root", "-g", "inmanta", "-m", "0640", "/dev/stdin", "/etc/inmanta/inmanta.d/database.cfg")
	if err != nil || code != 0 {
		return fmt.Errorf("writing database.cfg: %v %s", err, out.String())
	}
	return l.startStandin(ctx, orch)
}

// startStandin starts the stand-in and waits until its API answers on the
// host's loopback address, where it listens. Before database.cfg existed
// its unit failed at every start (Restart=on-failure) and may still be in
// that loop or have used up its start limit: a start that ends that way
// again is retried, twice, and the error shows the unit's journal.
func (l *Lab) startStandin(ctx context.Context, orch *Host) error {
	const health = "curl -s -o /dev/null -m 2 -w '%{http_code}' http://127.0.0.1:8888/api/v2/health"
	for attempt := 1; ; attempt++ {
		if b, err := l.Exec(ctx, orch.Name, "sh", "-c", "systemctl reset-failed inmanta-server.service; systemctl restart inmanta-server.service"); err != nil {
			j, _ := l.Exec(context.Background(), orch.Name, "journalctl", "--no-pager", "-n", "20", "-u", "inmanta-server.service")
			return fmt.Errorf("starting the stand-in: %v %s\n%s", err, b, j)
		}
		for {
			// Any answer of the API is the server up: health says 500
			// while its database is away, which is not the lab's concern.
			b, err := l.Exec(ctx, orch.Name, "sh", "-c", health)
			if code := strings.TrimSpace(string(b)); err == nil && code != "" && code != "000" {
				return nil
			}
			st, _ := l.Exec(ctx, orch.Name, "systemctl", "show", "-p", "ActiveState", "--value", "inmanta-server.service")
			if s := strings.TrimSpace(string(st)); s == "failed" || s == "inactive" {
				j, _ := l.Exec(context.Background(), orch.Name, "journalctl", "--no-pager", "-n", "20", "-u", "inmanta-server.service")
				if attempt == 3 {
					return fmt.Errorf("the stand-in exited (%s) at each of %d starts:\n%s", s, attempt, j)
				}
				l.logf("lab: the stand-in exited (%s) after start %d, starting it again:\n%s", s, attempt, j)
				break
			}
			select {
			case <-ctx.Done():
				st, _ := l.Exec(context.Background(), orch.Name, "systemctl", "status", "--no-pager", "inmanta-server")
				return fmt.Errorf("the stand-in's API did not answer: %s", st)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

func (l *Lab) writeKnownHosts(st *State) error {
	var b strings.Builder
	for _, h := range st.Hosts {
		pub, err := os.ReadFile(filepath.Join(l.root(h.Name), "etc/ssh/ssh_host_ed25519_key.pub"))
		if err != nil {
			return err
		}
		f := strings.Fields(string(pub))
		fmt.Fprintf(&b, "%s %s %s\n", h.Address, f[0], f[1])
	}
	return os.WriteFile(l.KnownHosts(), []byte(b.String()), 0o600)
}

func (l *Lab) writeInventory(st *State, path string) error {
	var b strings.Builder
	b.WriteString("# Written by runbook lab up: the lab's hosts, their keys and layout.\n")
	fmt.Fprintf(&b, "defaults:\n  user: root\n  port: 22\n  identity_file: %s\n  known_hosts: %s\n  vars: {}\nhosts:\n", l.KeyFile(), l.KnownHosts())
	for _, h := range st.Hosts {
		// The layout is not a var: the playbooks find it, or are told.
		lay := LayoutOf(h)
		fmt.Fprintf(&b, "  %s: {address: %s}  # PostgreSQL %s laid out as %s packages it: %s, unit %s\n", h.Name, h.Address, PGVersion, lay.Name, lay.Data, lay.Unit)
	}
	b.WriteString("groups:\n  postgres: [")
	for i, h := range st.Hosts {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(h.Name)
	}
	b.WriteString("]\n")
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// writeUnder writes a file of a container's tree, at rel below its root:
// a new file, not through a link the image had there.
func writeUnder(root, rel, content string, mode os.FileMode) error {
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	_ = os.Remove(p)
	return os.WriteFile(p, []byte(content), mode)
}
