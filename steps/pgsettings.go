package steps

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/types"

	"github.com/runbook-dev/runbook/internal/confedit"
	"github.com/runbook-dev/runbook/internal/diag"

	"github.com/runbook-dev/runbook/internal/textdiff"
	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/internal/transport"
)

// PGSettings brings PostgreSQL settings to what a procedure needs, judged
// by the value the server takes and where it takes it from, not by one
// file's lines.
var PGSettings Type = kind{decodePGSettings, Descriptor{
	Name: "pg-settings",
	Doc:  "PostgreSQL settings as the server takes them: each requirement (a value, a minimum, an address to listen on) is judged by the effective value and its source (postgresql.conf, include, include_dir, postgresql.auto.conf, the command line), and a change is written on the line that takes effect; refused, before anything is written, where no file can make it hold or where PostgreSQL would not start with the result",
	Result: types.Map{
		"ok":       types.Bool,
		"problems": types.Array(types.String),
		"changed":  types.Bool,
		"changes":  types.Array(types.String),
		"diff":     types.String,
		"restart":  types.Bool,
		"reload":   types.Bool,
		"running":  types.Bool,
		"settings": tmpl.AnyMap,
		"files":    types.Array(types.String),
	},
	Fields: []Field{
		{Name: "config_file", Kind: String, Required: true, Doc: "the server's postgresql.conf; what it includes is followed", Example: "/etc/postgresql/15/main/postgresql.conf"},
		{Name: "data_dir", Kind: String, Required: true, Doc: "the data directory, for postgresql.auto.conf (read last: ALTER SYSTEM) and postmaster.opts (the last start's command line)", Example: "/var/lib/postgresql/15/main"},
		{Name: "settings", Kind: ObjectList, Required: true, Doc: "the requirements", Fields: pgSettingFields},
		{Name: "port", Kind: Port, Doc: "the port of the running server's socket, read with become: USER (pg_settings: running values, the command line, logical slots); a server that does not answer is judged from its files", Default: 5432, Example: "${{ vars.port }}"},
		{Name: "socket_dir", Kind: String, Doc: "the directory of the server's socket", Default: "/var/run/postgresql"},
		{Name: "backup", Kind: Bool, Doc: "keep a copy of each changed file next to it (never of postgresql.auto.conf)", Default: true},
		{Name: "read_only", Kind: Bool, Doc: "judge only, write nothing (also in plan): result.changed says whether the files lack something, result.restart and result.reload what the running server lacks"},
	},
}}

var pgSettingFields = []Field{
	{Name: "name", Kind: Literal, Required: true, Doc: "the setting", Example: "wal_level"},
	{Name: "value", Kind: Any, Doc: "the value it must have (an expression giving nil asks for nothing)", Example: "off"},
	{Name: "at_least", Kind: Any, Doc: "a minimum: a number, or a level of wal_level (minimal, replica, logical) or synchronous_commit (off, local, remote_write, on, remote_apply); a higher value is kept", Example: "replica"},
	{Name: "includes", Kind: String, Doc: "an address listen_addresses must cover (* covers all, 0.0.0.0 every IPv4 address, :: every IPv6 one); added to the list when missing", Example: "${{ vars.primary_address }}"},
	{Name: "restart", Kind: Bool, Doc: "whether a running value that differs calls for a restart (result.restart); false for a setting that matters only from the next start, such as hot_standby on a primary", Default: true},
}

type pgRequirement struct {
	name     string
	value    *Value
	atLeast  *Value
	includes *tmpl.Template
	restart  bool
}

type pgSettingsStep struct {
	configFile, dataDir, socketDir *tmpl.Template
	port                           PortValue
	reqs                           []pgRequirement
	backup, readOnly               bool
}

