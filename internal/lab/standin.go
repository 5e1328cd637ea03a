package lab

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// The orchestrator STAND-IN. inmanta-server cannot be installed here, so
// lab hosts run this small service under its unit name instead. It is not
// the orchestrator: it does none of its work. What it copies is everything
// about the server that a procedure run against it can observe, for a
// chosen inmanta-core version: which files and environment variables
// configure it and which of them wins, whom it runs as, where it listens,
// how it starts, waits, fails and exits, the singleton lock of 19.0 and
// later, the health endpoint's codes and meaning, token authentication,
// TLS, and the environment list and recompile request of its API.
// docs/orchestrator.md lists each behaviour with the inmanta-core source
// it follows.

// Exit codes of inmanta-server.
const (
	// ExitStartFailed is const.EXIT_START_FAILED: the server did not
	// start (no database, lock held, port taken).
	ExitStartFailed = 4
	// exitConfig is Python's exit code for the uncaught exception a
	// configuration file that cannot be parsed raises.
	exitConfig = 1
)

// SingletonLockKey is the advisory lock key of SingletonLock.LOCK_KEY
// (src/inmanta/server/services/databaseservice.py):
// int.from_bytes(b"INMANTA", "big").
const SingletonLockKey int64 = 20633767014978625

// StandinOptions are the command-line options of `runbook lab standin`,
// those of `inmanta server` it copies.
type StandinOptions struct {
	// Version is the inmanta-core version to behave as, e.g. "19.1.0".
	Version string
	// MainConfig is /etc/inmanta/inmanta.cfg; ConfigDir the directory of
	// *.cfg files (--config-dir); ConfigFile the file of -c, read last.
	MainConfig, ConfigDir, ConfigFile string
	// DBWaitTime is --db-wait-time when set.
	DBWaitTime *int
	// Env looks up environment variables (os.LookupEnv).
	Env func(string) (string, bool)
	// Home is the user's home directory (for ~/.inmanta.cfg).
	Home string
	Log  io.Writer
	// Ready, when set, receives the addresses the API listens on.
	Ready func([]net.Addr)
}

// StandinVersion is a parsed inmanta-core version.
type StandinVersion struct{ Major, Minor int }

// ParseStandinVersion reads "19", "19.1" or "19.1.0".
func ParseStandinVersion(s string) (StandinVersion, error) {
	f := strings.Split(s, ".")
	var v StandinVersion
	var err error
	if v.Major, err = strconv.Atoi(f[0]); err != nil || v.Major < 1 {
		return v, fmt.Errorf("version %q: want the inmanta-core version, such as 19.1.0", s)
	}
	if len(f) > 1 {
		if v.Minor, err = strconv.Atoi(f[1]); err != nil {
			return v, fmt.Errorf("version %q: want the inmanta-core version, such as 19.1.0", s)
		}
	}
	return v, nil
}

// HasHealth: GET /api/v2/health exists from inmanta-core 16.0.
func (v StandinVersion) HasHealth() bool { return v.Major >= 16 }

// HasSingletonLock: the database singleton lock exists from 19.0.
func (v StandinVersion) HasSingletonLock() bool { return v.Major >= 19 }

func (v StandinVersion) String() string { return fmt.Sprintf("%d.%d.0", v.Major, v.Minor) }

// dbSettings are the [database] options.
type dbSettings struct {
	Host, Name, Username, Password string
	Port                           int
}

func (d dbSettings) connConfig(app string, timeout time.Duration) (*pgx.ConnConfig, error) {
	pc, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=prefer connect_timeout=%d application_name=%s",
		quoteConnValue(d.Host), d.Port, quoteConnValue(d.Name), quoteConnValue(d.Username), int(timeout.Seconds()), quoteConnValue(app)))
	if err != nil {
		return nil, err
	}
	pc.Password = d.Password
	return pc, nil
}

