package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/internal/testkit"
	"github.com/runbook-dev/runbook/internal/testpg"
)

// TestStandinConfigOrder: files in load_config's order, the later file
// winning, an unreadable file skipped without a word, an environment
// variable over every file, - and _ one character in option names.
func TestStandinConfigOrder(t *testing.T) {
	dir := t.TempDir()
	d := filepath.Join(dir, "inmanta.d")
	main := filepath.Join(dir, "inmanta.cfg")
	testkit.WriteFile(t, main, "[server]\nbind-address = 127.0.0.1\n[database]\nhost = main\n", 0o644)
	testkit.WriteFile(t, filepath.Join(d, "database.cfg"), "[database]\nhost=10.0.0.12\nwait_time=5\n", 0o644)
	testkit.WriteFile(t, filepath.Join(d, "zz.cfg"), "[database]\nhost: 10.0.0.99\n", 0o644)
	testkit.WriteFile(t, filepath.Join(d, "not-a-cfg.conf"), "[database]\nhost=ignored\n", 0o644)
	files := ConfigFiles(main, d, filepath.Join(dir, "home"), "")
	want := []string{main, filepath.Join(d, "database.cfg"), filepath.Join(d, "zz.cfg"), filepath.Join(dir, "home/.inmanta.cfg"), ".inmanta", ".inmanta.cfg"}
	if fmt.Sprint(files) != fmt.Sprint(want) {
		t.Fatalf("files %v, want %v", files, want)
	}
	env := map[string]string{}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	c, err := LoadStandinConfig(files, lookup)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Get("database", "host", ""); got != "10.0.0.99" {
		t.Errorf("host %q, want zz.cfg's", got)
	}
	if n, _ := c.Int("database", "wait-time", 0); n != 5 {
		t.Errorf("wait-time %d: wait_time and wait-time are one option", n)
	}
	env["INMANTA_DATABASE_HOST"] = "10.0.0.77"
	if got := c.Get("database", "host", ""); got != "10.0.0.77" {
		t.Errorf("host %q, want the environment's", got)
	}
	if EnvName("database", "wait-time") != "INMANTA_DATABASE_WAIT_TIME" || EnvName("lsm.callback", "x") != "INMANTA_LSM_CALLBACK_X" {
		t.Error("environment variable names")
	}
	if os.Geteuid() == 0 {
		t.Log("root reads every file: the unreadable-file case is checked on the lab (e2e)")
	} else {
		testkit.WriteFile(t, filepath.Join(d, "zz.cfg"), "[database]\nhost: 10.0.0.99\n", 0o000)
		c, _ = LoadStandinConfig(files, nil)
		if got := c.Get("database", "host", ""); got != "10.0.0.12" {
			t.Errorf("an unreadable zz.cfg: host %q, want database.cfg's", got)
		}
	}
	testkit.WriteFile(t, filepath.Join(d, "zz.cfg"), "host=x\n", 0o644)
	if _, err := LoadStandinConfig(files, nil); err == nil || !strings.Contains(err.Error(), "MissingSectionHeaderError") {
		t.Errorf("a file without a section: %v", err)
	}
	testkit.WriteFile(t, filepath.Join(d, "zz.cfg"), "[database]\nhost=a\nHost=b\n", 0o644)
	if _, err := LoadStandinConfig(files, nil); err == nil || !strings.Contains(err.Error(), "DuplicateOptionError") {
		t.Errorf("an option twice: %v", err)
	}
}

type standinRun struct {
	t     *testing.T
	addrs chan []net.Addr
	done  chan int
	log   *testkit.SyncBuffer
	stop  context.CancelFunc
}

func startStandin(t *testing.T, version, cfg string, env map[string]string) *standinRun {
	t.Helper()
	dir := t.TempDir()
	testkit.WriteFile(t, filepath.Join(dir, "inmanta.cfg"), cfg, 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	r := &standinRun{t: t, addrs: make(chan []net.Addr, 1), done: make(chan int, 1), log: &testkit.SyncBuffer{}, stop: cancel}
	opt := StandinOptions{Version: version, MainConfig: filepath.Join(dir, "inmanta.cfg"), ConfigDir: filepath.Join(dir, "none"), Home: dir, Log: r.log,
		Env:   func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Ready: func(a []net.Addr) { r.addrs <- a }}
	go func() { r.done <- RunStandin(ctx, opt) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Error("the stand-in did not stop")
		}
	})
	return r
}

// ready waits until it listens and returns its base URL.
func (r *standinRun) ready() string {
	r.t.Helper()
	select {
	case a := <-r.addrs:
		return "http://" + a[0].String()
	case code := <-r.done:
		r.done <- code
		r.t.Fatalf("the stand-in exited %d:\n%s", code, r.log.String())
	case <-time.After(20 * time.Second):
		r.t.Fatalf("the stand-in did not start:\n%s", r.log.String())
	}
	return ""
}