// decodePGSettings builds a step of the type from its body (Type.Decode).
func decodePGSettings(d *Decoder, b Body) Step {
	s := &pgSettingsStep{
		configFile: d.Template(b.Get("config_file")),
		dataDir:    d.Template(b.Get("data_dir")),
		socketDir:  tmpl.Literal("/var/run/postgresql"),
		port:       d.Port(b.Get("port"), 5432),
		backup:     true,
	}
	const why = "a path is shown in plans, diffs and the journal"
	d.RefuseSecret(b.Get("config_file"), s.configFile, diag.RuleSecretExposed, "path", why)
	d.RefuseSecret(b.Get("data_dir"), s.dataDir, diag.RuleSecretExposed, "path", why)
	if n := b.Get("socket_dir"); n != nil {
		s.socketDir = d.Template(n)
	}
	if n := b.Get("backup"); n != nil {
		s.backup = d.Bool(n)
	}
	s.readOnly = d.Bool(b.Get("read_only"))
	if n := b.Get("settings"); n != nil {
		seen := map[string]bool{}
		for _, e := range n.Content {
			f := d.Check(e, pgSettingFields, "settings")
			r := pgRequirement{name: strings.ToLower(d.Literal(f.Get("name"))), restart: true}
			if r.name != "" && seen[r.name] {
				d.Errorf(f.Get("name"), diag.RuleInvalidValue, "setting %s is listed twice", r.name)
			}
			seen[r.name] = true
			r.value = d.AnyValue(f.Get("value"))
			checkPGValue(d, r.name, f.Get("value"))
			r.atLeast = d.AnyValue(f.Get("at_least"))
			r.includes = d.Template(f.Get("includes"))
			if rn := f.Get("restart"); rn != nil {
				r.restart = d.Bool(rn)
			}
			if r.value == nil && r.atLeast == nil && r.includes == nil && f.Get("name") != nil {
				d.Errorf(e, diag.RuleMissingField, "setting %s needs value, at_least or includes", r.name)
			}
			if r.atLeast != nil && (r.value != nil || r.includes != nil) {
				d.Errorf(f.Get("at_least"), diag.RuleInvalidValue, "at_least cannot be combined with value or includes")
			}
			if r.atLeast != nil {
				if lit := f.Get("at_least"); lit != nil && !strings.Contains(lit.Value, "${{") {
					if _, ok := levels[r.name]; !ok {
						if _, err := strconv.Atoi(lit.Value); err != nil {
							d.Errorf(lit, diag.RuleInvalidValue, "at_least of %s must be a number (levels are known for %s)", r.name, strings.Join(levelNames(), ", "))
						}
					}
				}
			}
			s.reqs = append(s.reqs, r)
		}
	}
	return s
}

// levels order the values of the settings whose minimum is a level.
var levels = map[string][]string{
	"wal_level":          {"minimal", "replica", "logical"},
	"synchronous_commit": {"off", "local", "remote_write", "on", "remote_apply"},
}

