package cli

import (
	"context"
	"fmt"
	"os"
	"sync"

	"golang.org/x/term"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/transport"
)

// sshOptions are the command-line settings of SSH connections.
type sshOptions struct {
	acceptNewHostKeys bool
	// configFile replaces ~/.ssh/config, as ssh -F does.
	configFile string
}

// connector returns how runs reach SSH hosts: the inventory's settings,
// then the SSH configuration as OpenSSH reads it (transport.ResolveSSH),
// then OpenSSH's defaults with user root. What the configuration asks and
// runbook does not do is said once per host on stderr.
func (e *Env) connector(opt sshOptions) engine.Connector {
	var mu sync.Mutex
	told := map[string]bool{}
	return func(ctx context.Context, h *engine.HostSpec) (transport.Conn, error) {
		cfg, notes, err := transport.ResolveSSH(ctx, transport.SSHTarget{
			Name: h.Name, Address: h.Address, Port: h.Port, User: h.User, IdentityFile: h.IdentityFile,
			KnownHosts: h.KnownHosts, ConfigFile: opt.configFile, AcceptNewHostKeys: opt.acceptNewHostKeys, Passphrase: e.passphrase(),
		})
		mu.Lock()
		for _, n := range notes {
			if !told[n] {
				told[n] = true
				fmt.Fprintf(e.Stderr, "warning: host %s: %s\n", h.Name, n)
			}
		}
		mu.Unlock()
		if err != nil {
			return nil, err
		}
		return transport.DialSSH(ctx, cfg)
	}
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