func (r *standinRun) exited(within time.Duration) int {
	r.t.Helper()
	select {
	case code := <-r.done:
		r.done <- code
		return code
	case <-time.After(within):
		r.t.Fatalf("the stand-in still runs after %v:\n%s", within, r.log.String())
	}
	return -1
}

func get(t *testing.T, method, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

const testKey = "c2VjcmV0LWtleS1vZi10aGUtc3RhbmQtaW4tdGVzdHMtMzItYnl0ZXM"

// TestStandinVersions runs the stand-in against a real PostgreSQL in each
// version mode: loopback by default, health from 16 (500 when the
// database is gone, never 503), tokens when auth is on, the singleton lock
// from 19 (a second server exits 4; the first exits 0 when its lock's
// connection is killed), exit 4 when the database does not answer.
func TestStandinVersions(t *testing.T) {
	pg := testpg.Start(t)
	cfg := fmt.Sprintf("[database]\nhost=127.0.0.1\nport=%d\nname=postgres\nusername=postgres\npassword=%s\nsingleton_lock_wait_time=1\n[server]\nbind-port=0\nauth=true\n[auth_jwt_default]\nalgorithm=HS256\nsign=true\nclient_types=agent,compiler,api\nkey=%s\n", pg.Port, testpg.Password, testKey)
	token, err := StandinToken(testKey, "https://localhost:8888/", "api")
	if err != nil {
		t.Fatal(err)
	}
	agentToken, _ := StandinToken(testKey, "https://localhost:8888/", "agent")
	for _, tc := range []struct {
		version string
		health  int
	}{{"15.3", 404}, {"17.0", 200}, {"19.1.0", 200}} {
		t.Run(tc.version, func(t *testing.T) {
			r := startStandin(t, tc.version, cfg, nil)
			base := r.ready()
			if !strings.HasPrefix(base, "http://127.0.0.1:") {
				t.Errorf("listens at %s, want the loopback address only", base)
			}
			if got := get(t, "GET", base+"/api/v2/health", ""); got != tc.health {
				t.Errorf("health: %d, want %d", got, tc.health)
			}
			for _, c := range []struct {
				token string
				want  int
			}{{"", 401}, {token + "x", 403}, {agentToken, 403}, {token, 200}} {
				if got := get(t, "GET", base+"/api/v2/environment", c.token); got != c.want {
					t.Errorf("environment list with token %.10q: %d, want %d", c.token, got, c.want)
				}
			}
			if got := get(t, "POST", base+"/api/v1/notify/6f1c1e3a-0003-4000-8000-000000000003", token); got != 200 {
				t.Errorf("a recompile of a halted environment: %d, want 200 (the server recompiles it)", got)
			}
			if tc.version != "19.1.0" {
				return
			}
			second := startStandin(t, tc.version, cfg, nil)
			if code := second.exited(10 * time.Second); code != ExitStartFailed || !strings.Contains(second.log.String(), "could not acquire the database singleton lock") {
				t.Errorf("a second server: exit %d, want 4 for the lock:\n%s", code, second.log.String())
			}
			pg.Psql(t, fmt.Sprintf("SELECT pg_terminate_backend(l.pid) FROM pg_locks l WHERE l.locktype = 'advisory' AND (l.classid::bigint << 32 | l.objid::bigint) = %d", SingletonLockKey))
			if code := r.exited(15 * time.Second); code != 0 {
				t.Errorf("the server that lost its lock exited %d, want 0 (a clean shutdown)", code)
			}
		})
	}
	t.Run("no database", func(t *testing.T) {
		r := startStandin(t, "19.1.0", "[database]\nhost=127.0.0.1\nport=1\n[server]\nbind-port=0\n", nil)
		if code := r.exited(10 * time.Second); code != ExitStartFailed {
			t.Errorf("exit %d, want 4", code)
		}
	})
	t.Run("health 500", func(t *testing.T) {
		r := startStandin(t, "17.0", cfg, nil)
		base := r.ready()
		if err := pg.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for get(t, "GET", base+"/api/v2/health", "") != 500 {
			if time.Now().After(deadline) {
				t.Fatal("health does not say 500 with the database stopped")
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

// TestStandinWaitTimeEnv: INMANTA_DATABASE_WAIT_TIME beats --db-wait-time,
// which beats the files (app.py sets the option; the environment is read
// first).
func TestStandinWaitTimeEnv(t *testing.T) {
	three := 3
	for _, c := range []struct {
		env  map[string]string
		want int
	}{
		{map[string]string{"INMANTA_DATABASE_WAIT_TIME": "7"}, 7},
		{map[string]string{}, 3},
	} {
		cfg, err := LoadStandinConfig(nil, func(k string) (string, bool) { v, ok := c.env[k]; return v, ok })
		if err != nil {
			t.Fatal(err)
		}
		s := &Standin{cfg: cfg, opt: StandinOptions{DBWaitTime: &three}}
		got, _, _, err := s.settings()
		if err != nil || got != c.want {
			t.Errorf("env %v, --db-wait-time 3: wait_time %d (%v), want %d", c.env, got, err, c.want)
		}
	}
}