func levelNames() []string {
	out := make([]string, 0, len(levels))
	for k := range levels {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// pgDefaults are PostgreSQL 15's defaults of the settings procedures ask
// for, used only when the server does not answer (pg_settings.boot_val
// otherwise) and no file sets them.
var pgDefaults = map[string]string{
	"wal_level": "replica", "max_wal_senders": "10", "max_replication_slots": "10", "hot_standby": "on",
	"synchronous_commit": "on", "listen_addresses": "localhost", "synchronous_standby_names": "", "archive_mode": "off",
	"port": "5432", "wal_log_hints": "off",
}

// pgContexts say when PostgreSQL 15 takes a new value of these settings
// (pg_settings.context), used only when the server does not answer.
var pgContexts = map[string]string{
	"wal_level": "postmaster", "max_wal_senders": "postmaster", "max_replication_slots": "postmaster", "hot_standby": "postmaster",
	"listen_addresses": "postmaster", "archive_mode": "postmaster", "port": "postmaster", "wal_log_hints": "postmaster",
	"synchronous_commit": "user", "synchronous_standby_names": "sighup",
}

// want is a requirement with its values rendered.
type want struct {
	name string
	// exact is the value it must have, when set.
	exact *string
	// min is a minimum (a number or a level).
	min *string
	// addr is an address listen_addresses must cover.
	addr    string
	restart bool
}

func (w want) String() string {
	var parts []string
	if w.exact != nil {
		parts = append(parts, "= "+confedit.Quote(*w.exact))
	}
	if w.min != nil {
		parts = append(parts, ">= "+*w.min)
	}
	if w.addr != "" {
		parts = append(parts, "covering "+w.addr)
	}
	return strings.Join(parts, ", ")
}

// running is what pg_settings says of a setting.
type running struct {
	setting, source, sourcefile, context, bootVal string
	sourceline                                    int
}

// pgObservation is what the step read on the host.
type pgObservation struct {
	conf         *confedit.PGConf
	texts        map[string]string
	answered     bool
	running      map[string]running
	cmdline      map[string]string
	logicalSlots []string
	slots        int
}

type hostFiles struct {
	conn transport.Conn
	// texts keeps every file read, for the edits.
	texts map[string]string
}

func (h *hostFiles) ReadFile(ctx context.Context, p string) ([]byte, error) {
	b, err := h.conn.ReadFile(ctx, p)
	if err == nil {
		h.texts[p] = string(b)
	}
	return b, err
}

func (h *hostFiles) ConfFiles(ctx context.Context, dir string) ([]string, error) {
	out, err := h.conn.Run(ctx, &transport.Command{Line: "cd -- " + tmpl.ShellQuote(dir) + " && find -L . -mindepth 1 -maxdepth 1 -name '*.conf' ! -name '.*' -type f -print0"})
	if err != nil {
		return nil, err
	}
	if out.ExitCode != 0 {
		if _, err := h.conn.Stat(ctx, dir); errors.Is(err, fs.ErrNotExist) {
			return nil, fs.ErrNotExist
		}
		return nil, fmt.Errorf("list %s: %s", dir, strings.TrimSpace(string(out.Stderr)))
	}
	var names []string
	for _, n := range strings.Split(string(out.Stdout), "\x00") {
		if n = strings.TrimPrefix(n, "./"); n != "" {
			names = append(names, n)
		}
	}
	return names, nil
}

// observe reads the configuration files and, when the server answers on
// its socket as x.Become, pg_settings.
func (s *pgSettingsStep) observe(ctx context.Context, x *Exec, names []string) (*pgObservation, string, error) {
	configFile, err := s.configFile.Render(x.Env)
	if err != nil {
		return nil, "", err
	}
	dataDir, err := s.dataDir.Render(x.Env)
	if err != nil {
		return nil, "", err
	}
	conn, err := x.Connect(ctx)
	if err != nil {
		return nil, "", err
	}
	files := &hostFiles{conn: conn, texts: map[string]string{}}
	conf, err := confedit.ReadPGConf(ctx, files, configFile, path.Join(dataDir, "postgresql.auto.conf"))
	if err != nil {
		return nil, "", err
	}
	o := &pgObservation{conf: conf, texts: files.texts, running: map[string]running{}, cmdline: map[string]string{}}
	if x.Become != "" {
		if err := s.readRunning(ctx, x, o, names); err != nil {
			return nil, "", err
		}
	}
	if !o.answered {
		// The last start's command line: what no file can change.
		if b, err := conn.ReadFile(ctx, path.Join(dataDir, "postmaster.opts")); err == nil {
			o.cmdline = commandLineSettings(string(b))
		}
	}
	return o, configFile, nil
}

// readRunning reads pg_settings and the slots from the running server. A
// server that does not answer (stopped, or a warm standby refusing
// connections) is no error: it is judged from its files.
func (s *pgSettingsStep) readRunning(ctx context.Context, x *Exec, o *pgObservation, names []string) error {
	port, err := s.port.Get(x.Env)
	if err != nil {
		return err
	}
	dir, err := s.socketDir.Render(x.Env)
	if err != nil {
		return err
	}
	c, err := pgTarget{addr: dir, port: port, db: "postgres", user: x.Become, sslmode: "disable",
		connTimeout: 10 * time.Second, stmtTimeout: 30 * time.Second, become: x.Become}.connect(ctx, x)
	if err != nil {
		if ctx.Err() != nil || transport.IsUnreachable(err) {
			return err
		}
		return nil
	}
	defer c.Close(context.WithoutCancel(ctx))
	rows, err := c.Query(ctx, `SELECT name, setting, source, coalesce(sourcefile, ''), coalesce(sourceline, 0), context, coalesce(boot_val, '')
		FROM pg_settings WHERE name = ANY($1)`, names)
	if err != nil {
		return fmt.Errorf("pg_settings: %w", err)
	}
	for rows.Next() {
		var name string
		var r running
		if err := rows.Scan(&name, &r.setting, &r.source, &r.sourcefile, &r.sourceline, &r.context, &r.bootVal); err != nil {
			rows.Close()
			return err
		}
		o.running[name] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if err := c.QueryRow(ctx, `SELECT count(*)::int, coalesce(array_agg(slot_name::text ORDER BY slot_name) FILTER (WHERE slot_type = 'logical'), '{}') FROM pg_replication_slots`).Scan(&o.slots, &o.logicalSlots); err != nil {
		return fmt.Errorf("pg_replication_slots: %w", err)
	}
	o.answered = true
	return nil
}

// commandLineSettings reads the -c name=value and --name=value options of
// postmaster.opts (the command line of the server's last start).
func commandLineSettings(opts string) map[string]string {
	var args []string
	for i := 0; i < len(opts); i++ {
		if opts[i] != '"' {
			continue
		}
		j := strings.IndexByte(opts[i+1:], '"')
		if j < 0 {
			break
		}
		args = append(args, opts[i+1:i+1+j])
		i += j + 1
	}
	out := map[string]string{}
	for i, a := range args {
		var kv string
		switch {
		case a == "-c" && i+1 < len(args):
			kv = args[i+1]
		case strings.HasPrefix(a, "--") && strings.Contains(a, "="):
			kv = strings.ReplaceAll(a[2:], "-", "_")
		default:
			continue
		}
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[strings.ToLower(strings.ReplaceAll(k, "-", "_"))] = v
		}
	}
	return out
}

// wants renders the requirements; one whose every part is nil asks for
// nothing.
func (s *pgSettingsStep) wants(env map[string]any) ([]want, error) {
	var out []want
	for _, r := range s.reqs {
		w := want{name: r.name, restart: r.restart}
		str := func(v *Value) (*string, error) {
			if v == nil {
				return nil, nil
			}
			x, err := v.Eval(env)
			if err != nil || x == nil {
				return nil, err
			}
			f := tmpl.Format(x)
			if b, ok := x.(bool); ok {
				f = map[bool]string{true: "on", false: "off"}[b]
			}
			return &f, nil
		}
		var err error
		if w.exact, err = str(r.value); err != nil {
			return nil, fmt.Errorf("%s: value: %w", r.name, err)
		}
		if w.exact != nil {
			// A value already in single quotes (from a parameter or an
			// expression) would be quoted twice: PostgreSQL would read the
			// quotes as part of it (a library named 'x' stops the server).
			if confedit.QuotedAlready(strings.TrimSpace(*w.exact)) {
				return nil, fmt.Errorf("%s: the value is in single quotes already: runbook quotes values itself, and PostgreSQL would read the quotes as part of the value; nothing was changed: give it without them", r.name)
			}
			// The value as PostgreSQL must read it (names quoted), judged
			// and written so, or refused before any change.
			v, err := confedit.PGValue(r.name, *w.exact)
			if err != nil {
				return nil, err
			}
			w.exact = &v
		}
		if w.min, err = str(r.atLeast); err != nil {
			return nil, fmt.Errorf("%s: at_least: %w", r.name, err)
		}
		if r.includes != nil {
			if w.addr, err = r.includes.Render(env); err != nil {
				return nil, fmt.Errorf("%s: includes: %w", r.name, err)
			}
		}
		if w.exact == nil && w.min == nil && w.addr == "" {
			continue
		}
		if w.min != nil {
			if _, ok := levels[w.name]; !ok {
				if _, err := strconv.Atoi(*w.min); err != nil {
					return nil, fmt.Errorf("%s: at_least %q is not a number", w.name, *w.min)
				}
			}
		}
		out = append(out, w)
	}
	return out, nil
}

// pgParseBool reads a boolean as PostgreSQL's parse_bool does (on, off,
// true, false, yes, no, 1, 0 and unique prefixes).
func pgParseBool(v string) (bool, bool) {
	s := strings.ToLower(strings.TrimSpace(v))
	if s == "" {
		return false, false
	}
	prefix := func(word string, min int) bool {
		return len(s) >= min && len(s) <= len(word) && word[:len(s)] == s
	}
	switch {
	case prefix("true", 1), prefix("yes", 1), prefix("on", 2), s == "1":
		return true, true
	case prefix("false", 1), prefix("no", 1), prefix("off", 2), s == "0":
		return false, true
	}
	return false, false
}

// level returns the place of a value in the order of a setting's levels,
// with PostgreSQL's aliases; -1 when it is not one.
func level(name, v string) int {
	v = strings.ToLower(strings.TrimSpace(v))
	switch name {
	case "wal_level":
		if v == "archive" || v == "hot_standby" {
			v = "replica"
		}
	case "synchronous_commit":
		if b, ok := pgParseBool(v); ok {
			v = map[bool]string{true: "on", false: "off"}[b]
		}
	}
	for i, l := range levels[name] {
		if l == v {
			return i
		}
	}
	return -1
}

func sameValue(name, a, b string) bool {
	if x, ok := pgParseBool(a); ok {
		if y, ok := pgParseBool(b); ok {
			return x == y
		}
	}
	if _, ok := levels[name]; ok {
		return level(name, a) >= 0 && level(name, a) == level(name, b)
	}
	return a == b
}

// covers reports whether listen_addresses list covers addr.
func covers(list, addr string) bool {
	a, err := netip.ParseAddr(addr)
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == "*", item == addr:
			return true
		case err == nil && a.Is4() && item == "0.0.0.0", err == nil && a.Is6() && item == "::":
			return true
		case err == nil && a.IsLoopback() && item == "localhost":
			return true
		}
	}
	return false
}

