package steps

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/types"
	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/confedit"
	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/redact"

	"github.com/runbook-dev/runbook/internal/textdiff"
	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/internal/transport"
)

// FilePatch edits a configuration file in place, idempotently.
var FilePatch Type = kind{decodeFilePatch, Descriptor{
	Name:   "file-patch",
	Doc:    "edit a configuration file in place: postgresql.conf keys, ini keys, whole lines, or delete it; atomic, with a diff in plan",
	Result: types.Map{"changed": types.Bool, "changes": types.Array(types.String), "diff": types.String, "exists": types.Bool, "backup": types.String},
	Fields: []Field{
		{Name: "path", Kind: String, Required: true, Doc: "the file on the host", Example: "/etc/postgresql/15/main/postgresql.conf"},
		{Name: "set", Kind: StringMap, Doc: "postgresql.conf-style key = value: replaces the active line, uncomments a commented default in place, appends only when the key is absent; values are quoted as PostgreSQL expects and may not hold line breaks", Example: map[string]any{"wal_level": "replica"}},
		{Name: "comment", Kind: StringList, Doc: "comment out the active assignments of these keys", Example: []string{"synchronous_standby_names"}},
		{Name: "unset", Kind: StringList, Doc: "remove the active assignments of these keys", Example: []string{"primary_conninfo", "primary_slot_name"}},
		{Name: "ini", Kind: ObjectList, Doc: "set keys in [sections] of an ini file", Fields: iniFields},
		{Name: "ensure-line", Kind: ObjectList, Doc: "make lines present or absent (pg_hba.conf rules)", Fields: ensureLineFields},
		{Name: "absent", Kind: Bool, Doc: "delete the file (no other operation allowed)"},
		{Name: "create", Kind: Bool, Dynamic: true, Doc: "create the file when it does not exist (otherwise a missing file is an error); true, false or ${{ }}", Example: true},
		{Name: "mode", Kind: Literal, Doc: "octal mode of the file, given to an existing file too (without it an existing file keeps its mode, a created one gets 0644)", Example: "0640"},
		{Name: "owner", Kind: String, Doc: "user (name or number) that owns the file, an existing file too; set with the write, in the same rename", Example: "root"},
		{Name: "group", Kind: String, Doc: "group (name or number) of the file, an existing file too; set with the write, in the same rename", Example: "inmanta"},
		{Name: "backup", Kind: Bool, Dynamic: true, Doc: "keep a copy of the old file next to it before changing it; true, false or ${{ }}", Default: true, Example: "${{ params.keep_backup }}"},
	},
}}

var ensureLineFields = []Field{
	{Name: "line", Kind: String, Required: true, Doc: "the line; compared by its whitespace-separated fields; each ${{ }} value must be one field (no space, quote, # or line break)", Example: "host replication replication 10.0.0.12/32 scram-sha-256"},
	{Name: "state", Kind: Literal, Doc: "present or absent", Enum: []string{"present", "absent"}, Default: "present"},
	{Name: "regexp", Kind: String, Doc: "present: replace the first line matching this instead of appending; absent: remove every line matching it; ${{ }} values match themselves (their metacharacters escaped)", Example: `^host\s+replication\s+replication\s+10\.0\.0\.12/32`},
}

var iniFields = []Field{
	{Name: "section", Kind: String, Required: true, Doc: "the [section] name", Example: "database"},
	{Name: "values", Kind: StringMap, Required: true, Doc: "key=value pairs to set in the section", Example: map[string]any{"host": "10.0.0.12"}},
	{Name: "reader", Kind: Literal, Doc: "the program that reads the file, whose rules find a key: configparser (Python's, the default: case ignored) or inmanta (the Inmanta server's: case ignored, _ and - the same, so db_host is edited for db-host, never added twice)", Example: "inmanta"},
}

type op struct {
	kind       string // set, comment, unset, ini, line-present, line-absent
	key        string
	section    *tmpl.Template
	value      *tmpl.Template
	re         *tmpl.Template
	iniEntries map[string]*tmpl.Template
	iniReader  confedit.IniReader
}

type filePatch struct {
	path         *tmpl.Template
	owner, group *tmpl.Template
	ops          []op
	absent       bool
	create       BoolValue
	mode         fs.FileMode
	backup       BoolValue
}

