package engine

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr/types"
	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/steps"
)

// Fact is a read-only observation of hosts made before the guards: a probe
// on each of its hosts, whose value on each is available to the guards and
// steps as facts.NAME[HOST] and, on that host, host.facts.NAME.
type Fact struct {
	Name string
	Pos  diag.Pos
	// Hosts name the hosts (or groups), or HostsExpr gives them as a list;
	// empty names are left out.
	Hosts     []*tmpl.Template
	HostsExpr *tmpl.Template
	Become    string
	// ServicePorts are tried when a host's SSH port does not answer.
	ServicePorts []*tmpl.Template
	Type         steps.Type
	Probe        steps.Step
	// Value makes the fact's value of the probe's result; nil keeps the
	// result.
	Value *tmpl.Template
	// Assert, on the value (as result), refuses the run when false; Hint
	// says why and what to do.
	Assert *tmpl.Expr
	Hint   *tmpl.Template
	// TolerateFailed, in a read-only playbook, makes a probe that fails
	// on a host (the machine answers but gives no session: refused,
	// authentication, host key) an observation instead of a refusal: the
	// value is made of the result {reachable: false, error: why}, as for
	// a host that is down, so that a playbook that only reports what it
	// sees reports that host as not observed and looks at the others. A
	// playbook that can change anything is refused as without it.
	TolerateFailed bool
	// Print is shown with the fact's line, and journaled.
	Print   *tmpl.Template
	Tainted []*tmpl.Template
	// Frame is the included playbook the fact belongs to; nil for the
	// playbook's own.
	Frame *Frame
	// taint is why the fact's value may hold a secret (its probe's inputs
	// read one), or nil.
	taint *tmpl.Taint
}

var factFields = []steps.Field{
	{Name: "hosts", Kind: steps.StringList, Required: true, Doc: "the hosts (or groups) to observe, or one expression giving a list; empty names are left out", Example: []string{"${{ params.primary }}", "${{ params.standby }}"}},
	{Name: "become", Kind: steps.Literal, Doc: "run the probe as this user", Example: "postgres"},
	{Name: "service_ports", Kind: steps.StringList, Doc: servicePortsDoc, Example: []any{"5432"}},
	{Name: "value", Kind: steps.String, Doc: "the fact's value on a host, made of the probe's result (default: the result itself)", Example: "${{ trim(result.stdout) }}"},
	{Name: "assert", Kind: steps.Expr, Doc: "refuse the run, before any guard and any change, when this is false on a host; result is the fact's value", Example: `result.problem == ""`},
	{Name: "hint", Kind: steps.String, Doc: "what a refusal says (result is the fact's value)", Example: "${{ result.problem }}"},
	{Name: "tolerate_failed", Kind: steps.Bool, Doc: "in a read-only playbook (no step can change anything), a probe that fails on a host (it answers but gives no session: connection refused, authentication, host key; or the probe errs) does not refuse the run: the fact's value is made of the result {reachable: false, error: why}, as for a host that is down, so that the playbook reports that host as not observed and looks at the others; a playbook that can change anything is refused as without it", Example: true},
	{Name: "print", Kind: steps.String, Doc: "what the run shows it found on each host, and journals (result is the fact's value)", Example: "${{ result.layout }}"},
}

// FactFields returns the keys of a fact besides its probe, for the schema.
func FactFields() []steps.Field { return factFields }

// decodeAllFacts decodes the facts of the vars files, then the playbook's,
// and makes them readable by what follows (not by vars, which are computed
// before them, nor by other facts).
func (l *Loader) decodeAllFacts(d *steps.Decoder, pb *Playbook, top steps.Body, vfs []*varsFile) {
	seen := map[string]string{}
	typesOf := types.Map{}
	taints := map[string]*tmpl.Taint{}
	decode := func(d *steps.Decoder, n *yaml.Node) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if !checkIdent(d, k, "fact") || !checkDuplicate(d, k, "fact", seen) {
				continue
			}
			if f, t := l.decodeFact(d, k, v); f != nil {
				pb.Facts = append(pb.Facts, f)
				typesOf[f.Name] = tmpl.FactType(t)
				if f.taint != nil {
					taints[f.Name] = f.taint.Through("facts." + f.Name)
				}
			}
		}
	}
	for _, vf := range vfs {
		if n := vf.top.Get("facts"); n != nil {
			decode(vf.d, n)
		}
	}
	if n := top.Get("facts"); n != nil {
		decode(d, n)
	}
	if len(seen) > 0 {
		d.Scope.SetFacts(typesOf)
		d.Scope.FactTaint = taints
	}
}