// meets reports whether value v satisfies w.
func meets(w want, v string) bool {
	if w.exact != nil && !sameValue(w.name, v, *w.exact) {
		return false
	}
	if w.min != nil {
		if _, ok := levels[w.name]; ok {
			if level(w.name, v) < level(w.name, *w.min) {
				return false
			}
		} else {
			have, err1 := strconv.Atoi(strings.TrimSpace(v))
			need, err2 := strconv.Atoi(*w.min)
			if err1 != nil || err2 != nil || have < need {
				return false
			}
		}
	}
	if w.addr != "" && !covers(v, w.addr) {
		return false
	}
	return true
}

// fix returns the value to write for w where the value is v.
func fix(w want, v string) string {
	switch {
	case w.exact != nil:
		return *w.exact
	case w.min != nil:
		return *w.min
	case strings.TrimSpace(v) == "":
		return w.addr
	default:
		return v + "," + w.addr
	}
}

// settingView is what the result says of one setting.
type settingView struct {
	Wanted  string `json:"wanted"`
	Value   string `json:"value"`
	Was     string `json:"was"`
	Source  string `json:"source"`
	Running string `json:"running"`
	Met     bool   `json:"met"`
	Restart bool   `json:"restart"`
}

// pgSettingsPlan is what the step found and would write.
type pgSettingsPlan struct {
	problems []string
	changes  []string
	// edits are the new texts of the files to change, by path.
	edits    map[string]string
	old      map[string]string
	restart  bool
	reload   bool
	answered bool
	settings map[string]settingView
	files    []string
}