// decodeFilePatch builds a step of the type from its body (Type.Decode).
func decodeFilePatch(d *Decoder, b Body) Step {
	p := &filePatch{path: d.Template(b.Get("path")), absent: d.Bool(b.Get("absent")), create: d.BoolValue(b.Get("create"), false), backup: d.BoolValue(b.Get("backup"), true)}
	d.RefuseSecret(b.Get("path"), p.path, diag.RuleSecretExposed, "path", "a path is shown in plans, diffs and the journal, names the backup file, and shows in any listing of its directory")
	for _, k := range []string{"owner", "group"} {
		if n := b.Get(k); n != nil {
			t := d.Template(n)
			d.RefuseSecret(n, t, diag.RuleSecretExposed, k, "an owner is shown in plans and the journal")
			if k == "owner" {
				p.owner = t
			} else {
				p.group = t
			}
			if p.absent {
				d.Errorf(n, diag.RuleInvalidValue, "absent: true deletes the file; it has no %s", k)
			}
		}
	}
	if n := b.Get("mode"); n != nil {
		m, err := strconv.ParseUint(n.Value, 8, 32)
		if err != nil || m > 0o7777 {
			d.Errorf(n, diag.RuleInvalidValue, "mode must be octal, such as 0600")
		}
		p.mode = fs.FileMode(m)
	}
	if n := b.Get("set"); n != nil {
		// Keys in file order keep plans and diffs stable.
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			checkPGValue(d, k.Value, v)
			p.ops = append(p.ops, op{kind: "set", key: k.Value, value: d.TemplateIn(v, tmpl.ConfValue)})
		}
	}
	for _, kind := range []string{"comment", "unset"} {
		if n := b.Get(kind); n != nil {
			for _, k := range n.Content {
				p.ops = append(p.ops, op{kind: kind, key: d.Literal(k)})
			}
		}
	}
	if n := b.Get("ini"); n != nil {
		for _, e := range n.Content {
			f := d.Check(e, iniFields, "ini")
			o := op{kind: "ini", section: d.TemplateIn(f.Get("section"), tmpl.ConfValue), iniEntries: map[string]*tmpl.Template{}}
			if r := f.Get("reader"); r != nil {
				var err error
				if o.iniReader, err = confedit.ParseIniReader(d.Literal(r)); err != nil {
					d.Errorf(r, diag.RuleInvalidValue, "%v", err)
				}
			}
			if v := f.Get("values"); v != nil {
				o.iniEntries = d.TemplateMap(v, "ini.values")
				for _, t := range o.iniEntries {
					t.In(tmpl.IniValue)
				}
				// Two spellings of one key for the reader (Port and port;
				// db_host and db-host for inmanta): one value would be lost.
				seen := map[string]string{}
				for i := 0; i+1 < len(v.Content); i += 2 {
					k := v.Content[i].Value
					form := o.iniReader.KeyForm(k)
					if other, dup := seen[form]; dup {
						d.Errorf(v.Content[i], diag.RuleDuplicateKey, "%s and %s are one key for %s: keep one", other, k, o.iniReader)
					}
					seen[form] = k
				}
			}
			p.ops = append(p.ops, o)
		}
	}
	if n := b.Get("ensure-line"); n != nil {
		for _, e := range n.Content {
			f := d.Check(e, ensureLineFields, "ensure-line")
			o := op{kind: "line-present", value: d.TemplateIn(f.Get("line"), tmpl.ConfField)}
			if s := f.Get("state"); s != nil && s.Value == "absent" {
				o.kind = "line-absent"
			}
			if r := f.Get("regexp"); r != nil {
				o.re = d.TemplateIn(r, tmpl.Regexp)
				if o.re != nil && o.re.IsLiteral() {
					if _, err := regexp.Compile(r.Value); err != nil {
						d.Errorf(r, diag.RuleInvalidValue, "invalid regexp: %v", err)
					}
				}
			}
			p.ops = append(p.ops, o)
		}
	}
	if p.absent && len(p.ops) > 0 {
		d.Errorf(b.Get("absent"), diag.RuleInvalidValue, "absent: true deletes the file; it cannot be combined with edits")
	}
	if create, fixed := p.create.Literal(); !p.absent && len(p.ops) == 0 && fixed && !create {
		if n := b.Get("path"); n != nil {
			d.Errorf(n, diag.RuleMissingField, "file-patch needs an operation: set, comment, unset, ini, ensure-line, absent or create")
		}
	}
	return p
}