func quoteConnValue(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// Standin is a running stand-in.
type Standin struct {
	opt     StandinOptions
	version StandinVersion
	cfg     *StandinConfig
	db      dbSettings
	auth    *standinAuth
	log     func(format string, args ...any)
	host    string

	mu       sync.Mutex
	lastBeat time.Time
	lastErr  string
}

// RunStandin runs the stand-in until ctx ends or it stops by itself, and
// returns the exit code inmanta-server would exit with.
func RunStandin(ctx context.Context, opt StandinOptions) int {
	if opt.Log == nil {
		opt.Log = os.Stderr
	}
	if opt.Env == nil {
		opt.Env = os.LookupEnv
	}
	host, _ := os.Hostname()
	s := &Standin{opt: opt, host: host}
	s.log = func(format string, args ...any) {
		fmt.Fprintf(opt.Log, "inmanta-server stand-in %s: %s\n", opt.Version, fmt.Sprintf(format, args...))
	}
	v, err := ParseStandinVersion(opt.Version)
	if err != nil {
		s.log("%v", err)
		return exitConfig
	}
	s.version = v
	if opt.ConfigFile != "" {
		if _, err := os.Stat(opt.ConfigFile); err != nil {
			s.log("Config file %s doesn't exist", opt.ConfigFile)
		}
	}
	if opt.ConfigDir != "" {
		if fi, err := os.Stat(opt.ConfigDir); err != nil || !fi.IsDir() {
			s.log("Config directory %s doesn't exist", opt.ConfigDir)
		}
	}
	files := ConfigFiles(opt.MainConfig, opt.ConfigDir, opt.Home, opt.ConfigFile)
	if s.cfg, err = LoadStandinConfig(files, opt.Env); err != nil {
		s.log("%v", err)
		return exitConfig
	}
	s.log("configuration files loaded: %s", strings.Join(s.cfg.Loaded, ", "))
	code, err := s.run(ctx)
	if err != nil {
		s.log("Server setup failed: %v", err)
	}
	return code
}

// settings reads the options the stand-in uses, with the server's
// defaults (src/inmanta/server/config.py, src/inmanta/config.py).
func (s *Standin) settings() (waitTime, lockWait int, lock bool, err error) {
	c := s.cfg
	s.db = dbSettings{Host: c.Get("database", "host", "localhost"), Name: c.Get("database", "name", "inmanta"),
		Username: c.Get("database", "username", "postgres"), Password: c.Get("database", "password", "")}
	if s.db.Port, err = c.Int("database", "port", 5432); err != nil {
		return
	}
	if waitTime, err = c.Int("database", "wait_time", 0); err != nil {
		return
	}
	// --db-wait-time is Config.set("database", "wait_time"), and
	// get_raw_value asks the environment first: INMANTA_DATABASE_WAIT_TIME
	// beats the option (src/inmanta/app.py, src/inmanta/config.py).
	if _, fromEnv := c.envValue("database", "wait_time"); s.opt.DBWaitTime != nil && !fromEnv {
		waitTime = *s.opt.DBWaitTime
	}
	if lock, err = c.Bool("database", "singleton_lock", true); err != nil {
		return
	}
	lockWait, err = c.Int("database", "singleton_lock_wait_time", 30)
	return
}

func (s *Standin) run(ctx context.Context) (int, error) {
	waitTime, lockWait, useLock, err := s.settings()
	if err != nil {
		return ExitStartFailed, err
	}
	if s.auth, err = loadAuth(s.cfg); err != nil {
		return ExitStartFailed, err
	}
	// DatabaseStatusChecker.check_database_before_server_start: one try
	// when wait_time is 0, until it answers when negative.
	if err := s.waitForDatabase(ctx, waitTime); err != nil {
		return ExitStartFailed, err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	lockLost := make(chan struct{})
	if s.version.HasSingletonLock() && useLock {
		lc, err := s.acquireLock(ctx, lockWait)
		if err != nil {
			return ExitStartFailed, err
		}
		defer lc.Close(context.Background())
		go s.monitorLock(runCtx, lc, lockLost)
	}
	if err := s.migrate(ctx); err != nil {
		return ExitStartFailed, err
	}
	listeners, err := s.listen()
	if err != nil {
		return ExitStartFailed, err
	}
	srv := &http.Server{Handler: s.mux(), ReadHeaderTimeout: 5 * time.Second}
	var addrs []net.Addr
	for _, l := range listeners {
		addrs = append(addrs, l.Addr())
		go func(l net.Listener) { _ = srv.Serve(l) }(l)
	}
	s.log("Server startup complete, listening on %v", addrs)
	if s.opt.Ready != nil {
		s.opt.Ready(addrs)
	}
	go s.work(runCtx)
	select {
	case <-ctx.Done():
	case <-lockLost:
		// _on_singleton_lock_lost sends the process SIGTERM: a clean
		// shutdown, exit 0, which Restart=on-failure does not restart.
		s.log("Lost the database singleton lock: the connection to the database dropped or the database became read-only; shutting down")
	}
	stop()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	s.log("Server shutdown complete")
	return 0, nil
}

func (s *Standin) connect(ctx context.Context, app string) (*pgx.Conn, error) {
	pc, err := s.db.connConfig(app, 5*time.Second)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return pgx.ConnectConfig(cctx, pc)
}

func (s *Standin) waitForDatabase(ctx context.Context, waitTime int) error {
	deadline := time.Now().Add(time.Duration(waitTime) * time.Second)
	for {
		c, err := s.connect(ctx, "inmanta-server-standin")
		if err == nil {
			return c.Close(ctx)
		}
		if waitTime == 0 || waitTime > 0 && time.Now().After(deadline) {
			return fmt.Errorf("the database at %s:%d (database %s, user %s) did not answer: %v", s.db.Host, s.db.Port, s.db.Name, s.db.Username, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// acquireLock is SingletonLock.acquire: a dedicated connection, refused
// on a standby, pg_try_advisory_lock once a second until lockWait.
func (s *Standin) acquireLock(ctx context.Context, lockWait int) (*pgx.Conn, error) {
	c, err := s.connect(ctx, "inmanta-server-standin singleton lock")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			c.Close(context.Background())
		}
	}()
	var standby bool
	if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby); err != nil {
		return nil, err
	}
	if standby {
		return nil, fmt.Errorf("the database at %s:%d is a read-only standby: the Inmanta server must connect to the primary", s.db.Host, s.db.Port)
	}
	deadline := time.Now().Add(time.Duration(lockWait) * time.Second)
	for announced := false; ; announced = true {
		var got bool
		if err := c.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", SingletonLockKey).Scan(&got); err != nil {
			return nil, err
		}
		if got {
			s.log("Acquired the database singleton lock: this server is the active instance")
			ok = true
			return c, nil
		}
		if !announced {
			s.log("Another Inmanta server is active on database %q at %s:%d; waiting up to %ds for the singleton lock", s.db.Name, s.db.Host, s.db.Port, lockWait)
		}
		if lockWait == 0 || lockWait > 0 && time.Now().After(deadline) {
			return nil, fmt.Errorf("another Inmanta server is already active on database %q at %s:%d: could not acquire the database singleton lock within %d seconds", s.db.Name, s.db.Host, s.db.Port, lockWait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// monitorLock is SingletonLock._monitor: every 5 s the lock's connection
// must be alive and on a primary.
func (s *Standin) monitorLock(ctx context.Context, c *pgx.Conn, lost chan<- struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var standby bool
		err := c.QueryRow(qctx, "SELECT pg_is_in_recovery()").Scan(&standby)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil || standby {
			close(lost)
			return
		}
	}
}

const standinSchema = `
CREATE TABLE IF NOT EXISTS standin_heartbeat (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), server text NOT NULL);
CREATE TABLE IF NOT EXISTS standin_environment (id text PRIMARY KEY, name text NOT NULL, halted boolean NOT NULL DEFAULT false);
CREATE TABLE IF NOT EXISTS standin_recompile (id bigserial PRIMARY KEY, environment text NOT NULL, requested_at timestamptz NOT NULL DEFAULT now(), update_sources boolean NOT NULL, halted boolean NOT NULL, server text NOT NULL);
INSERT INTO standin_environment VALUES ('6f1c1e3a-0001-4000-8000-000000000001', 'production', false), ('6f1c1e3a-0002-4000-8000-000000000002', 'staging', false), ('6f1c1e3a-0003-4000-8000-000000000003', 'retired', true) ON CONFLICT DO NOTHING;
`

// migrate stands for the schema migrations the server runs at start.
func (s *Standin) migrate(ctx context.Context) error {
	c, err := s.connect(ctx, "inmanta-server-standin")
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, standinSchema)
	return err
}

// listen opens server.bind-address (a list) at server.bind-port, with TLS
// when server.ssl-cert-file and server.ssl-key-file are both set.
func (s *Standin) listen() ([]net.Listener, error) {
	port, err := s.cfg.Int("server", "bind-port", 8888)
	if err != nil {
		return nil, err
	}
	var tlsCfg *tls.Config
	cert, key := s.cfg.Get("server", "ssl-cert-file", ""), s.cfg.Get("server", "ssl-key-file", "")
	if cert != "" && key != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("server.ssl-cert-file/ssl-key-file: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	var out []net.Listener
	for _, a := range s.cfg.List("server", "bind-address", "127.0.0.1") {
		l, err := net.Listen("tcp", net.JoinHostPort(a, strconv.Itoa(port)))
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, err
		}
		if tlsCfg != nil {
			l = tls.NewListener(l, tlsCfg)
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return nil, errors.New("server.bind-address is empty: nothing to listen on")
	}
	return out, nil
}

// work stands for the server's own use of its database: a row a second,
// which is how a test sees which database it uses. Health does not
// depend on it, as the real server's health does not write.
func (s *Standin) work(ctx context.Context) {
	var c *pgx.Conn
	defer func() {
		if c != nil {
			c.Close(context.Background())
		}
	}()
	for {
		err := func() error {
			bctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			if c == nil || c.IsClosed() {
				var err error
				if c, err = s.connect(bctx, "inmanta-server-standin"); err != nil {
					c = nil
					return err
				}
			}
			if _, err := c.Exec(bctx, "INSERT INTO standin_heartbeat (server) VALUES ($1)", s.host); err != nil {
				c.Close(context.Background())
				c = nil
				return err
			}
			return nil
		}()
		s.mu.Lock()
		if err == nil {
			s.lastBeat, s.lastErr = time.Now(), ""
		} else {
			s.lastErr = err.Error()
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}
