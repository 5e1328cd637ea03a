package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/runbook-dev/runbook/internal/cli"
	"github.com/runbook-dev/runbook/internal/testnet"
	"github.com/runbook-dev/runbook/internal/testsshd"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"runbook": func() { os.Exit(cli.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the CLI end-to-end scripts in testdata/script.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "../../testdata/script", Setup: func(env *testscript.Env) error {
		env.Setenv("XDG_STATE_HOME", filepath.Join(env.WorkDir, ".state"))
		env.Setenv("XDG_CACHE_HOME", filepath.Join(env.WorkDir, ".cache"))
		// RUNBOOK_ONLY: a PATH where runbook is found and nothing else
		// (no shellcheck); testscript puts its programs first in PATH.
		env.Setenv("RUNBOOK_ONLY", filepath.SplitList(os.Getenv("PATH"))[0])
		return nil
	}})
}

// TestSSHScripts runs the scripts of testdata/script-ssh against a real
// sshd on loopback. $WORK/inventory.yaml names it pg1 and pg2;
// $WORK/fleet.yaml pg1, pg2 and pg3 (group postgres), and
// $WORK/fleet-down.yaml the same with pg3 at a port where nothing answers;
// $WORK/unknown-key.yaml has an empty known_hosts; $WORK/down.yaml points
// pg1 at a closed port, $WORK/silent.yaml at a port where nothing answers,
// $WORK/hung.yaml at one that accepts and never speaks; $SSHD_PORT is the
// real sshd's port, $SILENT_PORT the silent one's.
func TestSSHScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "../../testdata/script-ssh",
		Setup: func(env *testscript.Env) error {
			if ok, why := testsshd.Available(); !ok {
				if os.Getenv("RUNBOOK_REQUIRE_REAL") != "" {
					return fmt.Errorf("cannot run: %s", why)
				}
				env.T().Skip(why)
			}
			sshDir := filepath.Join(env.WorkDir, ".sshd")
			if err := os.Mkdir(sshDir, 0o700); err != nil {
				return err
			}
			s, err := testsshd.StartIn(sshDir, env.Defer)
			if err != nil {
				return err
			}
			inv := s.Inventory("pg1", "pg2")
			if err := os.WriteFile(filepath.Join(env.WorkDir, "inventory.yaml"), []byte(inv), 0o600); err != nil {
				return err
			}
			// fleet.yaml: three hosts (one sshd) in the group postgres;
			// fleet-down.yaml: the same with nothing answering for pg3.
			fleet := s.Inventory("pg1", "pg2", "pg3") + "groups:\n  postgres: [pg1, pg2, pg3]\n"
			if err := os.WriteFile(filepath.Join(env.WorkDir, "fleet.yaml"), []byte(fleet), 0o600); err != nil {
				return err
			}
			empty := filepath.Join(env.WorkDir, "empty_known_hosts")
			if err := os.WriteFile(empty, nil, 0o600); err != nil {
				return err
			}
			unknown := strings.Replace(inv, s.KnownHosts, empty, 1)
			if err := os.WriteFile(filepath.Join(env.WorkDir, "unknown-key.yaml"), []byte(unknown), 0o600); err != nil {
				return err
			}
			down := strings.Replace(inv, fmt.Sprintf("port: %d", s.Port), "port: 1", 1)
			if err := os.WriteFile(filepath.Join(env.WorkDir, "down.yaml"), []byte(down), 0o600); err != nil {
				return err
			}
			// silent.yaml: nothing answers at pg1's SSH port (a machine that
			// is powered off); hung.yaml: it accepts and never speaks.
			silent, err := testnet.Silent(env.Defer)
			if err != nil {
				return err
			}
			hung, err := testnet.Hung(env.Defer)
			if err != nil {
				return err
			}
			_, silentPort, _ := strings.Cut(silent, ":")
			env.Setenv("SILENT_PORT", silentPort)
			pg3 := fmt.Sprintf("  pg3: {address: %s}\n", s.Host)
			fleetDown := strings.Replace(fleet, pg3, fmt.Sprintf("  pg3: {address: %s, port: %s}\n", s.Host, silentPort), 1)
			if err := os.WriteFile(filepath.Join(env.WorkDir, "fleet-down.yaml"), []byte(fleetDown), 0o600); err != nil {
				return err
			}
			for file, addr := range map[string]string{"silent.yaml": silent, "hung.yaml": hung} {
				_, port, _ := strings.Cut(addr, ":")
				inv := strings.Replace(inv, fmt.Sprintf("port: %d", s.Port), "port: "+port, 1)
				if err := os.WriteFile(filepath.Join(env.WorkDir, file), []byte(inv), 0o600); err != nil {
					return err
				}
			}
			env.Setenv("SSHD_PORT", strconv.Itoa(s.Port))
			sshConfig := fmt.Sprintf(`Host jumpy
  HostName %[1]s
  Port %[2]d
  User root
  IdentityFile %[3]s
  UserKnownHostsFile %[4]s
Host viajump
  HostName %[1]s
  Port %[2]d
  IdentityFile %[3]s
  UserKnownHostsFile %[4]s
  ProxyJump jumpy
`, s.Host, s.Port, s.IdentityFile, s.KnownHosts)
			if err := os.WriteFile(filepath.Join(env.WorkDir, "ssh_config"), []byte(sshConfig), 0o600); err != nil {
				return err
			}
			env.Setenv("SSHD_DIR", s.Dir)
			env.Setenv("XDG_STATE_HOME", filepath.Join(env.WorkDir, ".state"))
			return nil
		},
	})
}