// checkPGValue checks, at validation, a value written into postgresql.conf
// for setting name: one the author quoted already is quoted again by
// runbook, so PostgreSQL would read the quotes as part of it (a warning);
// a fixed value PostgreSQL would refuse is an error.
func checkPGValue(d *Decoder, name string, n *yaml.Node) {
	if n == nil || n.Kind != yaml.ScalarNode {
		return
	}
	if confedit.QuotedAlready(strings.TrimSpace(n.Value)) {
		d.Diags.Warnf(Pos(n), diag.RuleInvalidValue, "the value of %s is in single quotes already: runbook quotes values for postgresql.conf itself, so PostgreSQL would read the quotes as part of the value; write it without them", name)
	}
	if strings.Contains(n.Value, "${{") {
		return
	}
	if _, err := confedit.PGValue(name, n.Value); err != nil {
		d.Errorf(n, diag.RuleInvalidValue, "%v", err)
	}
}

type patchState struct {
	path    string
	old     string
	new     string
	exists  bool
	changes []string
	// attrs are the mode, owner and group the file is to have; attrs.Replace
	// is set when any is wanted.
	attrs transport.WriteOptions
	// red masks the run's secrets in the diff and the changes.
	red *redact.Redactor
}

// compute reads the file and applies the edits in memory.
func (p *filePatch) compute(ctx context.Context, x *Exec) (*patchState, error) {
	path, err := p.path.Render(x.Env)
	if err != nil {
		return nil, err
	}
	conn, err := x.Connect(ctx)
	if err != nil {
		return nil, err
	}
	create, err := p.create.Get(x.Env)
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	st := &patchState{path: path, red: x.Redact}
	data, err := conn.ReadFile(ctx, path)
	switch {
	case err == nil:
		st.exists = true
	case errors.Is(err, fs.ErrNotExist):
		if !p.absent && !create {
			return nil, fmt.Errorf("%s does not exist on %s (set create: true to create it)", path, x.Host.Name)
		}
	default:
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	st.old = string(data)
	if p.absent {
		if st.exists {
			st.changes = []string{"delete " + path}
		}
		return st, nil
	}
	text := st.old
	for _, o := range p.ops {
		var ch []confedit.Change
		switch o.kind {
		case "set":
			v, err := o.value.Render(x.Env)
			if err != nil {
				return nil, fmt.Errorf("set %s: %w", o.key, err)
			}
			// The value of a parameter or an expression is not seen when the
			// playbook loads: quoted already, it would be quoted twice (a
			// library named 'x', quotes included, stops PostgreSQL).
			if confedit.QuotedAlready(strings.TrimSpace(v)) {
				return nil, fmt.Errorf("%s: set %s: the value %s is in single quotes already: runbook quotes values for postgresql.conf itself, and PostgreSQL would read the quotes as part of the value; nothing was changed: give it without them", path, o.key, x.Redact.String(v))
			}
			if v, err = confedit.PGValue(o.key, v); err != nil {
				return nil, fmt.Errorf("%s: set %s: %w", path, o.key, err)
			}
			text, ch = confedit.Set(text, o.key, v)
		case "comment":
			text, ch = confedit.Comment(text, o.key)
		case "unset":
			text, ch = confedit.Unset(text, o.key)
		case "ini":
			section, err := o.section.Render(x.Env)
			if err != nil {
				return nil, err
			}
			vals, err := Render(o.iniEntries, x.Env)
			if err != nil {
				return nil, err
			}
			keys := make([]string, 0, len(vals))
			for k := range vals {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				var c []confedit.Change
				text, c, err = confedit.IniSet(text, section, k, vals[k], o.iniReader)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", path, err)
				}
				ch = append(ch, c...)
			}
		case "line-present", "line-absent":
			line, err := o.value.Render(x.Env)
			if err != nil {
				return nil, err
			}
			var re *regexp.Regexp
			if o.re != nil {
				src, err := o.re.Render(x.Env)
				if err != nil {
					return nil, err
				}
				if re, err = regexp.Compile(src); err != nil {
					return nil, fmt.Errorf("regexp %q: %w", src, err)
				}
			}
			switch {
			case o.kind == "line-present" && confedit.IsHBARule(line):
				// pg_hba.conf: the first matching rule wins, so where the
				// rule goes decides whether it ever applies.
				if text, ch, err = confedit.EnsureHBALine(text, line, re); err != nil {
					return nil, fmt.Errorf("%s: %w", path, err)
				}
			case o.kind == "line-present":
				text, ch = confedit.EnsureLine(text, line, re)
			default:
				text, ch = confedit.RemoveLine(text, line, re)
			}
		}
		for _, c := range ch {
			st.changes = append(st.changes, string(c))
		}
	}
	st.new = text
	if !st.exists && create {
		st.changes = append([]string{"create " + path}, st.changes...)
	}
	if err := p.wantAttrs(ctx, x, conn, st); err != nil {
		return nil, err
	}
	return st, nil
}