// compute judges every requirement and plans the writes.
func (s *pgSettingsStep) compute(ctx context.Context, x *Exec) (*pgSettingsPlan, error) {
	ws, err := s.wants(x.Env)
	if err != nil {
		return nil, err
	}
	names := []string{"wal_level", "max_wal_senders", "archive_mode", "max_replication_slots"}
	for _, w := range ws {
		names = append(names, w.name)
	}
	o, configFile, err := s.observe(ctx, x, names)
	if err != nil {
		return nil, err
	}
	p := &pgSettingsPlan{edits: map[string]string{}, old: map[string]string{}, settings: map[string]settingView{}, answered: o.answered, files: o.conf.Files}
	for _, e := range o.conf.Errors {
		p.problems = append(p.problems, "PostgreSQL would refuse its configuration: "+e)
	}
	// after holds the values the next start reads, once the edits are made.
	after := map[string]string{}
	for _, n := range names {
		after[n], _, _ = o.current(n)
	}
	for _, w := range ws {
		p.judge(w, o, configFile, after)
	}
	p.problems = append(p.problems, startProblems(after, o)...)
	return p, nil
}

// current returns the value of a setting the server takes at its next
// start, where it comes from, and whether a file can change it (fixed: the
// command line, the environment).
func (o *pgObservation) current(name string) (value, source string, fixed bool) {
	if r, ok := o.running[name]; ok && r.source != "default" && r.source != "configuration file" {
		return r.setting, r.source, true
	}
	if v, ok := o.cmdline[name]; ok {
		return v, "command line", true
	}
	if e := o.conf.Effective(name); e != nil {
		return e.Value, e.Where(), false
	}
	if r, ok := o.running[name]; ok {
		return r.bootVal, "default", false
	}
	return pgDefaults[name], "default", false
}

