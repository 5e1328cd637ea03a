package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/internal/cli"
)

// noSessionInventory has pg2 on a loopback port where nothing listens:
// the machine answers (connection refused) but gives no SSH session, as a
// standby whose sshd is stopped or not yet started after a reboot.
func noSessionInventory(t *testing.T) string {
	t.Helper()
	return tempFile(t, "inv.yaml", "hosts:\n  pg2: {address: 127.0.0.1, port: 1, user: nobody}\n", 0o600)
}

// tempFile writes content, with mode, to a file name in a new directory
// and returns its path.
func tempFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCheckStandbyWithoutSession: pg-ha/check with a standby that answers
// but gives no session still looks at the primary (here: no PostgreSQL on
// its port, CRITICAL), names the standby as not observed with its reason,
// and rewrites the Prometheus file: an earlier OK must not stay.
func TestCheckStandbyWithoutSession(t *testing.T) {
	inv := noSessionInventory(t)
	prom := tempFile(t, "pgha.prom", "pgha_check_status 0\n", 0o644)
	var out, errb bytes.Buffer
	code := cli.Main([]string{"runbook", "run", "pg-ha/check", "-i", inv, "-p", "primary=localhost", "-p", "standby=pg2", "-p", "port=1", "-p", "layout=debian",
		"-p", "prometheus_file=" + prom, "--state-dir", filepath.Join(t.TempDir(), "st")}, nil, &out, &errb)
	line := out.String()
	if code != 2 || !strings.HasPrefix(line, "PGHA CRITICAL - PostgreSQL on the primary localhost does not answer") ||
		!strings.Contains(line, "cannot observe the standby pg2 (it answers but gives no session: ") {
		t.Fatalf("exit %d, want 2 with the primary judged and pg2 named as not observed:\n%s%s", code, line, errb.String())
	}
	b, err := os.ReadFile(prom)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`pgha_check_status{primary="localhost",application_name="inmanta"} 2`, `pgha_standby_observed{primary="localhost",application_name="inmanta"} 0`} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("the Prometheus file lacks %q:\n%s", want, b)
		}
	}
}

// TestStatusNodeWithoutSession: pg-ha/status with a node that answers but
// gives no session shows the table, the other node observed, and that
// node's row as not observed with the reason (exit 4, not 1).
func TestStatusNodeWithoutSession(t *testing.T) {
	inv := noSessionInventory(t)
	var out, errb bytes.Buffer
	code := cli.Main([]string{"runbook", "run", "pg-ha/status", "-i", inv, "-p", "nodes=localhost,pg2", "-p", "port=1", "-p", "layout=debian",
		"--state-dir", filepath.Join(t.TempDir(), "st")}, nil, &out, &errb)
	s := out.String()
	if code != 4 || !strings.Contains(s, "\nNODE ") || !strings.Contains(s, "\nlocalhost ") ||
		!strings.Contains(s, "\npg2        not observed") || !strings.Contains(s, "pg2: not observed: it answers but gives no session: ") {
		t.Fatalf("exit %d, want 4 with the table, localhost observed and pg2 not observed with its reason:\n%s%s", code, s, errb.String())
	}
}

// TestFactTolerateFailedOnlyReadOnly: a fact's tolerate_failed takes a
// host without a session as not observed only in a read-only playbook; a
// playbook that can change anything is refused before any step, as
// without it.
func TestFactTolerateFailedOnlyReadOnly(t *testing.T) {
	inv := noSessionInventory(t)
	dir := t.TempDir()
	pb := func(name, readOnly string) string {
		p := filepath.Join(dir, name+".yaml")
		src := "version: 1\nname: t/" + name + "\nfacts:\n  f:\n    hosts: [pg2]\n    tolerate_failed: true\n    ssh-exec: {command: \"true\", read_only: true}\n" +
			"    value: '${{ {\"reachable\": result.reachable, \"error\": result.error} }}'\n" +
			"steps:\n  - host: localhost\n    ssh-exec: {command: 'echo \"pg2 reachable: ${{ facts.f[\"pg2\"].reachable }}\"', read_only: " + readOnly + "}\n    print: '${{ trim(result.stdout) }}'\n"
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var out, errb bytes.Buffer
	code := cli.Main([]string{"runbook", "run", pb("ro", "true"), "-i", inv, "--state-dir", filepath.Join(dir, "st")}, nil, &out, &errb)
	if code != 0 || !strings.Contains(out.String()+errb.String(), "pg2 reachable: false") {
		t.Fatalf("read-only: exit %d, want 0 with pg2 not observed:\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	code = cli.Main([]string{"runbook", "run", pb("rw", "false"), "-i", inv, "--state-dir", filepath.Join(dir, "st")}, nil, &out, &errb)
	if code == 0 || strings.Contains(out.String()+errb.String(), "pg2 reachable") || !strings.Contains(out.String()+errb.String(), "probe failed: ") {
		t.Fatalf("a playbook that changes: exit %d, want it refused before any step:\n%s%s", code, out.String(), errb.String())
	}
}
