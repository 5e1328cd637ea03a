package engine

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/steps"
)

// Inventory is the set of hosts a playbook can run on.
type Inventory struct {
	File   string
	Hosts  map[string]*HostSpec
	Groups map[string][]string
	// Source is the file's text: a secret that occurs in it cannot be
	// redacted safely (see CheckSecrets).
	Source []byte
}

// HostSpec says how to reach a host.
type HostSpec struct {
	Name      string
	Address   string
	Port      int
	User      string
	Transport string
	// IdentityFile and KnownHosts are paths on this machine.
	IdentityFile string
	KnownHosts   string
	Vars         map[string]any
	Pos          diag.Pos
}

// The transports a host can use.
const (
	TransportSSH   = "ssh"
	TransportLocal = "local"
)

// Localhost is the built-in host that runs on this machine without SSH.
const Localhost = "localhost"

var hostFields = []steps.Field{
	{Name: "address", Kind: steps.Literal, Doc: "IP address or DNS name (default: the host's name, resolved through ~/.ssh/config)", Example: "10.0.0.11"},
	{Name: "port", Kind: steps.Int, Doc: "SSH port", Default: 22},
	{Name: "user", Kind: steps.Literal, Doc: "SSH user", Default: "root"},
	{Name: "transport", Kind: steps.Literal, Doc: "ssh, or local to run on this machine", Enum: []string{TransportSSH, TransportLocal}, Default: TransportSSH},
	{Name: "identity_file", Kind: steps.Literal, Doc: "private key file", Example: "~/.ssh/id_ed25519"},
	{Name: "known_hosts", Kind: steps.Literal, Doc: "known_hosts file used to verify host keys", Default: "~/.ssh/known_hosts"},
	{Name: "vars", Kind: steps.Object, Doc: "values available as host.vars.NAME"},
}

var inventoryFields = []steps.Field{
	{Name: "defaults", Kind: steps.Object, Doc: "settings every host inherits"},
	{Name: "hosts", Kind: steps.Object, Required: true, Doc: "hosts by name"},
	{Name: "groups", Kind: steps.Object, Doc: "named lists of hosts, usable in hosts:"},
}

// HostFields returns the keys of an inventory host, for the schema.
func HostFields() []steps.Field { return hostFields }

// InventoryFields returns the top-level keys of an inventory, for the schema.
func InventoryFields() []steps.Field { return inventoryFields }

// LoadInventory reads an inventory file.
func LoadInventory(file string) (*Inventory, []*diag.Diagnostic, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	inv, ds := ParseInventory(file, src)
	return inv, ds, nil
}

// ParseInventory parses an inventory, reporting every problem.
func ParseInventory(file string, src []byte) (*Inventory, []*diag.Diagnostic) {
	ds := &diag.List{File: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		ds.Errorf(diag.Pos{}, diag.RuleYAMLSyntax, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		return nil, ds.Items
	}
	inv := &Inventory{File: file, Hosts: map[string]*HostSpec{}, Groups: map[string][]string{}, Source: src}
	if len(doc.Content) == 0 {
		ds.Errorf(diag.Pos{Line: 1, Col: 1}, diag.RuleMissingField, "the inventory is empty: it needs hosts")
		return nil, ds.Items
	}
	duplicateKeys(&doc, ds)
	d := &steps.Decoder{Diags: ds}
	top := d.Check(doc.Content[0], inventoryFields, "the inventory")
	// Port, user and known_hosts stay empty unless given, so that
	// ~/.ssh/config can supply them before the built-in defaults.
	defaults := &HostSpec{Transport: TransportSSH}
	if n := top.Get("defaults"); n != nil {
		decodeHost(d, n, defaults, "defaults")
	}
	if n := top.Get("hosts"); n != nil {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			h := *defaults
			h.Name, h.Pos, h.Address = k.Value, steps.Pos(k), ""
			h.Vars = copyVars(defaults.Vars)
			if v.Tag != "!!null" {
				decodeHost(d, v, &h, "host "+k.Value)
			}
			if h.Address == "" {
				h.Address = defaults.Address
			}
			if h.Address == "" {
				h.Address = h.Name
			}
			inv.Hosts[h.Name] = &h
		}
	}
	if n := top.Get("groups"); n != nil {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind != yaml.SequenceNode {
				d.Errorf(v, diag.RuleTypeMismatch, "group %s must be a list of host names", k.Value)
				continue
			}
			if _, clash := inv.Hosts[k.Value]; clash {
				d.Errorf(k, diag.RuleDuplicateID, "group %s has the name of a host", k.Value)
			}
			for _, m := range v.Content {
				if _, ok := inv.Hosts[m.Value]; !ok {
					d.Errorf(m, diag.RuleUndefinedReference, "group %s lists %q, which is not a host%s", k.Value, m.Value, diag.DidYouMean(m.Value, inv.HostNames()))
					continue
				}
				inv.Groups[k.Value] = append(inv.Groups[k.Value], m.Value)
			}
		}
	}
	diag.Sort(ds.Items)
	if diag.HasErrors(ds.Items) {
		return nil, ds.Items
	}
	return inv, ds.Items
}