func (l *Loader) decodeFact(d *steps.Decoder, k, n *yaml.Node) (*Fact, types.Type) {
	where := "fact " + k.Value
	if n.Kind != yaml.MappingNode {
		d.Errorf(n, diag.RuleTypeMismatch, "%s must be a mapping with hosts and a probe", where)
		return nil, nil
	}
	typ, body, rest := l.splitType(d, n, factFields, where)
	f := d.Check(rest, factFields, where)
	ft := &Fact{Name: k.Value, Pos: steps.Pos(k), Become: d.Literal(f.Get("become"))}
	d.Scope.Host = false
	if h := f.Get("hosts"); h != nil {
		if h.Kind == yaml.ScalarNode {
			ft.HostsExpr = d.Template(h)
			refuseSecretHost(d, h, ft.HostsExpr)
		} else {
			ft.Hosts = d.TemplateList(h, "hosts")
			for i, t := range ft.Hosts {
				if i < len(h.Content) {
					refuseSecretHost(d, h.Content[i], t)
				}
			}
		}
	}
	// A fact's service ports are rendered on each of its hosts, so they
	// may read host (a host's own PostgreSQL port in its inventory vars).
	d.Scope.Host = true
	ft.ServicePorts = servicePorts(d, f.Get("service_ports"))
	d.Scope.Host = false
	ft.TolerateFailed = d.Bool(f.Get("tolerate_failed"))
	if typ == nil {
		return nil, nil
	}
	if typ.Describe().Waits {
		d.Errorf(body, diag.RuleInvalidValue, "%s observes once: use a probe step type, not %s", where, typ.Describe().Name)
		return nil, nil
	}
	ft.Type = typ
	d.Scope.Host = true
	defer func() { d.Scope.Host = false }()
	// A probe whose inputs read a secret may give it back in its value
	// (a command echoing its stdin): what reads the fact is tainted.
	d.Taint, d.Tainted = nil, nil
	ft.Probe = l.decodeBody(d, typ, body)
	ft.Tainted, ft.taint = d.Tainted, d.Taint
	var valueType types.Type = steps.ProbeResult(typ)
	saved := d.Scope.Result
	defer func() { d.Scope.Result = saved }()
	if v := f.Get("value"); v != nil {
		d.Scope.Result = steps.ProbeResult(typ)
		ft.Value = d.Template(v)
		d.RefuseSecret(v, ft.Value, diag.RuleSecretExposed, where+": value", "a fact is shown and journaled, and read by any step")
		valueType = types.Any
	}
	d.Scope.Result = valueType
	if h := f.Get("hint"); h != nil {
		ft.Hint = d.Template(h)
		refuseDerivedSecret(d, h, ft.Hint, where+": hint")
	}
	if p := f.Get("print"); p != nil {
		ft.Print = d.Template(p)
		refuseDerivedSecret(d, p, ft.Print, where+": print")
	}
	if a := f.Get("assert"); a != nil {
		ft.Assert = d.Expr(a, valueType)
	}
	return ft, valueType
}

// factsRun is the facts of a run being observed: the guards start while
// they are (see FactReads), each waiting only for the facts it reads.
type factsRun struct {
	jobs   []*factJob
	byHost map[string][]*factJob
	// failed is closed when a fact refuses the run: guards that have not
	// started do not, and those that run are cancelled.
	failed   chan struct{}
	failOnce sync.Once
	// all is closed once every fact is in.
	all chan struct{}
}

type factJob struct {
	f    *Fact
	host string
	// done is closed once value, ok and msg are set.
	done  chan struct{}
	value any
	ok    bool
	msg   string
}

// startFacts observes every fact on each of its hosts at once and shows
// what each found; it returns at once, the observations under way. Their
// values go to the guards and steps as facts.NAME[HOST] and
// host.facts.NAME as each comes in (see factsDone for the refusal).
func (x *run) startFacts(ctx context.Context) (*factsRun, error) {
	fs := &factsRun{byHost: map[string][]*factJob{}, failed: make(chan struct{}), all: make(chan struct{})}
	for _, f := range x.pb.Facts {
		if x.skips(f.Frame) {
			continue
		}
		hosts, err := x.factHosts(f)
		if err != nil {
			return nil, fmt.Errorf("%s:%s: fact %s: hosts: %w", x.fileOf(f.Frame), f.Pos, f.Name, err)
		}
		x.env(f.Frame)["facts"].(map[string]any)[f.Name] = map[string]any{}
		for _, h := range hosts {
			j := &factJob{f: f, host: h, done: make(chan struct{})}
			fs.jobs = append(fs.jobs, j)
			fs.byHost[h] = append(fs.byHost[h], j)
		}
	}
	if len(fs.jobs) == 0 {
		close(fs.all)
		return fs, nil
	}
	// Until every fact is in, an Exec reads a copy of the facts (see exec).
	x.factsPending.Store(true)
	var wg sync.WaitGroup
	for i, j := range fs.jobs {
		wg.Go(func() {
			start := time.Now()
			value, ok, msg, printed := x.fact(ctx, j.f, j.host)
			x.factsMu.Lock()
			x.env(j.f.Frame)["facts"].(map[string]any)[j.f.Name].(map[string]any)[j.host] = value
			x.factsMu.Unlock()
			j.value, j.ok, j.msg = value, ok, msg
			st := StatusOK
			if !ok {
				st = StatusFailed
			}
			// Shown before anything that waited for it starts.
			x.sink.Emit(&Event{Type: EventGuard, Index: i + 1, Name: "fact " + j.f.Label(), Host: j.host, Status: st, Duration: time.Since(start), Message: msg, Print: printed})
			if !ok {
				fs.failOnce.Do(func() { close(fs.failed) })
			}
			close(j.done)
		})
	}
	go func() {
		wg.Wait()
		x.factsPending.Store(false)
		close(fs.all)
	}()
	return fs, nil
}

