package steps

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/types"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgtype"
	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/diag"

	"github.com/runbook-dev/runbook/internal/tmpl"
	"github.com/runbook-dev/runbook/internal/transport"
)

// SQL runs a statement on PostgreSQL.
var SQL Type = kind{decodeSQL, Descriptor{
	Name: "sql",
	Doc:  "run SQL on PostgreSQL with bound parameters; values interpolated into the SQL text are quoted as identifiers (literal(x): a string literal), and refused inside string literals and comments; with become: USER it connects as that OS user through the server's Unix socket on the host (peer authentication)",
	Result: types.Map{
		"rows":          types.Array(tmpl.AnyMap),
		"rows_affected": types.Int,
		"ok":            types.Bool,
		"sqlstate":      types.String,
		"error":         types.String,
		"skipped":       types.Bool,
		"answered":      types.Bool,
	},
	Fields: []Field{
		{Name: "query", Kind: String, Doc: "SQL returning rows; ${{ }} values are quoted as identifiers (literal(x) as a string literal) and refused inside '...' and comments: pass values as $1.. in args", Example: "SELECT pg_is_in_recovery() AS in_recovery"},
		{Name: "exec", Kind: String, Doc: "SQL run for its effect (use query or exec)", Example: "SELECT pg_create_physical_replication_slot($1)"},
		{Name: "args", Kind: Any, Doc: "values bound to $1, $2, ... (never interpolated into the SQL)", Example: []string{"replication"}},
		{Name: "unless", Kind: String, Doc: "read-only SQL with the same args: skip when it returns a row whose first column is not false or null", Example: "SELECT true FROM pg_replication_slots WHERE slot_name = $1"},
		{Name: "read_only", Kind: Bool, Doc: "the statement changes nothing: run it in a read-only transaction, also in plan"},
		{Name: "idempotent", Kind: Bool, Doc: "running it twice has the effect of running it once, so a resume may run it again when a crash left its outcome unknown (without it, unless or read_only, a resume stops and asks)"},
		{Name: "database", Kind: String, Doc: "database name", Default: "postgres"},
		{Name: "user", Kind: String, Doc: "database user", Default: "postgres"},
		{Name: "password", Kind: String, Doc: "password, from a secret: ${{ secrets.NAME }}", Example: "${{ secrets.replication_password }}"},
		{Name: "address", Kind: String, Doc: "server address, or a socket directory starting with /; default: the host's address, or 127.0.0.1 with via_ssh", Example: "/var/run/postgresql"},
		{Name: "port", Kind: Port, Doc: "server port; with become, the port of the server's socket (.s.PGSQL.PORT)", Default: 5432, Example: "${{ vars.port }}"},
		{Name: "via_ssh", Kind: Bool, Doc: "connect through the host's SSH connection, so the port need not be open to this machine"},
		{Name: "sslmode", Kind: Literal, Doc: "TLS use", Enum: []string{"disable", "prefer", "require"}, Default: "prefer"},
		{Name: "statement_timeout", Kind: Duration, Doc: "server-side limit for the statement", Default: "30s"},
		{Name: "connect_timeout", Kind: Duration, Doc: "limit for connecting", Default: "10s"},
	},
}}

type sqlStep struct {
	text, unless              *tmpl.Template
	isQuery, readOnly, viaSSH bool
	idempotent                bool
	args                      *Value
	database, user, password  *tmpl.Template
	address                   *tmpl.Template
	port                      PortValue
	sslmode                   string
	stmtTimeout, connTimeout  DurationValue
}

