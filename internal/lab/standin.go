package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// The orchestrator STAND-IN. The Inmanta server of the reference procedure
// cannot be installed here, so lab hosts run this small service under its
// unit name instead. It does the few things the procedures depend on:
// reads /etc/inmanta/inmanta.d/database.cfg, writes a heartbeat row to the
// database it names every second, and answers GET /api/v2/health,
// GET /api/v2/environment and POST /api/v1/notify/{env} (a recompile
// request, recorded in the database). It is not the orchestrator.

// DatabaseConfig is the [database] section of database.cfg.
type DatabaseConfig struct {
	Host, Name, Username, Password string
	Port                           int
}

// ReadDatabaseConfig parses database.cfg.
func ReadDatabaseConfig(path string) (*DatabaseConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := &DatabaseConfig{Port: 5432}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.TrimSpace(line[1 : len(line)-1])
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section != "database" {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "host":
			c.Host = v
		case "port":
			if c.Port, err = strconv.Atoi(v); err != nil {
				return nil, fmt.Errorf("%s: port %q", path, v)
			}
		case "name":
			c.Name = v
		case "username":
			c.Username = v
		case "password":
			c.Password = v
		}
	}
	if c.Host == "" || c.Name == "" || c.Username == "" {
		return nil, fmt.Errorf("%s: [database] needs host, name and username", path)
	}
	return c, nil
}

// Standin is the running stand-in.
type Standin struct {
	cfg *DatabaseConfig
	mu  sync.Mutex
	// lastBeat is when a heartbeat was last committed.
	lastBeat time.Time
	lastErr  string
	conn     *pgx.Conn
}

const standinSchema = `
CREATE TABLE IF NOT EXISTS standin_heartbeat (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), server text NOT NULL);
CREATE TABLE IF NOT EXISTS standin_environment (id text PRIMARY KEY, name text NOT NULL);
CREATE TABLE IF NOT EXISTS standin_recompile (id bigserial PRIMARY KEY, environment text NOT NULL, requested_at timestamptz NOT NULL DEFAULT now());
INSERT INTO standin_environment VALUES ('6f1c1e3a-0001-4000-8000-000000000001', 'production'), ('6f1c1e3a-0002-4000-8000-000000000002', 'staging') ON CONFLICT DO NOTHING;
`

// RunStandin serves until ctx ends.
func RunStandin(ctx context.Context, configPath, listen string) error {
	cfg, err := ReadDatabaseConfig(configPath)
	if err != nil {
		return err
	}
	s := &Standin{cfg: cfg}
	go s.heartbeat(ctx)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v2/health", s.health)
	mux.HandleFunc("GET /api/v2/environment", s.environments)
	mux.HandleFunc("POST /api/v1/notify/{env}", s.notify)
	srv := &http.Server{Addr: listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *Standin) connect(ctx context.Context) (*pgx.Conn, error) {
	if s.conn != nil && !s.conn.IsClosed() {
		return s.conn, nil
	}
	c, err := s.freshConn(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := c.Exec(ctx, standinSchema); err != nil {
		c.Close(ctx)
		return nil, err
	}
	s.conn = c
	return c, nil
}

func (s *Standin) heartbeat(ctx context.Context) {
	host, _ := os.Hostname()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		err := func() error {
			// A write that hangs (a synchronous standby that is down) must
			// show in health, so each beat has its own deadline.
			bctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			c, err := s.connect(bctx)
			if err != nil {
				return err
			}
			if _, err := c.Exec(bctx, "INSERT INTO standin_heartbeat (server) VALUES ($1)", host); err != nil {
				c.Close(context.Background())
				s.conn = nil
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
		case <-t.C:
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Standin) health(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	last, lastErr := s.lastBeat, s.lastErr
	s.mu.Unlock()
	body := map[string]any{"standin": true, "database": s.cfg.Host, "last_heartbeat": last.UTC().Format(time.RFC3339)}
	if time.Since(last) > 5*time.Second {
		body["status"], body["error"] = "down", lastErr
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	body["status"] = "up"
	writeJSON(w, http.StatusOK, body)
}

func (s *Standin) environments(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	c, err := s.freshConn(ctx)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"message": err.Error()})
		return
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, "SELECT id, name FROM standin_environment ORDER BY name")
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"message": err.Error()})
		return
	}
	var envs []map[string]string
	for rows.Next() {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]any{"message": err.Error()})
			return
		}
		envs = append(envs, map[string]string{"id": id, "name": name})
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": envs})
}

func (s *Standin) notify(w http.ResponseWriter, r *http.Request) {
	env := r.PathValue("env")
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	c, err := s.freshConn(ctx)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"message": err.Error()})
		return
	}
	defer c.Close(context.Background())
	tag, err := c.Exec(ctx, "INSERT INTO standin_recompile (environment) SELECT id FROM standin_environment WHERE id = $1", env)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"message": err.Error()})
		return
	}
	if tag.RowsAffected() == 0 {
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "no environment " + env})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": "recompile requested", "environment": env})
}

// freshConn opens a connection for one request, so requests do not share
// the heartbeat's connection.
func (s *Standin) freshConn(ctx context.Context) (*pgx.Conn, error) {
	pc, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=prefer connect_timeout=3 application_name=orchestrator-standin",
		s.cfg.Host, s.cfg.Port, s.cfg.Name, s.cfg.Username))
	if err != nil {
		return nil, err
	}
	pc.Password = s.cfg.Password
	return pgx.ConnectConfig(ctx, pc)
}