// wait waits for the facts a guard reads on host (every fact with
// ReadsAllFacts) and reports whether they are in and none refused the
// run: a guard runs only then.
func (fs *factsRun) wait(ctx context.Context, reads FactReads, host string) bool {
	switch reads {
	case ReadsAllFacts:
		select {
		case <-fs.all:
		case <-fs.failed:
		case <-ctx.Done():
		}
	case ReadsHostFacts:
		for _, j := range fs.byHost[host] {
			select {
			case <-j.done:
			case <-fs.failed:
			case <-ctx.Done():
			}
		}
	}
	select {
	case <-fs.failed:
		return false
	default:
		return ctx.Err() == nil
	}
}

// refused reports whether a fact has refused the run so far.
func (fs *factsRun) refused() bool {
	select {
	case <-fs.failed:
		return true
	default:
		return false
	}
}

// finish waits for every fact and returns a *GuardError when a fact's
// assert was false on a host (nothing has changed), or the cause of ctx.
func (fs *factsRun) finish(ctx context.Context) error {
	<-fs.all
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var failed []string
	for _, j := range fs.jobs {
		if !j.ok {
			failed = append(failed, fmt.Sprintf("%q on %s: %s", "fact "+j.f.Label(), j.host, j.msg))
		}
	}
	if len(failed) > 0 {
		return &GuardError{Failed: failed}
	}
	return nil
}

// factHosts resolves a fact's hosts; empty names are left out.
func (x *run) factHosts(f *Fact) ([]string, error) {
	refs, err := x.hostRefs(x.env(f.Frame), f.Hosts, f.HostsExpr)
	if err != nil {
		return nil, err
	}
	var named []string
	for _, r := range refs {
		if strings.TrimSpace(r) != "" {
			named = append(named, r)
		}
	}
	return x.expandRefs(named)
}

// fact observes one fact on one host: its value, whether its assert holds,
// what a refusal says and what it prints.
func (x *run) fact(ctx context.Context, f *Fact, host string) (value any, ok bool, msg, printed string) {
	ex, err := x.exec(f.Frame, host, f.Become)
	if err != nil {
		return nil, false, err.Error(), ""
	}
	if ex.ServicePorts, err = steps.RenderPorts(f.ServicePorts, ex.Env); err != nil {
		return nil, false, err.Error(), ""
	}
	if len(f.Tainted) > 0 {
		x.maskInputs(f.Tainted, ex.Env)
		ex.Redact = x.redactor()
	}
	r, err := steps.Observe(ctx, ex, f.Probe)
	if err != nil {
		msg := "probe failed: " + x.redactor().String(err.Error())
		if !f.TolerateFailed || ctx.Err() != nil || !x.pb.ReadOnly() {
			return nil, false, msg, ""
		}
		r = steps.Result{"reachable": false, "error": msg}
	}
	value = map[string]any(r)
	if f.Value != nil {
		if value, err = f.Value.Value(withResult(ex.Env, r)); err != nil {
			return nil, false, "value: " + err.Error(), ""
		}
	}
	env := make(map[string]any, len(ex.Env)+1)
	for k, v := range ex.Env {
		env[k] = v
	}
	env["result"] = value
	if f.Print != nil {
		if printed, err = f.Print.Render(env); err != nil {
			printed = "print: " + err.Error()
		}
		printed = x.redactor().String(printed)
	}
	if f.Assert == nil {
		return value, true, "", printed
	}
	ok, err = f.Assert.EvalBool(env)
	if err != nil {
		return value, false, "assert: " + err.Error(), printed
	}
	if ok {
		return value, true, "", printed
	}
	msg = "assert " + f.Assert.Source + " is false"
	if f.Hint != nil {
		if hint, err := f.Hint.Render(env); err == nil {
			msg = hint
		}
	}
	return value, false, x.redactor().String(msg), printed
}

// hostFacts are the facts' values on one host: host.facts in the
// expressions of frame fr.
func (x *run) hostFacts(fr *Frame, host string) map[string]any {
	x.factsMu.Lock()
	defer x.factsMu.Unlock()
	all, _ := x.env(fr)["facts"].(map[string]any)
	out := make(map[string]any, len(all))
	for name := range all {
		if byHost, ok := all[name].(map[string]any); ok {
			if v, ok := byHost[host]; ok {
				out[name] = v
			}
		}
	}
	return out
}

// factsCopy is a copy of the facts of frame fr as they are now, for an
// Exec made while facts are still being observed.
func (x *run) factsCopy(fr *Frame) map[string]any {
	x.factsMu.Lock()
	defer x.factsMu.Unlock()
	all, _ := x.env(fr)["facts"].(map[string]any)
	out := make(map[string]any, len(all))
	for name, v := range all {
		if byHost, ok := v.(map[string]any); ok {
			c := make(map[string]any, len(byHost))
			for h, hv := range byHost {
				c[h] = hv
			}
			out[name] = c
		}
	}
	return out
}