// decodeSQL builds a step of the type from its body (Type.Decode).
func decodeSQL(d *Decoder, b Body) Step {
	s := &sqlStep{
		readOnly: d.Bool(b.Get("read_only")), viaSSH: d.Bool(b.Get("via_ssh")), idempotent: d.Bool(b.Get("idempotent")),
		port: d.Port(b.Get("port"), 5432), sslmode: d.Literal(b.Get("sslmode")),
		stmtTimeout: d.Duration(b.Get("statement_timeout"), 30*time.Second),
		connTimeout: d.Duration(b.Get("connect_timeout"), 10*time.Second),
		database:    tmpl.Literal("postgres"),
	}
	q, e := b.Get("query"), b.Get("exec")
	switch {
	case q != nil && e != nil:
		d.Errorf(e, diag.RuleInvalidValue, "sql has both query and exec: use one")
	case q != nil:
		s.text, s.isQuery = d.TemplateIn(q, tmpl.SQL), true
		insideSQL(d, "query", q, s.text, b.Get("args"))
	case e != nil:
		s.text = d.TemplateIn(e, tmpl.SQL)
		insideSQL(d, "exec", e, s.text, b.Get("args"))
	default:
		d.Errorf(b.Node, diag.RuleMissingField, "sql needs query (SQL returning rows) or exec (SQL run for its effect)")
	}
	s.unless = d.TemplateIn(b.Get("unless"), tmpl.SQL)
	insideSQL(d, "unless", b.Get("unless"), s.unless, b.Get("args"))
	if a := b.Get("args"); a != nil {
		s.args = d.AnyValue(a)
	}
	if n := b.Get("database"); n != nil {
		s.database = d.Template(n)
	}
	if n := b.Get("user"); n != nil {
		s.user = d.Template(n)
	}
	if n := b.Get("password"); n != nil {
		s.password = d.Credential(n)
		if s.password != nil && s.password.IsLiteral() {
			d.Diags.Warnf(Pos(n), diag.RulePlaintextSecret, "a password written in the playbook: declare a secret and use ${{ secrets.NAME }}")
		}
	}
	s.address = d.Template(b.Get("address"))
	d.RefuseSecret(b.Get("address"), s.address, diag.RuleSecretInCommand, "address", "a socket directory goes on the command line of the relay to the socket, and an address into messages")
	if s.sslmode == "" {
		s.sslmode = "prefer"
	}
	return s
}

// StandbyError is a connection refused because the server is a standby that
// accepts no connections (hot_standby = off), SQLSTATE 57P03.
type StandbyError struct {
	Addr string
	Err  *pgconn.PgError
}

func (e *StandbyError) Error() string {
	return fmt.Sprintf("PostgreSQL at %s refuses connections, as a warm standby with hot_standby = off does (SQLSTATE 57P03: %s)", e.Addr, e.Err.Message)
}

func (e *StandbyError) Unwrap() error { return e.Err }

// NotAcceptingError is a connection refused with SQLSTATE 57P03 for a
// reason other than hot_standby = off: the server is starting up, shutting
// down, in crash recovery, or a standby not yet consistent. It passes;
// StandbyError does not.
type NotAcceptingError struct {
	Addr string
	// Why is what the server said, in its words.
	Why string
	Err *pgconn.PgError
}

func (e *NotAcceptingError) Error() string {
	return fmt.Sprintf("PostgreSQL at %s does not accept connections yet: %s (SQLSTATE 57P03)", e.Addr, e.Why)
}

func (e *NotAcceptingError) Unwrap() error { return e.Err }

// notAccepting tells the reasons of SQLSTATE 57P03 apart by the server's
// message and detail (PostgreSQL 15, postmaster.c): only "Hot standby mode
// is disabled." is a warm standby.
func notAccepting(where string, pe *pgconn.PgError) error {
	if strings.Contains(pe.Detail, "Hot standby mode is disabled") {
		return &StandbyError{Addr: where, Err: pe}
	}
	why := pe.Message
	if pe.Detail != "" {
		why += " (" + strings.TrimSuffix(pe.Detail, ".") + ")"
	}
	return &NotAcceptingError{Addr: where, Why: why, Err: pe}
}

func (s *sqlStep) connect(ctx context.Context, x *Exec) (*pgx.Conn, error) {
	render := func(t *tmpl.Template) (string, error) {
		if t == nil {
			return "", nil
		}
		return t.Render(x.Env)
	}
	db, err := render(s.database)
	if err != nil {
		return nil, err
	}
	user := "postgres"
	if s.user != nil {
		var err error
		if user, err = render(s.user); err != nil {
			return nil, err
		}
	}
	pw, err := render(s.password)
	if err != nil {
		return nil, err
	}
	addr, err := render(s.address)
	if err != nil {
		return nil, err
	}
	port, err := s.port.Get(x.Env)
	if err != nil {
		return nil, err
	}
	becomeUser := x.Become
	if addr == "" {
		addr = x.Host.Address
		switch {
		case becomeUser != "":
			addr = "/var/run/postgresql"
		case s.viaSSH:
			addr = "127.0.0.1"
		}
	}
	if becomeUser != "" && s.user == nil {
		user = becomeUser
	}
	connTimeout, err := s.connTimeout.Get(x.Env)
	if err != nil {
		return nil, err
	}
	stmtTimeout, err := s.stmtTimeout.Get(x.Env)
	if err != nil {
		return nil, err
	}
	return pgTarget{addr: addr, port: port, db: db, user: user, password: pw, sslmode: s.sslmode,
		connTimeout: connTimeout, stmtTimeout: stmtTimeout, become: becomeUser, viaSSH: s.viaSSH}.connect(ctx, x)
}

