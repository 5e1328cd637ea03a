package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/durable"
	"github.com/runbook-dev/runbook/playbooks"
)

// Completion: the functions the shells call through `runbook __complete`
// (see `runbook completion bash|zsh|fish`). They read what the command line
// names (the playbook, the inventory of -i, the state directory) and never
// print an error: a word that cannot be completed gets no candidates.

// completePlaybookArgs completes a command's playbook argument (bundled
// names and playbook files), its -p NAME=VALUE and its -i inventory.
func (e *Env) completePlaybookArgs(c *cobra.Command) {
	c.ValidArgsFunction = func(_ *cobra.Command, args []string, word string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return playbookFiles(nil, args, word)
	}
	if c.Flags().Lookup("param") != nil {
		_ = c.RegisterFlagCompletionFunc("param", completeParam)
	}
	if c.Flags().Lookup("inventory") != nil {
		_ = c.RegisterFlagCompletionFunc("inventory", yamlFiles)
	}
}

// playbookFiles completes the bundled playbook names and the YAML files
// (and directories) that start with word.
func playbookFiles(_ *cobra.Command, _ []string, word string) ([]string, cobra.ShellCompDirective) {
	names, _ := bundledNames(nil, nil, word)
	files, dir := yamlFiles(nil, nil, word)
	return append(names, files...), dir
}

// bundledNames completes the names of the bundled playbooks.
func bundledNames(_ *cobra.Command, _ []string, word string) ([]string, cobra.ShellCompDirective) {
	var out []string
	for _, n := range playbooks.Names() {
		if strings.HasPrefix(n, word) {
			out = append(out, n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// yamlFiles completes the .yaml and .yml files and the directories that
// start with word; a directory is completed without a space after it.
func yamlFiles(_ *cobra.Command, _ []string, word string) ([]string, cobra.ShellCompDirective) {
	dir, base := filepath.Split(word)
	list := dir
	if list == "" {
		list = "."
	}
	ents, err := os.ReadDir(list)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	onlyDirs := true
	for _, ent := range ents {
		n := ent.Name()
		if !strings.HasPrefix(n, base) || strings.HasPrefix(n, ".") && !strings.HasPrefix(base, ".") {
			continue
		}
		switch {
		case ent.IsDir():
			out = append(out, dir+n+"/")
		case strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml"):
			out = append(out, dir+n)
			onlyDirs = false
		}
	}
	d := cobra.ShellCompDirectiveNoFileComp
	if onlyDirs && len(out) > 0 {
		d |= cobra.ShellCompDirectiveNoSpace
	}
	return out, d
}

// fixedValues completes one of values.
func fixedValues(values ...string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, word string) ([]string, cobra.ShellCompDirective) {
		var out []string
		for _, v := range values {
			if strings.HasPrefix(v, word) {
				out = append(out, v)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeParam completes -p: the playbook's parameter names as NAME=
// (those not given yet), then after NAME= the values of an enum, true or
// false, or the inventory's hosts (from -i) for a host parameter.
func completeParam(c *cobra.Command, args []string, word string) ([]string, cobra.ShellCompDirective) {
	none := cobra.ShellCompDirectiveNoFileComp
	if len(args) == 0 {
		return nil, none
	}
	file, src, err := readPlaybook(args[0])
	if err != nil {
		return nil, none
	}
	pb, _ := newLoader().Load(file, src)
	if pb == nil {
		return nil, none
	}
	name, val, hasValue := strings.Cut(word, "=")
	if !hasValue {
		given := map[string]bool{}
		if f := c.Flags().Lookup("param"); f != nil {
			for n := range f.Value.(kvList) {
				given[n] = true
			}
		}
		var out []string
		for _, p := range pb.Params {
			if strings.HasPrefix(p.Name, name) && !given[p.Name] {
				out = append(out, p.Name+"=\t"+p.Description)
			}
		}
		return out, none | cobra.ShellCompDirectiveNoSpace
	}
	i := slices.IndexFunc(pb.Params, func(p *engine.Param) bool { return p.Name == name })
	if i < 0 {
		return nil, none
	}
	var values []string
	switch p := pb.Params[i]; {
	case len(p.Enum) > 0:
		values = p.Enum
	case p.Type == engine.TypeBool:
		values = []string{"true", "false"}
	case p.Type == engine.TypeHost:
		values = inventoryHosts(c)
	}
	var out []string
	for _, v := range values {
		if strings.HasPrefix(v, val) {
			out = append(out, name+"="+v)
		}
	}
	return out, none
}

// inventoryHosts lists the hosts of the inventory the command line names
// with -i, and localhost.
func inventoryHosts(c *cobra.Command) []string {
	hosts := []string{"localhost"}
	f := c.Flags().Lookup("inventory")
	if f == nil || f.Value.String() == "" {
		return hosts
	}
	inv, _, err := engine.LoadInventory(f.Value.String())
	if err != nil || inv == nil {
		return hosts
	}
	for n := range inv.Hosts {
		if n != "localhost" {
			hosts = append(hosts, n)
		}
	}
	slices.Sort(hosts)
	return hosts
}

// completeRunIDs completes the ids of the runs in the store sf names; with
// resumable, only those a resume can continue (not finished, not running).
// Each comes with its playbook, status and start as its description.
func (e *Env) completeRunIDs(sf *stateFlags, resumable bool) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, word string) ([]string, cobra.ShellCompDirective) {
		none := cobra.ShellCompDirectiveNoFileComp
		if len(args) > 0 {
			return nil, none
		}
		store, err := sf.open(context.Background())
		if err != nil {
			return nil, none
		}
		defer store.Close()
		ids, err := store.List()
		if err != nil {
			return nil, none
		}
		var out []string
		for _, id := range ids {
			if !strings.HasPrefix(id, word) {
				continue
			}
			st, _, err := durable.ReadState(store, id)
			switch {
			case errors.Is(err, durable.ErrEmpty) || err != nil:
				if !resumable {
					out = append(out, id)
				}
				continue
			case resumable && (st.Finished() || store.Running(id)):
				continue
			}
			out = append(out, id+"\t"+st.Header.Playbook+" "+st.Status)
		}
		return out, none
	}
}