// wantAttrs resolves the wanted owner, group and mode on the host and adds
// a change for each that differs from the file's.
func (p *filePatch) wantAttrs(ctx context.Context, x *Exec, conn transport.Conn, st *patchState) error {
	st.attrs = transport.WriteOptions{Mode: p.mode, UID: -1, GID: -1, Replace: p.owner != nil || p.group != nil || p.mode != 0}
	if !st.attrs.Replace {
		return nil
	}
	cur := &transport.FileInfo{UID: -1, GID: -1}
	if st.exists {
		fi, err := conn.Stat(ctx, st.path)
		if err != nil {
			return fmt.Errorf("stat %s: %w", st.path, err)
		}
		cur = fi
	}
	for _, a := range []struct {
		kind, db string
		t        *tmpl.Template
		want     *int
		have     int
	}{{"owner", "passwd", p.owner, &st.attrs.UID, cur.UID}, {"group", "group", p.group, &st.attrs.GID, cur.GID}} {
		if a.t == nil {
			continue
		}
		name, err := a.t.Render(x.Env)
		if err != nil {
			return fmt.Errorf("%s: %w", a.kind, err)
		}
		id, err := lookupID(ctx, conn, a.db, name)
		if err != nil {
			return fmt.Errorf("%s %q of %s on %s: %w", a.kind, name, st.path, x.Host.Name, err)
		}
		*a.want = id
		if st.exists && id != a.have {
			st.changes = append(st.changes, fmt.Sprintf("%s %s (%d, was %d)", a.kind, name, id, a.have))
		}
	}
	if st.exists && p.mode != 0 && p.mode != cur.Mode {
		st.changes = append(st.changes, fmt.Sprintf("mode %04o (was %04o)", p.mode, cur.Mode))
	}
	return nil
}

// lookupID returns the number of a user or group (db passwd or group) of
// the host, as its name service knows it; a number is taken as it is.
func lookupID(ctx context.Context, conn transport.Conn, db, name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	// The name goes through the environment: no quoting to get wrong.
	out, err := conn.Run(ctx, &transport.Command{Line: `getent "$RUNBOOK_DB" -- "$RUNBOOK_NAME"`, Env: map[string]string{"RUNBOOK_DB": db, "RUNBOOK_NAME": name}})
	if err != nil {
		return 0, err
	}
	if out.ExitCode != 0 {
		return 0, fmt.Errorf("no such %s entry on the host (getent %s exited %d)", db, db, out.ExitCode)
	}
	f := strings.Split(strings.TrimSpace(string(out.Stdout)), ":")
	if len(f) < 3 {
		return 0, fmt.Errorf("getent %s printed %q", db, out.Stdout)
	}
	return strconv.Atoi(f[2])
}

// diff is the unified diff of the edit, made from the file's old and new
// text with secrets already masked: a diff cuts text into lines and marks
// each, and a secret of several lines, or one split by a change, would no
// longer be found in it.
func (st *patchState) diff() string {
	if len(st.changes) == 0 {
		return ""
	}
	return maskPasswords(textdiff.Unified(st.path, st.path, st.red.String(st.old), st.red.String(st.new)))
}

// shownChanges are the changes with secrets and passwords masked.
func (st *patchState) shownChanges() []string {
	out := make([]string, len(st.changes))
	for i, c := range st.changes {
		out[i] = maskPasswords(st.red.String(c))
	}
	return out
}

func (st *patchState) result(changed bool, backup string) Result {
	changes := make([]any, len(st.changes))
	for i, c := range st.shownChanges() {
		changes[i] = c
	}
	return Result{"changed": changed, "changes": changes, "diff": st.diff(), "exists": st.exists, "backup": backup}
}

// Probe reports whether the file would change, without changing it.
func (p *filePatch) Probe(ctx context.Context, x *Exec) (Result, error) {
	st, err := p.compute(ctx, x)
	if err != nil {
		return nil, err
	}
	return st.result(len(st.changes) > 0, ""), nil
}

