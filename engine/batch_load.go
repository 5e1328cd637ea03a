package engine

import (
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/steps"
)

// isBatch says whether a node of steps: is a batch: a mapping with steps.
func isBatch(n *yaml.Node) bool {
	return n.Kind == yaml.MappingNode && valueOf(n, "steps") != nil
}

// flattenBatches returns the step nodes of a playbook's steps: with the
// steps of each batch in its place, and records the batch of each in
// batches. The steps of a batch keep their own indices, so that the
// journal names a step on a host as it does any other step.
func flattenBatches(nodes []*yaml.Node, batches map[*yaml.Node]*yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	for _, n := range nodes {
		if !isBatch(n) {
			out = append(out, n)
			continue
		}
		inner := valueOf(n, "steps")
		if inner.Kind != yaml.SequenceNode || len(inner.Content) == 0 {
			// Reported by decodeBatch; its steps are not decoded.
			batches[n] = n
			out = append(out, n)
			continue
		}
		for _, sn := range inner.Content {
			batches[sn] = n
			out = append(out, sn)
		}
	}
	return out
}

// decodeBatch decodes a batch's own keys (its steps are decoded as steps).
func decodeBatch(d *steps.Decoder, n *yaml.Node) *Batch {
	where := "batch"
	if nm := valueOf(n, "name"); nm != nil {
		where = "batch " + strconv.Quote(nm.Value)
	}
	f := d.Check(n, batchFields, where)
	b := &Batch{Name: d.Literal(f.Get("name")), Pos: steps.Pos(n), MaxFailPercent: -1, Serial: []BatchSize{{N: 1}}}
	if b.Name == "" {
		b.Name = "batch"
	}
	d.Scope.Host = false
	if h := f.Get("hosts"); h != nil {
		b.Hosts, b.HostsExpr = decodeHosts(d, h)
	}
	if sn := f.Get("serial"); sn != nil {
		b.Serial = decodeSerial(d, sn)
	}
	b.MaxFailures = d.Int(f.Get("max_failures"), 0)
	if p := f.Get("max_fail_percentage"); p != nil {
		if f.Get("max_failures") != nil {
			d.Errorf(p, diag.RuleInvalidValue, "%s has both max_failures and max_fail_percentage: use one", where)
		}
		b.MaxFailPercent = d.Int(p, 0)
		if b.MaxFailPercent < 0 || b.MaxFailPercent > 100 {
			d.Errorf(p, diag.RuleInvalidValue, "max_fail_percentage is a percentage, 0 to 100, not %d", b.MaxFailPercent)
		}
	}
	if b.MaxFailures < 0 {
		d.Errorf(f.Get("max_failures"), diag.RuleInvalidValue, "max_failures is a number of hosts, not %d", b.MaxFailures)
	}
	if s := f.Get("steps"); s != nil && (s.Kind != yaml.SequenceNode || len(s.Content) == 0) {
		d.Errorf(s, diag.RuleMissingField, "%s has no steps: list the steps to run on each batch of hosts", where)
	}
	return b
}

// decodeSerial reads serial: a number, a percentage or a list of them.
func decodeSerial(d *steps.Decoder, n *yaml.Node) []BatchSize {
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
		if len(items) == 0 {
			d.Errorf(n, diag.RuleInvalidValue, "serial: an empty list gives no batch size: write a number of hosts (1 or more), a percentage (\"25%%\"), or a list of them ([1, \"50%%\"])")
		}
	}
	var out []BatchSize
	for _, it := range items {
		v := strings.TrimSpace(it.Value)
		pct := strings.HasSuffix(v, "%")
		num, err := strconv.Atoi(strings.TrimSuffix(v, "%"))
		switch {
		case it.Kind != yaml.ScalarNode:
			d.Errorf(it, diag.RuleInvalidValue, "serial: %s is not a number of hosts (1 or more) nor a percentage (\"1%%\" to \"100%%\")", steps.DescribeNode(it))
			continue
		case strings.Contains(v, "${{"):
			d.Errorf(it, diag.RuleInvalidValue, "serial takes a fixed value, not an expression: it decides the batches when the playbook is loaded")
			continue
		case err != nil || num < 1 || pct && num > 100:
			d.Errorf(it, diag.RuleInvalidValue, "serial: %q is not a number of hosts (1 or more) nor a percentage (\"1%%\" to \"100%%\")", it.Value)
			continue
		}
		out = append(out, BatchSize{N: num, Percent: pct})
	}
	if len(out) == 0 {
		return []BatchSize{{N: 1}}
	}
	return out
}

// refuseInBatch reports the keys a step of a batch may not have: the
// batch says where it runs.
func refuseInBatch(d *steps.Decoder, n *yaml.Node) {
	for _, k := range []string{"host", "hosts", "parallel", "max_failures"} {
		if v := valueOf(n, k); v != nil {
			d.Errorf(v, diag.RuleInvalidValue, "%s: a step of a batch runs on the hosts of the batch; remove it (the batch's hosts, serial and max_failures say where and how many)", k)
		}
	}
}

// decodeHosts decodes hosts: a list of hosts or groups, or one expression
// giving a list.
func decodeHosts(d *steps.Decoder, h *yaml.Node) ([]*tmpl.Template, *tmpl.Template) {
	if h.Kind == yaml.ScalarNode {
		t := d.Template(h)
		refuseSecretHost(d, h, t)
		return nil, t
	}
	ts := d.TemplateList(h, "hosts")
	for i, t := range ts {
		if i < len(h.Content) {
			refuseSecretHost(d, h.Content[i], t)
		}
	}
	return ts, nil
}

// decodeTolerance reads tolerate: a list of unreachable and failed.
func decodeTolerance(d *steps.Decoder, n *yaml.Node) Tolerance {
	var t Tolerance
	if n == nil {
		return t
	}
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
	}
	if len(items) == 0 {
		// Written for a reason, and tolerating nothing: the author meant
		// something else.
		d.Errorf(n, diag.RuleInvalidValue, "tolerate: [] tolerates nothing: name %s, or remove it", strings.Join(toleranceNames, " or "))
	}
	for _, it := range items {
		switch it.Value {
		case "unreachable":
			t.Unreachable = true
		case "failed":
			t.Failed = true
		default:
			d.Errorf(it, diag.RuleInvalidValue, "tolerate: %q is not one of %s%s", it.Value, strings.Join(toleranceNames, ", "), diag.DidYouMean(it.Value, toleranceNames))
		}
	}
	return t
}
