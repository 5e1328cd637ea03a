package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/runbook-dev/runbook/engine"
)

func graphCmd(e *Env, c *cobra.Command) func([]string) int {
	format := c.Flags().String("format", "mermaid", "mermaid (GitHub renders it in Markdown) or dot (Graphviz)")
	_ = c.RegisterFlagCompletionFunc("format", fixedValues("mermaid", "dot"))
	e.completePlaybookArgs(c)
	return func(pos []string) int { return e.graph(*format, pos) }
}

// graph draws the playbook pos names in format.
func (e *Env) graph(format string, pos []string) int {
	if len(pos) != 1 {
		return e.usageError("graph needs one playbook (a file or a bundled name)")
	}
	if format != "mermaid" && format != "dot" {
		return e.usageError("--format must be mermaid or dot, not %q", format)
	}
	pb, code := e.loadPlaybook(pos[0])
	if pb == nil {
		return code
	}
	writeGraph(e.Stdout, pb, format)
	return ExitOK
}

// plain shows a template as its expressions, without ${{ }}, which reads
// better in a box.
func plain(s string) string {
	return strings.NewReplacer("${{ ", "", " }}", "", "${{", "", "}}", "").Replace(s)
}

// node is one box of the graph.
type node struct {
	id, label, shape string
}

// graphNodes lists the guards (checked together before anything), then the
// steps in order; waits and guards get shapes of their own.
func graphNodes(pb *engine.Playbook) (guards, steps []node) {
	for i, g := range pb.Require {
		label := g.Label()
		if g.Host != nil {
			label += " [" + plain(g.Host.Source) + "]"
		}
		guards = append(guards, node{fmt.Sprintf("g%d", i+1), label, "guard"})
	}
	for i, s := range pb.Steps {
		label := s.Label()
		where := ""
		switch {
		case s.Host != nil:
			where = plain(s.Host.Source)
		case len(s.Hosts) > 0:
			var hs []string
			for _, h := range s.Hosts {
				hs = append(hs, plain(h.Source))
			}
			where = strings.Join(hs, ", ")
		case s.HostsExpr != nil:
			where = plain(s.HostsExpr.Source)
		}
		if where != "" {
			label += " [" + where + "]"
		}
		label = s.Type.Describe().Name + ": " + label
		if s.When != nil {
			label += " (when " + s.When.Source + ")"
		}
		shape := "step"
		if s.Type.Describe().Waits {
			shape = "wait"
		}
		steps = append(steps, node{fmt.Sprintf("s%d", i+1), label, shape})
	}
	return guards, steps
}

func writeGraph(w io.Writer, pb *engine.Playbook, format string) {
	guards, steps := graphNodes(pb)
	if format == "dot" {
		fmt.Fprintf(w, "digraph %q {\n  rankdir=TB;\n  node [fontname=\"Helvetica\"];\n", pb.Name)
		shapes := map[string]string{"guard": "diamond", "wait": "hexagon", "step": "box"}
		for _, n := range append(guards, steps...) {
			fmt.Fprintf(w, "  %s [shape=%s, label=%q];\n", n.id, shapes[n.shape], n.label)
		}
		fmt.Fprintf(w, "  start [shape=circle, label=\"start\"];\n  refused [shape=octagon, label=\"refused: nothing changed\"];\n")
		prev := "start"
		for _, g := range guards {
			fmt.Fprintf(w, "  %s -> %s;\n  %s -> refused [style=dashed, label=\"fails\"];\n", prev, g.id, g.id)
			prev = g.id
		}
		for _, s := range steps {
			fmt.Fprintf(w, "  %s -> %s;\n", prev, s.id)
			prev = s.id
		}
		fmt.Fprintln(w, "}")
		return
	}
	esc := func(s string) string { return strings.NewReplacer(`"`, "#quot;", "\n", " ").Replace(s) }
	fmt.Fprintln(w, "flowchart TD")
	fmt.Fprintln(w, "  start((start))")
	prev := "start"
	if len(guards) > 0 {
		fmt.Fprintln(w, "  refused[/refused: nothing changed/]")
	}
	for _, g := range guards {
		fmt.Fprintf(w, "  %s{\"guard: %s\"}\n  %s --> %s\n  %s -. fails .-> refused\n", g.id, esc(g.label), prev, g.id, g.id)
		prev = g.id
	}
	for _, s := range steps {
		open, closeB := "[\"", "\"]"
		if s.shape == "wait" {
			open, closeB = "{{\"", "\"}}"
		}
		fmt.Fprintf(w, "  %s%s%s%s\n  %s --> %s\n", s.id, open, esc(s.label), closeB, prev, s.id)
		prev = s.id
	}
}