// pgTarget is where and how to connect to PostgreSQL from a step's host.
type pgTarget struct {
	// addr is a host address, or a socket directory starting with /.
	addr                     string
	port                     int
	db, user, password       string
	sslmode                  string
	connTimeout, stmtTimeout time.Duration
	// become, when set, connects through a relay to the server's socket
	// run as that OS user on the host (peer authentication).
	become string
	viaSSH bool
}

func (t pgTarget) connect(ctx context.Context, x *Exec) (*pgx.Conn, error) {
	// Only non-secret settings go through the connection string; the
	// password is set on the parsed config.
	cs := fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=%s connect_timeout=%d application_name=runbook",
		connQuote(t.addr), t.port, connQuote(t.db), connQuote(t.user), t.sslmode, max(1, int(t.connTimeout.Seconds()+0.5)))
	cfg, err := pgx.ParseConfig(cs)
	if err != nil {
		return nil, err
	}
	cfg.Password = t.password
	cfg.RuntimeParams["statement_timeout"] = strconv.FormatInt(t.stmtTimeout.Milliseconds(), 10)
	if x.Tag != "" {
		// The step's name in this run, so that a resume finds a statement
		// an earlier attempt left running (Settle).
		cfg.RuntimeParams["application_name"] = x.Tag
	}
	// A cancelled context sends the server a cancel request (through the
	// same route: TCP, the SSH tunnel or the socket relay) and waits for
	// its answer; only if none comes is the connection cut. Cutting it
	// first would leave the statement running, and committing, without us.
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: cancelGrace}
	}
	// The SQL text is quoted for, and checked with, standard strings:
	// with this off, a backslash in '...' would escape the quote.
	cfg.RuntimeParams["standard_conforming_strings"] = "on"
	if t.become != "" {
		// Through a relay to the server's Unix socket run as the OS user, on
		// the host: peer authentication, as sudo -u postgres psql.
		conn, err := x.Connect(ctx)
		if err != nil {
			return nil, err
		}
		socket := fmt.Sprintf("%s/.s.PGSQL.%d", t.addr, t.port)
		cfg.DialFunc = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return conn.Stream(ctx, &transport.Command{Line: transport.UnixRelay(socket), Become: t.become})
		}
		cfg.LookupFunc = func(ctx context.Context, host string) ([]string, error) { return []string{host}, nil }
		cfg.Host, cfg.Port = "127.0.0.1", uint16(t.port)
		cfg.Fallbacks = nil
		cfg.TLSConfig = nil
	} else if t.viaSSH {
		conn, err := x.Connect(ctx)
		if err != nil {
			return nil, err
		}
		cfg.DialFunc = func(ctx context.Context, network, a string) (net.Conn, error) { return conn.Dial(ctx, network, a) }
		cfg.LookupFunc = func(ctx context.Context, host string) ([]string, error) { return []string{host}, nil }
	}
	where := fmt.Sprintf("%s:%d", t.addr, t.port)
	if t.become != "" {
		where = fmt.Sprintf("%s/.s.PGSQL.%d as OS user %s", t.addr, t.port, t.become)
	}
	if t.viaSSH && t.become == "" {
		where += " (via " + x.Host.Name + ")"
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "57P03" {
			return nil, notAccepting(where, pe)
		}
		return nil, fmt.Errorf("connect to PostgreSQL at %s as %s: %w", where, t.user, unwrapConnect(err))
	}
	return c, nil
}

// unwrapConnect drops pgx's connection-string echo from connect errors,
// keeping the cause.
func unwrapConnect(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		return ce.Unwrap()
	}
	return err
}

func connQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

type sqlOutcome struct {
	rows     []any
	affected int64
}