// judge checks one requirement: met, refused (a problem), or an edit on
// the line that takes effect (configFile when no file sets it); then
// whether the running server needs a restart or a reload for it.
func (p *pgSettingsPlan) judge(w want, o *pgObservation, configFile string, after map[string]string) {
	v, source, fixed := o.current(w.name)
	view := settingView{Wanted: w.String(), Value: v, Was: v, Source: source}
	r, isRunning := o.running[w.name]
	if isRunning {
		view.Running = r.setting
	}
	switch {
	case meets(w, v):
	case fixed:
		p.problems = append(p.problems, fmt.Sprintf("%s = %s comes from the server's %s, which no configuration file overrides; it must be %s: change it where the server is started (the unit, pg_ctl -o, pg_ctl.conf)", w.name, confedit.Quote(v), source, w))
	case w.addr != "" && !covers(fix(w, v), w.addr):
		p.problems = append(p.problems, fmt.Sprintf("%s = %s, as asked, does not cover %s, the address replication uses", w.name, confedit.Quote(fix(w, v)), w.addr))
	default:
		nv := fix(w, v)
		file, line := configFile, 0
		if e := o.conf.Effective(w.name); e != nil {
			file, line = e.File, e.Line
		}
		p.edit(o, file, line, w.name, nv)
		view.Value, view.Source = nv, file
		if line > 0 {
			view.Source = fmt.Sprintf("%s:%d", file, line)
		}
		after[w.name] = nv
	}
	view.Met = meets(w, view.Value)
	takes := pgContexts[w.name]
	if isRunning {
		takes = r.context
	}
	if isRunning && view.Met && !meets(w, r.setting) {
		switch takes {
		case "postmaster":
			view.Restart = w.restart
			p.restart = p.restart || w.restart
		case "internal":
		default:
			p.reload = true
		}
	}
	p.settings[w.name] = view
}

// edit sets name = value in file, on line when it is the assignment that
// takes effect (0: where confedit.Set puts it).
func (p *pgSettingsPlan) edit(o *pgObservation, file string, line int, name, value string) {
	old, ok := p.edits[file]
	if !ok {
		old = o.texts[file]
		p.old[file] = old
	}
	text, ch := confedit.SetAt(old, line, name, value)
	if line == 0 {
		text, ch = confedit.Set(old, name, value)
	}
	p.edits[file] = text
	for _, c := range ch {
		p.changes = append(p.changes, fmt.Sprintf("%s: %s", file, c))
	}
}

// startProblems lists what would make PostgreSQL refuse to start with the
// settings in after: a restart would leave the server down.
func startProblems(after map[string]string, o *pgObservation) []string {
	var out []string
	wal := level("wal_level", after["wal_level"])
	if senders, err := strconv.Atoi(after["max_wal_senders"]); err == nil && wal == 0 && senders > 0 {
		out = append(out, fmt.Sprintf("with wal_level = minimal and max_wal_senders = %d PostgreSQL would not start (WAL streaming requires wal_level replica or logical)", senders))
	}
	if b, ok := pgParseBool(after["archive_mode"]); (ok && b || strings.EqualFold(after["archive_mode"], "always")) && wal == 0 {
		out = append(out, "with wal_level = minimal and archive_mode on PostgreSQL would not start")
	}
	if len(o.logicalSlots) > 0 && wal >= 0 && wal < level("wal_level", "logical") {
		out = append(out, fmt.Sprintf("wal_level = %s is below what the logical replication slot(s) %s need: PostgreSQL would refuse to start (\"logical replication slot exists, but wal_level < logical\"); keep wal_level = logical", after["wal_level"], strings.Join(o.logicalSlots, ", ")))
	}
	if slots, err := strconv.Atoi(after["max_replication_slots"]); err == nil && o.slots > slots {
		out = append(out, fmt.Sprintf("max_replication_slots = %d is below the %d slots that exist: PostgreSQL would refuse to start", slots, o.slots))
	}
	return out
}

func (p *pgSettingsPlan) result(x *Exec) Result {
	changes := make([]any, len(p.changes))
	for i, c := range p.changes {
		changes[i] = maskPasswords(x.Redact.String(c))
	}
	problems := make([]any, len(p.problems))
	for i, c := range p.problems {
		problems[i] = x.Redact.String(c)
	}
	settings := map[string]any{}
	for k, v := range p.settings {
		settings[k] = map[string]any{"wanted": v.Wanted, "value": v.Value, "was": v.Was, "source": v.Source, "running": v.Running, "met": v.Met, "restart": v.Restart}
	}
	files := make([]any, len(p.files))
	for i, f := range p.files {
		files[i] = f
	}
	return Result{
		"ok": len(p.problems) == 0, "problems": problems, "changed": len(p.changes) > 0,
		"changes": changes, "diff": p.diff(x), "restart": p.restart, "reload": p.reload, "running": p.answered,
		"settings": settings, "files": files,
	}
}

