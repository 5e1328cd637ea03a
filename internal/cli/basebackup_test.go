package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/cli"
	"github.com/runbook-dev/runbook/internal/testpg"
	"github.com/runbook-dev/runbook/internal/testsshd"
	"github.com/runbook-dev/runbook/internal/transport"
	"github.com/runbook-dev/runbook/playbooks"
	"github.com/runbook-dev/runbook/steps"
)

// replicationPassword has what .pgpass escapes (a colon, a backslash) and
// a quote.
const replicationPassword = `it's a \ repl:pw`

// stepBody returns the ssh-exec body of a step of a bundled playbook, as
// YAML: the test runs the text the playbook ships.
func stepBody(t *testing.T, name, id string) string {
	t.Helper()
	src, ok := playbooks.Lookup(name)
	if !ok {
		t.Fatalf("no bundled playbook %s", name)
	}
	var doc struct {
		Steps []struct {
			ID      string    `yaml:"id"`
			SSHExec yaml.Node `yaml:"ssh-exec"`
		} `yaml:"steps"`
	}
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	for _, s := range doc.Steps {
		if s.ID == id {
			b, err := yaml.Marshal(&s.SSHExec)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
	t.Fatalf("%s has no step %s", name, id)
	return ""
}

// baseBackupPlaybook runs the bundled steps that make the copy (where it
// goes, the base backup, the swap) alone, with the vars, params and the
// results of earlier steps they read given by the test.
func baseBackupPlaybook(t *testing.T, name string) string {
	var b strings.Builder
	b.WriteString(`version: 1
name: test/basebackup
params:
  data_dir: {type: string}
  bin: {type: string}
  primary_address: {type: string}
  port: {type: int}
  replication_user: {type: string, default: rb_repl}
  slot: {type: string, default: rb_slot}
  backup_timeout: {type: duration, default: 1h}
  tablespace_mapping: {type: string, default: ""}
  check_space: {type: bool, default: true}
  keep_aside: {type: int, default: 1}
  waldir: {type: string, default: ""}
secrets:
  replication_password: {env: RB_REPLICATION_PASSWORD}
vars:
  data_dir: ${{ params.data_dir }}
  bin: ${{ params.bin }}
  primary_address: ${{ params.primary_address }}
  port: ${{ params.port }}
  # The port the copy's configuration gives (the test server takes its own
  # on the command line).
  standby_port: 5432
  conf_dir: ${{ params.data_dir }}
  unit: runbook-test-no-such-unit
steps:
  - id: stop
    ssh-exec: {command: "true", read_only: true}
`)
	for _, id := range []string{"layout", "basebackup", "swap"} {
		// The layout the bundled playbooks find on the host (host.facts.pg)
		// is given here as vars.
		body := strings.ReplaceAll(stepBody(t, name, id), "host.facts.pg.", "vars.")
		if id == "layout" {
			// The primary's sizes, as the sizes step would read them.
			body = strings.Replace(body, "${{ string(steps.sizes.result.rows[0].data_kb) }}", "100000", 1)
			body = strings.Replace(body, "${{ steps.sizes.result.rows[0].tablespaces }}", "\"\"", 1)
			body = strings.Replace(body, "${{ string(steps.sizes.result.rows[0].wal_kb) }}", "65536", 1)
		}
		// The primary's system identifier, as the ident step would read it.
		body = strings.ReplaceAll(body, "${{ steps.ident.result.system_identifier }}", "0")
		fmt.Fprintf(&b, "  - id: %s\n    host: box\n", id)
		if id == "basebackup" {
			b.WriteString("    timeout: ${{ params.backup_timeout }}\n")
		}
		b.WriteString("    ssh-exec:\n")
		for _, l := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
			b.WriteString("      " + l + "\n")
		}
	}
	return b.String()
}

// postgresDir makes a directory postgres owns, outside the test's own
// temporary directory (which postgres cannot enter).
func postgresDir(t *testing.T) string {
	t.Helper()
	uid, gid, err := testpg.PostgresIDs()
	testsshd.Require(t, err == nil, fmt.Sprintf("no user postgres: %v", err))
	dir, err := os.MkdirTemp("", "rb-basebackup-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// leftSecretFiles lists the files in the temporary directories (mktemp's
// default, /tmp, and this process's) that hold the password as .pgpass
// writes it: what mktemp made and nobody removed.
func leftSecretFiles(t *testing.T, password string) []string {
	t.Helper()
	escaped := []byte(strings.ReplaceAll(strings.ReplaceAll(password, `\`, `\\`), ":", `\:`))
	var out []string
	dirs := []string{"/tmp"}
	if os.TempDir() != "/tmp" {
		dirs = append(dirs, os.TempDir())
	}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			info, err := e.Info()
			if err != nil || !info.Mode().IsRegular() || info.Size() > 1<<20 {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err == nil && bytes.Contains(b, escaped) {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	return out
}

// fakeBaseBackup is a pg_basebackup that reads its password file as libpq
// would, says so, and waits to be killed. What it read lands in one rename:
// a kill between the shell creating the file and cat writing it would
// otherwise leave an empty file that looks like a password never handed over.
const fakeBaseBackup = `#!/bin/sh
d="$(dirname "$0")"
cat "$PGPASSFILE" > "$d/password-read.tmp" && mv "$d/password-read.tmp" "$d/password-read"
sleep 60
`

// TestBaseBackupLeavesNoSecretFile runs the bundled base backup step, as
// shipped in configure-standby (add-standby runs configure-standby): for
// real against
// PostgreSQL 15 (its pg_basebackup reads the password the step hands it),
// then cancelled and timed out while pg_basebackup runs. No file with the
// replication password may stay in the temporary directory.
func TestBaseBackupLeavesNoSecretFile(t *testing.T) {
	sshd := testsshd.Start(t)
	pg := testpg.Start(t)
	pg.Psql(t, "CREATE ROLE rb_repl REPLICATION LOGIN PASSWORD '"+strings.ReplaceAll(replicationPassword, "'", "''")+"'")
	pg.Psql(t, "SELECT pg_create_physical_replication_slot('rb_slot')")
	primary := "127.0.0.1"
	work := t.TempDir()
	inv := filepath.Join(work, "inventory.yaml")
	if err := os.WriteFile(inv, []byte(sshd.Inventory("box")), 0o600); err != nil {
		t.Fatal(err)
	}
	before := leftSecretFiles(t, replicationPassword)
	for _, name := range []string{"pg-ha/configure-standby"} {
		t.Run(strings.TrimPrefix(name, "pg-ha/"), func(t *testing.T) {
			pb := filepath.Join(work, strings.TrimPrefix(name, "pg-ha/")+".yaml")
			if err := os.WriteFile(pb, []byte(baseBackupPlaybook(t, name)), 0o600); err != nil {
				t.Fatal(err)
			}
			runCLI := func(args ...string) (int, string) {
				var out bytes.Buffer
				e := &cli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out, Getenv: os.Getenv,
					LookupEnv: func(k string) (string, bool) {
						if k == "RB_REPLICATION_PASSWORD" {
							return replicationPassword, true
						}
						return os.LookupEnv(k)
					}}
				code := e.Main(append([]string{"runbook", "run", pb, "-i", inv, "--state-dir", filepath.Join(work, "state")}, args...))
				return code, out.String()
			}
			check := func(what, output string) {
				t.Helper()
				for _, f := range leftSecretFiles(t, replicationPassword) {
					if !slices.Contains(before, f) {
						t.Errorf("after %s, %s holds the password", what, f)
						_ = os.Remove(f)
					}
				}
				if strings.Contains(output, "repl:pw") || strings.Contains(output, `repl\:pw`) {
					t.Errorf("after %s, the output shows the password:\n%s", what, output)
				}
			}

			// For real: PostgreSQL 15's pg_basebackup reads the password.
			data := filepath.Join(postgresDir(t), "data")
			port := "port=" + strconv.Itoa(pg.Port)
			code, out := runCLI("-p", "data_dir="+data, "-p", "bin="+testpg.Bin, "-p", "primary_address="+primary, "-p", port)
			if code != cli.ExitOK {
				t.Fatalf("base backup: exit %d\n%s", code, out)
			}
			if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
				t.Fatalf("no base backup in %s: %v\n%s", data, err, out)
			}
			check("a base backup", out)

			// A timeout while pg_basebackup runs (long enough that a loaded
			// machine starts the fake before it: it must read the password).
			fake := fakeBin(t)
			data = filepath.Join(postgresDir(t), "data")
			code, out = runCLI("-p", "data_dir="+data, "-p", "bin="+fake, "-p", "primary_address="+primary, "-p", port, "-p", "backup_timeout=10s")
			if code != cli.ExitFailed || !strings.Contains(out, "timed out after 10s") {
				t.Fatalf("exit %d, want a timeout:\n%s", code, out)
			}
			readPassword(t, fake)
			check("a timeout", out)

			// A cancel (Ctrl-C) while pg_basebackup runs.
			fake = fakeBin(t)
			data = filepath.Join(postgresDir(t), "data")
			out = cancelWhenRead(t, pb, inv, fake, map[string]string{"data_dir": data, "bin": fake, "primary_address": primary, "port": strconv.Itoa(pg.Port)})
			check("a cancel", out)
		})
	}
}

// fakeBin is a directory with the fake pg_basebackup.
func fakeBin(t *testing.T) string {
	t.Helper()
	dir := postgresDir(t)
	if err := os.WriteFile(filepath.Join(dir, "pg_basebackup"), []byte(fakeBaseBackup), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// readPassword checks that the fake pg_basebackup found the password in
// the file the step gave it: the step was cut short where the password
// file is in use.
func readPassword(t *testing.T, fake string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fake, "password-read"))
	if err != nil || !strings.Contains(string(b), `repl\:pw`) {
		t.Fatalf("the fake pg_basebackup did not read the password (%v): %q", err, b)
	}
}

// cancelWhenRead runs the playbook through the engine and cancels it, as
// Ctrl-C does, once the fake pg_basebackup has read the password file.
func cancelWhenRead(t *testing.T, pbFile, invFile, fake string, params map[string]string) string {
	t.Helper()
	src, _ := os.ReadFile(pbFile)
	pb, ds := (&engine.Loader{Registry: steps.Builtin()}).Load(pbFile, src)
	if pb == nil {
		t.Fatal(ds)
	}
	inv, ds, err := engine.LoadInventory(invFile)
	if inv == nil || err != nil {
		t.Fatal(err, ds)
	}
	vals, err := engine.ResolveParams(pb, params)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events strings.Builder
	sink := engine.SinkFunc(func(e *engine.Event) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(&events, "%s %s %s %s\n", e.Type, e.Status, e.Message, e.Diff)
	})
	r := &engine.Runner{Inventory: inv, Sink: sink, Connect: func(ctx context.Context, h *engine.HostSpec) (transport.Conn, error) {
		return transport.DialSSH(ctx, transport.SSHConfig{Name: h.Name, Address: h.Address, Port: h.Port, User: h.User, IdentityFiles: []string{h.IdentityFile}, KnownHosts: []string{h.KnownHosts}})
	}}
	ctx, cancel := context.WithCancelCause(context.Background())
	// The cancel waits for the fake to have read the password, however
	// long a loaded machine takes to get there, or for the run to end
	// without it (the check below then says so): never for a fixed time.
	ran := make(chan struct{})
	go func() {
		defer cancel(engine.ErrInterrupted)
		for {
			if _, err := os.Stat(filepath.Join(fake, "password-read")); err == nil {
				return
			}
			select {
			case <-ran:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	err = r.Run(ctx, pb, engine.Inputs{Params: vals, Secrets: map[string]string{"replication_password": replicationPassword}})
	close(ran)
	mu.Lock()
	defer mu.Unlock()
	if err == nil || !strings.Contains(events.String(), "interrupted") {
		t.Fatalf("the run was not interrupted (%v):\n%s", err, events.String())
	}
	readPassword(t, fake)
	return events.String() + err.Error()
}