func copyVars(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func decodeHost(d *steps.Decoder, n *yaml.Node, h *HostSpec, where string) {
	f := d.Check(n, hostFields, where)
	if v := f.Get("address"); v != nil {
		h.Address = v.Value
	}
	if v := f.Get("port"); v != nil {
		h.Port = d.Int(v, 22)
	}
	if v := f.Get("user"); v != nil {
		h.User = v.Value
	}
	if v := f.Get("transport"); v != nil {
		h.Transport = v.Value
	}
	if v := f.Get("identity_file"); v != nil {
		h.IdentityFile = v.Value
	}
	if v := f.Get("known_hosts"); v != nil {
		h.KnownHosts = v.Value
	}
	if v := f.Get("vars"); v != nil {
		for i := 0; i+1 < len(v.Content); i += 2 {
			k, val := v.Content[i], v.Content[i+1]
			if strings.Contains(strings.ToLower(k.Value), "pass") && val.Kind == yaml.ScalarNode && val.Value != "" {
				d.Diags.Warnf(steps.Pos(val), diag.RulePlaintextSecret, "a password written in the inventory (%s): declare a secret in the playbook instead", k.Value)
			}
		}
		var vars map[string]any
		if err := v.Decode(&vars); err != nil {
			d.Errorf(v, diag.RuleTypeMismatch, "vars: %v", err)
		}
		if h.Vars == nil {
			h.Vars = map[string]any{}
		}
		for k, x := range vars {
			h.Vars[k] = x
		}
	}
}

// HostNames returns the names of all hosts, sorted.
func (inv *Inventory) HostNames() []string {
	if inv == nil {
		return nil
	}
	out := make([]string, 0, len(inv.Hosts))
	for n := range inv.Hosts {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Host returns the host with the given name; localhost is built in.
func (inv *Inventory) Host(name string) (*HostSpec, error) {
	if inv != nil {
		if h, ok := inv.Hosts[name]; ok {
			return h, nil
		}
	}
	if name == Localhost {
		return &HostSpec{Name: Localhost, Address: "127.0.0.1", Transport: TransportLocal, Vars: map[string]any{}}, nil
	}
	if inv == nil {
		return nil, fmt.Errorf("unknown host %q: there is no inventory, so no host or group but localhost: pass an inventory with -i", name)
	}
	return nil, fmt.Errorf("unknown host %q: not in inventory %s%s", name, inv.File, diag.DidYouMean(name, inv.HostNames()))
}

// Expand turns a host or group name into host names.
func (inv *Inventory) Expand(name string) ([]string, error) {
	if inv != nil {
		if g, ok := inv.Groups[name]; ok {
			return g, nil
		}
	}
	if _, err := inv.Host(name); err != nil {
		return nil, err
	}
	return []string{name}, nil
}

// CheckHosts reports the host names a playbook writes literally (host:,
// hosts:) that the inventory does not have.
func CheckHosts(pb *Playbook, inv *Inventory) []*diag.Diagnostic {
	ds := &diag.List{File: pb.File}
	// A guard's or step's file: an included playbook's is its own.
	file := func(fr *Frame) string {
		if fr == nil {
			return pb.File
		}
		return fr.Playbook.File
	}
	check := func(fr *Frame, t *tmpl.Template, pos diag.Pos, group bool) {
		// A template the loader refused (nil) was reported there.
		if t == nil || !t.IsLiteral() {
			return
		}
		name := t.Source
		var err error
		if group {
			_, err = inv.Expand(name)
		} else {
			_, err = inv.Host(name)
		}
		if err != nil {
			ds.Errorf(pos, diag.RuleUndefinedReference, "%v", err)
			ds.Items[len(ds.Items)-1].File = file(fr)
		}
	}
	for _, g := range pb.Require {
		if g.Host != nil {
			check(g.Frame, g.Host, g.Pos, false)
		}
		for _, h := range g.Hosts {
			check(g.Frame, h, g.Pos, true)
		}
	}
	var batch *Batch
	for _, s := range pb.Steps {
		if s.Batch != nil && s.Batch != batch {
			batch = s.Batch
			for _, h := range batch.Hosts {
				check(s.Frame, h, batch.Pos, true)
			}
		}
		if s.Host != nil {
			check(s.Frame, s.Host, s.Pos, false)
		}
		for _, h := range s.Hosts {
			check(s.Frame, h, s.Pos, true)
		}
	}
	return ds.Items
}