func (p *pgSettingsPlan) diff(x *Exec) string {
	paths := make([]string, 0, len(p.edits))
	for f := range p.edits {
		if p.edits[f] != p.old[f] {
			paths = append(paths, f)
		}
	}
	sort.Strings(paths)
	var b strings.Builder
	for _, f := range paths {
		b.WriteString(maskPasswords(textdiff.Unified(f, f, x.Redact.String(p.old[f]), x.Redact.String(p.edits[f]))))
	}
	return b.String()
}

// Probe reads and judges, changing nothing: result.ok is false, with the
// reasons in result.problems, when the requirements cannot be met.
func (s *pgSettingsStep) Probe(ctx context.Context, x *Exec) (Result, error) {
	p, err := s.compute(ctx, x)
	if err != nil {
		return nil, err
	}
	return p.result(x), nil
}

// Plan refuses when a requirement cannot be met, and otherwise shows the
// edits as diffs.
func (s *pgSettingsStep) Plan(ctx context.Context, x *Exec) (*Plan, error) {
	p, err := s.compute(ctx, x)
	if err != nil {
		return nil, err
	}
	if s.readOnly {
		return &Plan{Summary: "judged the settings", Result: p.result(x)}, nil
	}
	if len(p.problems) > 0 {
		return nil, fmt.Errorf("refused, nothing was written: %s", x.Redact.String(strings.Join(p.problems, "; ")))
	}
	if len(p.changes) == 0 {
		r := p.result(x)
		r["changed"] = false
		return &Plan{Summary: "every setting as needed", Result: r}, nil
	}
	shown := make([]string, len(p.changes))
	for i, c := range p.changes {
		shown[i] = maskPasswords(x.Redact.String(c))
	}
	return &Plan{Changes: true, Summary: strings.Join(shown, "; "), Diff: p.diff(x), State: p}, nil
}

// Apply writes each changed file atomically, after checking that none
// changed since it was read.
func (s *pgSettingsStep) Apply(ctx context.Context, x *Exec, plan *Plan) (Result, error) {
	p := plan.State.(*pgSettingsPlan)
	conn, err := x.Connect(ctx)
	if err != nil {
		return nil, err
	}
	paths := make([]string, 0, len(p.edits))
	for f := range p.edits {
		paths = append(paths, f)
	}
	sort.Strings(paths)
	for _, f := range paths {
		cur, err := conn.ReadFile(ctx, f)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if string(cur) != p.old[f] {
			return nil, fmt.Errorf("%s changed on %s while the step ran; run again to plan from its new content", f, x.Host.Name)
		}
	}
	for _, f := range paths {
		if p.edits[f] != p.old[f] && p.old[f] != "" {
			if err := refuseHardLinks(ctx, conn, f, x.Host.Name); err != nil {
				return nil, err
			}
		}
	}
	stamp := time.Now().UTC().Format("20060102T150405Z")
	for _, f := range paths {
		if p.edits[f] == p.old[f] {
			continue
		}
		backup := ""
		if s.backup && path.Base(f) != "postgresql.auto.conf" {
			opt := transport.WriteOptions{Mode: 0o600, UID: -1, GID: -1}
			if fi, err := conn.Stat(ctx, f); err == nil {
				opt.UID, opt.GID = fi.UID, fi.GID
			}
			backup = f + ".runbook-" + stamp + ".bak"
			if err := conn.WriteFile(ctx, backup, []byte(p.old[f]), opt); err != nil {
				return nil, fmt.Errorf("backup of %s: %w", f, err)
			}
		}
		if err := conn.WriteFile(ctx, f, []byte(p.edits[f]), transport.WriteOptions{Mode: 0o644, UID: -1, GID: -1}); err != nil {
			return nil, writeFailed(ctx, conn, f, backup, err)
		}
	}
	return p.result(x), nil
}

// MayChange implements Changer.
func (s *pgSettingsStep) MayChange() bool { return !s.readOnly }

// Rechecks implements Rechecker: its plan reads the files again, so a
// write already made is found and not made twice.
func (*pgSettingsStep) Rechecks() bool { return true }
