package engine

import (
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// FactReads says which facts a guard's expressions read, so that the
// guard starts as soon as those are in instead of after every fact: a
// guard on the standby that reads the standby's facts need not wait for
// the old primary's, which take as long as the network takes to report
// that machine down.
type FactReads int

const (
	// ReadsNoFacts: the guard reads no fact; it starts with the facts.
	ReadsNoFacts FactReads = iota
	// ReadsHostFacts: it reads host.facts, the facts of the host it
	// probes; it starts on a host once that host's facts are in.
	ReadsHostFacts
	// ReadsAllFacts: it reads facts.NAME[HOST] (any host's); it starts
	// once every fact is in, as every guard did before.
	ReadsAllFacts
)

var (
	// factsRoot is the root facts, not a field of that name (host.facts).
	factsRoot = regexp.MustCompile(`(^|[^.\w])facts\b`)
	// hostRoot is the root host with what follows it.
	hostRoot = regexp.MustCompile(`(^|[^.\w])host\b(\s*\.\s*(\w+))?`)
)

// guardFactReads reads which facts guard node n reads from its source:
// its templates (the text from their first ${{) and its assert. It errs on the
// side of waiting: a name facts anywhere in an expression (a string in it
// included) waits for every fact, and host used otherwise than for its
// name, address or vars waits for the host's facts; so no guard can see a
// fact that is not in yet.
func guardFactReads(n *yaml.Node) FactReads {
	reads := ReadsNoFacts
	see := func(src string) {
		if factsRoot.MatchString(src) {
			reads = ReadsAllFacts
			return
		}
		for _, m := range hostRoot.FindAllStringSubmatch(src, -1) {
			switch m[3] {
			case "name", "address", "vars":
			default:
				reads = max(reads, ReadsHostFacts)
			}
		}
	}
	var walk func(n *yaml.Node, whole bool, depth int)
	walk = func(n *yaml.Node, whole bool, depth int) {
		if n == nil || depth > 64 || reads == ReadsAllFacts {
			return
		}
		switch n.Kind {
		case yaml.AliasNode:
			walk(n.Alias, whole, depth+1)
		case yaml.ScalarNode:
			if whole {
				see(n.Value)
				return
			}
			// From the first ${{ to the end: an expression may hold
			// }} itself (a map in a map), and plain text read as one
			// only makes the guard wait.
			if i := strings.Index(n.Value, "${{"); i >= 0 {
				see(n.Value[i+3:])
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				// assert is a bare expression; everything else reads
				// expressions only inside ${{ }}.
				walk(n.Content[i+1], depth == 0 && n.Content[i].Value == "assert", depth+1)
			}
		default:
			for _, c := range n.Content {
				walk(c, false, depth+1)
			}
		}
	}
	walk(n, false, 0)
	return reads
}
