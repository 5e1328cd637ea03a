// Command bench measures runbook side by side with Ansible and with the
// bare SSH floor, on a real OpenSSH server on loopback: run it with
// `go run ./internal/bench` (as root; it installs ansible-core with apt-get when it
// is missing) and it prints the Markdown table of docs/benchmarks.md.
//
// The sshd skips root's shell profile (SetEnv SHLVL=1), as the anchors of
// the design brief were measured: with it, every remote command costs the
// profile's start-up whatever the tool.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/runbook-dev/runbook/internal/testsshd"
)

var (
	runs = flag.Int("runs", 5, "runs of each measurement; the median is reported")
	only = flag.String("only", "", `measure one row only: "step" (one ssh-exec step against the floor, without Ansible)`)
	also = flag.String("also", "", "with --only step: other runbook executables (comma-separated) measured in the same rounds, to compare builds")
)

func main() {
	flag.Parse()
	if *eventsDir != "" {
		if err := os.MkdirAll(*eventsDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "bench: --events-dir:", err)
			os.Exit(1)
		}
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type bench struct {
	dir      string
	runbook  string
	sshd     *testsshd.Server
	inv      string // runbook inventory, 1 host
	inv10    string
	inv100   string
	ansInv   string
	ansInv10 string
	ansCfg   string
	// roundN numbers the runbook runs whose events --events-dir keeps.
	roundN int
}

func run() error {
	if _, err := exec.LookPath("ansible-playbook"); err != nil && *only == "" && !*failover && !*switchover {
		fmt.Fprintln(os.Stderr, "installing ansible-core (apt-get)...")
		if out, err := exec.Command("sh", "-c", "apt-get update && apt-get install -y --no-install-recommends ansible-core").CombinedOutput(); err != nil {
			return fmt.Errorf("installing ansible-core: %v\n%s", err, out)
		}
	}
	dir, err := os.MkdirTemp("", "runbook-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bench{dir: dir, runbook: filepath.Join(dir, "runbook")}
	if out, err := exec.Command("go", "build", "-o", b.runbook, "./cmd/runbook").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	if *failover {
		// The lab's hosts have sshd of their own: no loopback sshd, which a
		// signal's exit would leave behind.
		fmt.Printf("Machine: %d cores, %s; Go %s\n\n", runtime.NumCPU(), kernel(), runtime.Version())
		return b.runFailover()
	}
	if *switchover {
		fmt.Printf("Machine: %d cores, %s; Go %s\n\n", runtime.NumCPU(), kernel(), runtime.Version())
		return b.runSwitchover()
	}
	var cleanups []func()
	defer func() {
		for _, c := range cleanups {
			c()
		}
	}()
	sdir := filepath.Join(dir, "sshd")
	if err := os.Mkdir(sdir, 0o700); err != nil {
		return err
	}
	if b.sshd, err = testsshd.StartIn(sdir, func(f func()) { cleanups = append(cleanups, f) }); err != nil {
		return err
	}
	if err := b.writeFiles(); err != nil {
		return err
	}
	ver, _ := exec.Command("ansible-playbook", "--version").Output()
	sshdVer, _ := exec.Command("/usr/sbin/sshd", "-V").CombinedOutput()
	fmt.Printf("Machine: %d cores, %s; Go %s; %s; %s\n\n", runtime.NumCPU(), kernel(), runtime.Version(),
		strings.SplitN(string(ver), "\n", 2)[0], strings.TrimSpace(strings.SplitN(string(sshdVer), "\n", 2)[0]))
	if *only == "step" {
		return b.stepOnly()
	}
	fmt.Printf("Median of %d runs each, runbook and Ansible alternated. Target sshd: loopback, root's profile skipped (SetEnv SHLVL=1).\n\n", *runs)
	fmt.Println("| work | runbook | Ansible (pipelining) | runbook / Ansible | floor (x/crypto/ssh, one connection) |")
	fmt.Println("|---|---|---|---|---|")

	// (1) per step: (wall for 50 - wall for 1) / 49.
	rb1, an1, err := b.pair([]string{"run", "-i", b.inv, b.file("true1.yaml")}, b.file("true1.ans.yaml"), b.ansInv)
	if err != nil {
		return err
	}
	rb50, an50, err := b.pair([]string{"run", "-i", b.inv, b.file("true50.yaml")}, b.file("true50.ans.yaml"), b.ansInv)
	if err != nil {
		return err
	}
	floor1, err := b.floor(1)
	if err != nil {
		return err
	}
	floor50, err := b.floor(50)
	if err != nil {
		return err
	}
	row("one `ssh-exec` step (`true`), (50 − 1)/49", (rb50-rb1)/49, (an50-an1)/49, (floor50-floor1)/49)
	// (2) start-up + one step.
	row("start-up + one step", rb1, an1, floor1)
	// (3) 10 hosts x 20 steps, parallel 10.
	rb10, an10, err := b.pair([]string{"run", "-i", b.inv10, b.file("fan.yaml")}, b.file("fan.ans.yaml"), b.ansInv10)
	if err != nil {
		return err
	}
	floor10, err := b.floorFan(10, 20)
	if err != nil {
		return err
	}
	row("10 hosts × 20 steps, parallel 10", rb10, an10, floor10)
	// (4) 20 idempotent config edits of one file.
	rbEd, anEd, err := b.pair([]string{"run", "-i", b.inv, b.file("edits.yaml")}, b.file("edits.ans.yaml"), b.ansInv)
	if err != nil {
		return err
	}
	row("20 idempotent config edits (file-patch set vs lineinfile)", rbEd, anEd, 0)
	// (5) validating 1,000 playbooks vs --syntax-check of one.
	rbVal := b.median(func() error { return b.cmd(b.runbook, "validate", b.file("many")) })
	anVal := b.median(func() error {
		return b.cmd("ansible-playbook", "--syntax-check", "-i", b.ansInv, b.file("fifty.ans.yaml"))
	})
	fmt.Printf("| validate 1,000 playbooks of 50 steps (Ansible: `--syntax-check` of **one**) | %s | %s (one) | %.4f per playbook | — |\n", ms(rbVal), ms(anVal), float64(rbVal)/1000/float64(anVal))
	// Memory of a 100-host run.
	rss, err := b.maxRSS(b.runbook, "run", "-i", b.inv100, b.file("hundred.yaml"))
	if err != nil {
		return err
	}
	fmt.Printf("\nMemory: `runbook run` of 3 steps on 100 hosts (parallel 20): %d MiB maximum resident.\n", rss>>10)
	return nil
}

// stepOnly measures the per-step row alone: runbook's 1- and 50-step
// runs and the floor's, alternated in each round, medians of *runs.
func (b *bench) stepOnly() error {
	signer, err := b.signer()
	if err != nil {
		return err
	}
	bins := []string{b.runbook}
	if *also != "" {
		bins = append(bins, strings.Split(*also, ",")...)
	}
	rb1, rb50 := make([][]time.Duration, len(bins)), make([][]time.Duration, len(bins))
	var fl1, fl50 []time.Duration
	timed := func(into *[]time.Duration, f func() error) error {
		start := time.Now()
		err := f()
		*into = append(*into, time.Since(start))
		return err
	}
	for i := 0; i < *runs; i++ {
		for j, bin := range bins {
			if err := timed(&rb1[j], func() error { return b.cmd(bin, "run", "-i", b.inv, b.file("true1.yaml")) }); err != nil {
				return err
			}
		}
		if err := timed(&fl1, func() error { return b.floorOnce(signer, 1) }); err != nil {
			return err
		}
		for j, bin := range bins {
			if err := timed(&rb50[j], func() error { return b.cmd(bin, "run", "-i", b.inv, b.file("true50.yaml")) }); err != nil {
				return err
			}
		}
		if err := timed(&fl50, func() error { return b.floorOnce(signer, 50) }); err != nil {
			return err
		}
	}
	med := medianOf
	floor := (med(fl50) - med(fl1)) / 49
	fmt.Printf("Median of %d runs each, runbook and the floor alternated; load average at the end %s.\n\n", *runs, loadavg())
	fmt.Println("| work | runbook | floor (x/crypto/ssh, one connection) | runbook / floor |")
	fmt.Println("|---|---|---|---|")
	for j, bin := range bins {
		name := ""
		if len(bins) > 1 {
			name = " — " + bin
		}
		step := (med(rb50[j]) - med(rb1[j])) / 49
		fmt.Printf("| one `ssh-exec` step (`true`), (50 − 1)/49%s | %s | %s | %.2f |\n", name, ms(step), ms(floor), float64(step)/float64(floor))
		fmt.Printf("| start-up + one step%s | %s | %s | %.2f |\n", name, ms(med(rb1[j])), ms(med(fl1)), float64(med(rb1[j]))/float64(med(fl1)))
	}
	return nil
}

func kernel() string {
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return "linux"
	}
	var b strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return "Linux " + b.String()
}

func row(what string, rb, an, floor time.Duration) {
	f := "—"
	if floor > 0 {
		f = ms(floor)
	}
	fmt.Printf("| %s | %s | %s | %.3f | %s |\n", what, ms(rb), ms(an), float64(rb)/float64(an), f)
}

func ms(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	}
	if d < time.Second {
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func (b *bench) file(name string) string { return filepath.Join(b.dir, name) }

func (b *bench) cmd(name string, args ...string) error {
	c := exec.Command(name, args...)
	c.Env = append(os.Environ(), "ANSIBLE_CONFIG="+b.ansCfg, "ANSIBLE_HOST_KEY_CHECKING=True")
	out, err := c.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func (b *bench) median(f func() error) time.Duration {
	var ds []time.Duration
	for i := 0; i < *runs; i++ {
		start := time.Now()
		if err := f(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		ds = append(ds, time.Since(start))
	}
	return medianOf(ds)
}

// medianBy is the median of f over xs (of an even count, the upper of
// the two middle ones); xs keeps its order.
func medianBy[T any](xs []T, f func(T) time.Duration) time.Duration {
	ds := make([]time.Duration, len(xs))
	for i, x := range xs {
		ds[i] = f(x)
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// medianOf is the median of ds, which keeps its order.
func medianOf(ds []time.Duration) time.Duration {
	return medianBy(ds, func(d time.Duration) time.Duration { return d })
}

// pair measures runbook and Ansible alternately and returns both medians.
func (b *bench) pair(rbArgs []string, ansPlaybook, ansInv string) (time.Duration, time.Duration, error) {
	var rb, an []time.Duration
	for i := 0; i < *runs; i++ {
		start := time.Now()
		if err := b.cmd(b.runbook, rbArgs...); err != nil {
			return 0, 0, err
		}
		rb = append(rb, time.Since(start))
		start = time.Now()
		if err := b.cmd("ansible-playbook", "-i", ansInv, ansPlaybook); err != nil {
			return 0, 0, err
		}
		an = append(an, time.Since(start))
	}
	return medianOf(rb), medianOf(an), nil
}

func (b *bench) signer() (ssh.Signer, error) {
	key, err := os.ReadFile(b.sshd.IdentityFile)
	if err != nil {
		return nil, err
	}
	return ssh.ParsePrivateKey(key)
}

// floor runs `true` n times over one x/crypto/ssh connection, connection
// included, and returns the median wall time.
func (b *bench) floor(n int) (time.Duration, error) {
	signer, err := b.signer()
	if err != nil {
		return 0, err
	}
	var ferr error
	d := b.median(func() error {
		if err := b.floorOnce(signer, n); err != nil {
			ferr = err
		}
		return nil
	})
	return d, ferr
}

// floorOnce connects with x/crypto/ssh and runs `true` n times, each in a
// session of its own.
func (b *bench) floorOnce(signer ssh.Signer, n int) error {
	c, err := ssh.Dial("tcp", b.sshd.Addr(), &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.InsecureIgnoreHostKey()})
	if err != nil {
		return err
	}
	defer c.Close()
	for i := 0; i < n; i++ {
		s, err := c.NewSession()
		if err != nil {
			return err
		}
		err = s.Run("true")
		s.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// floorFan is the floor of the fan-out: hosts connections at once, each
// running `true` steps times.
func (b *bench) floorFan(hosts, steps int) (time.Duration, error) {
	signer, err := b.signer()
	if err != nil {
		return 0, err
	}
	d := b.median(func() error {
		errs := make(chan error, hosts)
		for h := 0; h < hosts; h++ {
			go func() {
				c, err := ssh.Dial("tcp", b.sshd.Addr(), &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.InsecureIgnoreHostKey()})
				if err != nil {
					errs <- err
					return
				}
				defer c.Close()
				for i := 0; i < steps; i++ {
					s, err := c.NewSession()
					if err != nil {
						errs <- err
						return
					}
					err = s.Run("true")
					s.Close()
					if err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		for h := 0; h < hosts; h++ {
			if err := <-errs; err != nil {
				return err
			}
		}
		return nil
	})
	return d, nil
}

func (b *bench) maxRSS(name string, args ...string) (int64, error) {
	c := exec.Command(name, args...)
	if out, err := c.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("%v\n%s", err, out)
	}
	if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss, nil // KiB on Linux
	}
	return 0, fmt.Errorf("no rusage")
}

func (b *bench) writeFiles() error {
	s := b.sshd
	w := func(name, content string) error {
		p := b.file(name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, []byte(content), 0o644)
	}
	rbInv := func(n int) string {
		var sb strings.Builder
		fmt.Fprintf(&sb, "defaults: {user: root, port: %d, identity_file: %s, known_hosts: %s}\nhosts:\n", s.Port, s.IdentityFile, s.KnownHosts)
		for i := 1; i <= n; i++ {
			fmt.Fprintf(&sb, "  h%d: {address: %s}\n", i, s.Host)
		}
		sb.WriteString("groups:\n  all: [")
		for i := 1; i <= n; i++ {
			if i > 1 {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, "h%d", i)
		}
		sb.WriteString("]\n")
		return sb.String()
	}
	ansInv := func(n int) string {
		var sb strings.Builder
		sb.WriteString("[hosts]\n")
		for i := 1; i <= n; i++ {
			fmt.Fprintf(&sb, "h%d ansible_host=%s\n", i, s.Host)
		}
		fmt.Fprintf(&sb, "[all:vars]\nansible_port=%d\nansible_user=root\nansible_ssh_private_key_file=%s\nansible_ssh_common_args='-o UserKnownHostsFile=%s'\nansible_python_interpreter=/usr/bin/python3\n", s.Port, s.IdentityFile, s.KnownHosts)
		return sb.String()
	}
	b.inv, b.inv10, b.inv100 = b.file("inv1.yaml"), b.file("inv10.yaml"), b.file("inv100.yaml")
	b.ansInv, b.ansInv10, b.ansCfg = b.file("ans1.ini"), b.file("ans10.ini"), b.file("ansible.cfg")
	steps := func(n int, body func(i int) string) string {
		var sb strings.Builder
		for i := 0; i < n; i++ {
			sb.WriteString(body(i))
		}
		return sb.String()
	}
	conf := steps(20, func(i int) string { return fmt.Sprintf("key_%d = 'value_%d'\n", i, i) })
	files := map[string]string{
		"inv1.yaml":   rbInv(1),
		"inv10.yaml":  rbInv(10),
		"inv100.yaml": rbInv(100),
		"ans1.ini":    ansInv(1),
		"ans10.ini":   ansInv(10),
		// Ansible's defaults, with pipelining on.
		"ansible.cfg":     "[defaults]\nforks = 10\n[ssh_connection]\npipelining = True\n",
		"true1.yaml":      "version: 1\nname: true1\nsteps:\n" + steps(1, func(int) string { return "  - host: h1\n    ssh-exec: {command: \"true\"}\n" }),
		"true50.yaml":     "version: 1\nname: true50\nsteps:\n" + steps(50, func(int) string { return "  - host: h1\n    ssh-exec: {command: \"true\"}\n" }),
		"true1.ans.yaml":  "- hosts: all\n  gather_facts: false\n  tasks:\n" + steps(1, func(int) string { return "    - command: /bin/true\n" }),
		"true50.ans.yaml": "- hosts: all\n  gather_facts: false\n  tasks:\n" + steps(50, func(int) string { return "    - command: /bin/true\n" }),
		"fan.yaml": "version: 1\nname: fan\nsteps:\n" + steps(20, func(int) string {
			return "  - hosts: [all]\n    parallel: 10\n    ssh-exec: {command: \"true\"}\n"
		}),
		"fan.ans.yaml": "- hosts: all\n  gather_facts: false\n  tasks:\n" + steps(20, func(int) string { return "    - command: /bin/true\n" }),
		"edits.conf":   conf,
		"edits.yaml": "version: 1\nname: edits\nsteps:\n" + steps(20, func(i int) string {
			return fmt.Sprintf("  - host: h1\n    file-patch:\n      path: %s\n      backup: false\n      set: {key_%d: value_%d}\n", b.file("edits.conf"), i, i)
		}),
		"edits.ans.yaml": "- hosts: all\n  gather_facts: false\n  tasks:\n" + steps(20, func(i int) string {
			return fmt.Sprintf("    - lineinfile: {path: %s, regexp: '^key_%d =', line: \"key_%d = 'value_%d'\"}\n", b.file("edits.conf"), i, i, i)
		}),
		"fifty.ans.yaml": "- hosts: all\n  gather_facts: false\n  tasks:\n" + steps(50, func(i int) string {
			return fmt.Sprintf("    - name: step %d\n      command: echo {{ inventory_hostname }} %d\n      when: inventory_hostname != 'x'\n", i, i)
		}),
		"hundred.yaml": "version: 1\nname: hundred\nsteps:\n" + steps(3, func(int) string {
			return "  - hosts: [all]\n    parallel: 20\n    ssh-exec: {command: \"true\"}\n"
		}),
	}
	for name, content := range files {
		if err := w(name, content); err != nil {
			return err
		}
	}
	fifty := "version: 1\nname: fifty\nparams:\n  host: {type: host, default: h1}\nsteps:\n" + steps(50, func(i int) string {
		return fmt.Sprintf("  - id: s%d\n    host: ${{ params.host }}\n    when: params.host != \"x\"\n    ssh-exec:\n      command: echo ${{ params.host }} %d\n      read_only: true\n", i, i)
	})
	for i := 0; i < 1000; i++ {
		if err := w(fmt.Sprintf("many/p%04d.yaml", i), fifty); err != nil {
			return err
		}
	}
	return nil
}