func (s *sqlStep) run(ctx context.Context, c *pgx.Conn, text *tmpl.Template, x *Exec, readOnly, query bool) (*sqlOutcome, error) {
	sqlText, err := text.Render(x.Env)
	if err != nil {
		return nil, err
	}
	var args []any
	if s.args != nil {
		v, err := s.args.Eval(x.Env)
		if err != nil {
			return nil, err
		}
		list, ok := v.([]any)
		if !ok {
			list = []any{v}
		}
		args = list
	}
	if readOnly {
		tx, err := c.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
		if err != nil {
			return nil, err
		}
		defer tx.Rollback(context.WithoutCancel(ctx))
		return collect(ctx, tx, sqlText, args, query)
	}
	return collect(ctx, c, sqlText, args, query)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func collect(ctx context.Context, q querier, sqlText string, args []any, query bool) (*sqlOutcome, error) {
	if !query {
		tag, err := q.Exec(ctx, sqlText, args...)
		if err != nil {
			return nil, err
		}
		return &sqlOutcome{rows: []any{}, affected: tag.RowsAffected()}, nil
	}
	rows, err := q.Query(ctx, sqlText, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	fields := rows.FieldDescriptions()
	out := &sqlOutcome{rows: []any{}}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		row := make(map[string]any, len(vals))
		for i, v := range vals {
			row[fields[i].Name] = plainValue(v)
		}
		out.rows = append(out.rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out.affected = rows.CommandTag().RowsAffected()
	return out, nil
}

// plainValue turns a pgx value into one that expressions and JSON handle.
func plainValue(v any) any {
	switch v := v.(type) {
	case int16:
		return int(v)
	case int32:
		return int(v)
	case int64:
		return int(v)
	case float32:
		return float64(v)
	case []byte:
		return string(v)
	case pgtype.Numeric:
		if f, err := v.Float64Value(); err == nil && f.Valid {
			return f.Float64
		}
		if v.Int != nil {
			return new(big.Int).Set(v.Int).String()
		}
		return nil
	case netip.Prefix:
		if v.IsSingleIP() {
			return v.Addr().String()
		}
		return v.String()
	case netip.Addr:
		return v.String()
	case [16]byte:
		return fmt.Sprintf("%x-%x-%x-%x-%x", v[0:4], v[4:6], v[6:8], v[8:10], v[10:16])
	case time.Time, string, bool, float64, int, nil:
		return v
	default:
		return fmt.Sprint(v)
	}
}

func (o *sqlOutcome) result() Result {
	return Result{"rows": o.rows, "rows_affected": int(o.affected), "ok": true, "sqlstate": "", "error": "", "skipped": false, "answered": true}
}

// Probe runs the statement in a read-only transaction. A database error is
// part of the result (ok == false, sqlstate), so that a guard can assert on
// it: a warm standby's 57P03 is an observation, not a failure.
func (s *sqlStep) Probe(ctx context.Context, x *Exec) (Result, error) {
	c, err := s.connect(ctx, x)
	if err == nil {
		defer c.Close(context.WithoutCancel(ctx))
		var o *sqlOutcome
		if o, err = s.run(ctx, c, s.text, x, true, true); err == nil {
			return o.result(), nil
		}
	}
	if isTemplateErr(err) || ctx.Err() != nil {
		return nil, err
	}
	state := ""
	var pe *pgconn.PgError
	answered := errors.As(err, &pe)
	if answered {
		state = pe.Code
	}
	if transport.IsUnreachable(err) {
		return nil, err
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		// Nothing can answer at a name that does not resolve: saying
		// "nothing answered" would make a guard pass on a typo.
		return nil, fmt.Errorf("the server's address does not resolve: %w", err)
	}
	if !answered {
		answered = s.accepts(ctx, x)
	}
	return Result{"rows": []any{}, "rows_affected": 0, "ok": false, "sqlstate": state, "error": err.Error(), "skipped": false, "answered": answered}, nil
}

// accepts reports whether the server's TCP address, reached directly from
// this machine, accepts a connection: a server that accepts and then says
// nothing (stopped with SIGSTOP, hung) is still alive. Connections through
// SSH or to a socket are judged by the server's reply alone.
func (s *sqlStep) accepts(ctx context.Context, x *Exec) bool {
	if s.viaSSH || x.Become != "" {
		return false
	}
	addr := x.Host.Address
	if s.address != nil {
		a, err := s.address.Render(x.Env)
		if err != nil || a == "" || strings.HasPrefix(a, "/") {
			return false
		}
		addr = a
	}
	port, err := s.port.Get(x.Env)
	if err != nil {
		return false
	}
	d := net.Dialer{Timeout: 3 * time.Second}
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func isTemplateErr(err error) bool { return errors.Is(err, tmpl.ErrUnavailable) }

// Plan runs read-only statements for real and checks unless.
func (s *sqlStep) Plan(ctx context.Context, x *Exec) (*Plan, error) {
	if !s.readOnly && s.unless == nil {
		return s.changePlan(x)
	}
	c, err := s.connect(ctx, x)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if s.readOnly {
		o, err := s.run(ctx, c, s.text, x, true, s.isQuery)
		if err != nil {
			return nil, err
		}
		return &Plan{Summary: "ran read-only SQL", Result: o.result()}, nil
	}
	o, err := s.run(ctx, c, s.unless, x, true, true)
	if err != nil {
		return nil, fmt.Errorf("unless: %w", err)
	}
	if len(o.rows) > 0 && truthy(o.rows[0]) {
		r := (&sqlOutcome{rows: []any{}}).result()
		r["skipped"] = true
		return &Plan{Skipped: true, Summary: "skip: unless query returned a row", Result: r}, nil
	}
	return s.changePlan(x)
}

// changePlan describes the statement that Apply would run. A statement
// built from a secret (a password verifier) is not shown.
func (s *sqlStep) changePlan(x *Exec) (*Plan, error) {
	text, err := s.text.Render(x.Env)
	if err != nil {
		return nil, err
	}
	if s.text.UsesSecret() {
		return &Plan{Changes: true, Summary: "run SQL built from a secret (not shown): " + oneLineSQL(s.text.Source)}, nil
	}
	return &Plan{Changes: true, Summary: "run SQL: " + oneLineSQL(x.Redact.String(text))}, nil
}

// truthy reports whether the first column of a row is set and not false.
func truthy(row any) bool {
	m, _ := row.(map[string]any)
	for _, v := range m {
		if b, ok := v.(bool); ok {
			return b
		}
		return v != nil
	}
	return false
}

// oneLineSQL puts SQL on one line, cut short. It must be redacted
// already: its blanks are joined and its end cut.
func oneLineSQL(s string) string {
	return Cut(strings.Join(strings.Fields(s), " "), 200)
}

// Apply runs the statement.
func (s *sqlStep) Apply(ctx context.Context, x *Exec, _ *Plan) (Result, error) {
	c, err := s.connect(ctx, x)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	o, err := s.run(ctx, c, s.text, x, false, s.isQuery)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s (SQLSTATE %s)", pe.Message, pe.Code)
		}
		return nil, err
	}
	return o.result(), nil
}

// cancelGrace is how long a cancelled statement is given to stop on the
// server before its connection is cut.
const cancelGrace = 10 * time.Second

// Settle implements Settler: it waits until no session of an earlier
// attempt of this step (its application_name is x.Tag) is left on the
// server, so that the recheck that follows sees what such a statement
// committed, never a statement still running.
func (s *sqlStep) Settle(ctx context.Context, x *Exec, wait time.Duration) error {
	if x.Tag == "" || s.readOnly {
		return nil
	}
	c, err := s.connect(ctx, x)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	start := time.Now()
	for announced := false; ; announced = true {
		var pids []int32
		rows, err := c.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()", x.Tag)
		if err == nil {
			pids, err = pgx.CollectRows(rows, pgx.RowTo[int32])
		}
		if err != nil {
			return fmt.Errorf("looking for the statement of the interrupted attempt: %w", err)
		}
		if len(pids) == 0 {
			return nil
		}
		if !announced && x.Progress != nil {
			x.Progress(fmt.Sprintf("the statement of the interrupted attempt still runs (server process %v): waiting for it to end", pids))
		}
		if time.Since(start) >= wait {
			return fmt.Errorf("the statement of the interrupted attempt still runs after %s (server process %v): wait for it, or cancel it with SELECT pg_cancel_backend(%d), then resume again (--wait-leftovers to wait longer)", wait, pids, pids[0])
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// MayChange implements Changer.
func (s *sqlStep) MayChange() bool { return !s.readOnly }

// DownResult implements DownResulter: on a host that is down, no server
// answered.
func (s *sqlStep) DownResult() Result {
	return Result{"rows": []any{}, "rows_affected": 0, "ok": false, "sqlstate": "", "skipped": false, "answered": false}
}

// Rechecks implements Rechecker: unless finds a change already made.
func (s *sqlStep) Rechecks() bool { return s.readOnly || s.idempotent || s.unless != nil }

// insideSQL records SQL text for validate's parser, with the values its
// $1, $2, ... are bound to: a list, or an expression whose length only
// the run knows.
func insideSQL(d *Decoder, field string, n *yaml.Node, t *tmpl.Template, args *yaml.Node) {
	in := d.Inside(field, n, t, tmpl.SQL)
	if in == nil || args == nil {
		return
	}
	if args.Kind != yaml.SequenceNode {
		in.ArgsUnknown = true
		return
	}
	for _, a := range args.Content {
		in.Args = append(in.Args, Pos(a))
	}
}