// Plan computes the new content and its diff.
func (p *filePatch) Plan(ctx context.Context, x *Exec) (*Plan, error) {
	st, err := p.compute(ctx, x)
	if err != nil {
		return nil, err
	}
	if len(st.changes) == 0 {
		return &Plan{Summary: st.path + " already as wanted", Result: st.result(false, "")}, nil
	}
	return &Plan{Changes: true, Summary: strings.Join(st.shownChanges(), "; "), Diff: st.diff(), State: st}, nil
}

// Apply writes the planned content atomically, after checking that the
// file did not change since it was read.
func (p *filePatch) Apply(ctx context.Context, x *Exec, plan *Plan) (Result, error) {
	st := plan.State.(*patchState)
	conn, err := x.Connect(ctx)
	if err != nil {
		return nil, err
	}
	cur, err := conn.ReadFile(ctx, st.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if string(cur) != st.old || (err == nil) != st.exists {
		return nil, fmt.Errorf("%s changed on %s while the step ran; run again to plan from its new content", st.path, x.Host.Name)
	}
	keep, err := p.backup.Get(x.Env)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if st.exists {
		if err := refuseHardLinks(ctx, conn, st.path, x.Host.Name); err != nil {
			return nil, err
		}
	}
	backup := ""
	if keep && st.exists {
		// The backup goes beside the file the path resolves to: a link
		// names a file elsewhere, and that file is what changes.
		real, err := conn.Resolve(ctx, st.path)
		if err != nil {
			return nil, err
		}
		// The backup belongs to the file's owner: a root-owned file in a
		// PostgreSQL data directory would break pg_basebackup.
		opt := transport.WriteOptions{Mode: 0o600, UID: -1, GID: -1}
		if fi, err := conn.Stat(ctx, st.path); err == nil {
			opt.UID, opt.GID = fi.UID, fi.GID
		}
		backup = fmt.Sprintf("%s.runbook-%s.bak", real, time.Now().UTC().Format("20060102T150405Z"))
		if err := conn.WriteFile(ctx, backup, []byte(st.old), opt); err != nil {
			return nil, fmt.Errorf("backup of %s: %w", st.path, err)
		}
	}
	if p.absent {
		if err := conn.Remove(ctx, st.path); err != nil {
			return nil, err
		}
		return st.result(true, backup), nil
	}
	if !st.exists {
		if err := conn.MkdirAll(ctx, path.Dir(st.path)); err != nil {
			return nil, fmt.Errorf("create the directory of %s: %w", st.path, err)
		}
	}
	if err := conn.WriteFile(ctx, st.path, []byte(st.new), st.attrs); err != nil {
		return nil, writeFailed(ctx, conn, st.path, backup, err)
	}
	if st.attrs.UID >= 0 || st.attrs.GID >= 0 {
		// Only root can give a file away; a transport that cannot says
		// nothing, so the result is checked.
		fi, err := conn.Stat(ctx, st.path)
		if err != nil {
			return nil, err
		}
		if st.attrs.UID >= 0 && fi.UID != st.attrs.UID || st.attrs.GID >= 0 && fi.GID != st.attrs.GID {
			return nil, fmt.Errorf("%s on %s is owned by %d:%d, not %d:%d: only root can set a file's owner (connect as root, or set become: root)", st.path, x.Host.Name, fi.UID, fi.GID, st.attrs.UID, st.attrs.GID)
		}
	}
	return st.result(true, backup), nil
}

// passwordValue finds password values in configuration text: ini
// (password=x), key = 'x' (a quote doubled or escaped), and a conninfo
// inside a postgresql.conf value, password=”x”, where the conninfo's
// escapes \' and \\ read \\” and \\\\. A file can hold credentials the
// playbook never knew as secrets (postgresql.auto.conf, database.cfg), so
// diffs mask them all.
var passwordValue = regexp.MustCompile(`(?i)(pass(?:word)?\s*[=:]\s*)(''(?:[^'\\]|\\\\(?:\\\\|''|[^'\\]))*''|'(?:[^'\\]|''|\\.)*'|[^\s']+)`)

func maskPasswords(s string) string {
	return passwordValue.ReplaceAllString(s, "${1}********")
}

// MayChange implements Changer.
func (p *filePatch) MayChange() bool { return true }

// Rechecks implements Rechecker: its plan compares the file with the wanted text: an edit already made is found, never made twice.
func (*filePatch) Rechecks() bool { return true }
