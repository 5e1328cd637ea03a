package steps_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/testsshd"
	"github.com/runbook-dev/runbook/internal/transport"
	"github.com/runbook-dev/runbook/steps"
)

// A real HTTP server on loopback standing in for the orchestrator's API.
func apiServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/v2/environment":
			_ = json.NewEncoder(w).Encode(map[string]any{"data": []any{map[string]any{"id": "e1"}, map[string]any{"id": "e2"}}})
		case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/api/v1/notify/"):
			b, _ := io.ReadAll(r.Body)
			if r.Header.Get("Content-Type") != "application/json" || !strings.Contains(string(b), `"update":true`) {
				http.Error(w, "bad body "+string(b), http.StatusBadRequest)
				return
			}
			posts.Add(1)
			w.WriteHeader(http.StatusOK)
		default:
			http.Error(w, "no such endpoint", http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &posts
}

func TestHTTP(t *testing.T) {
	srv, posts := apiServer(t)
	src := taking("http", "api", `steps:
  - id: envs
    http:
      url: ${{ params.api }}/api/v2/environment
    assert: result.status == 200 && len(result.json.data) == 2
  - id: notify
    http:
      method: POST
      url: ${{ params.api }}/api/v1/notify/${{ steps.envs.result.json.data[0].id }}
      json: {update: true}
`)
	params := map[string]string{"api": srv.URL}
	ev, err := runPlaybook(t, src, runOpts{params: params, dryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if posts.Load() != 0 || ev.end("notify").Status != engine.StatusWould || ev.end("envs").Status != engine.StatusOK {
		t.Fatalf("plan made %d POSTs; statuses %s %s", posts.Load(), ev.end("envs").Status, ev.end("notify").Status)
	}
	if _, err := runPlaybook(t, src, runOpts{params: params}); err != nil {
		t.Fatal(err)
	}
	if posts.Load() != 1 {
		t.Errorf("%d POSTs, want 1", posts.Load())
	}
	bad := strings.Replace(src, "/api/v2/environment", "/api/v2/missing", 1)
	_, err = runPlaybook(t, bad, runOpts{params: params})
	var se *engine.StepError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "HTTP status 404: no such endpoint") {
		t.Errorf("err = %v", err)
	}
}

func TestHTTPProbeRefusesWrites(t *testing.T) {
	srv, posts := apiServer(t)
	src := taking("http", "api", `require:
  - name: a probe must not write
    http:
      method: POST
      url: ${{ params.api }}/api/v1/notify/e1
      json: {update: true}
    assert: result.status == 200
steps:
  - http: {url: "${{ params.api }}/api/v2/environment"}
`)
	_, err := runPlaybook(t, src, given("api", srv.URL))
	if err == nil || !strings.Contains(err.Error(), "a probe must not change anything") {
		t.Fatalf("err = %v", err)
	}
	if posts.Load() != 0 {
		t.Error("the probe POSTed")
	}
}

// dialCounter counts the connections a step opens through a host's SSH
// connection.
type dialCounter struct {
	transport.Conn
	dials *atomic.Int32
}

func (d dialCounter) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.dials.Add(1)
	return d.Conn.Dial(ctx, network, addr)
}

// TestHTTPThroughSSH calls the API through the host's SSH connection (a
// direct-tcpip channel of a real sshd), as when the API's port is open on
// the host only.
func TestHTTPThroughSSH(t *testing.T) {
	srv, posts := apiServer(t)
	sshd := testsshd.Start(t)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	src := fmt.Sprintf(`version: 1
name: http-via-ssh
steps:
  - id: envs
    host: web
    http:
      url: http://127.0.0.1:%d/api/v2/environment
      via_ssh: true
    assert: result.status == 200 && len(result.json.data) == 2
  - id: notify
    host: web
    http:
      method: POST
      url: http://127.0.0.1:%d/api/v1/notify/e1
      json: {update: true}
      via_ssh: true
`, port, port)
	pb, ds := (&engine.Loader{Registry: steps.Builtin()}).Load("test.yaml", []byte(src))
	if pb == nil {
		t.Fatal(ds)
	}
	inv, _ := engine.ParseInventory("inv.yaml", []byte(sshd.Inventory("web")))
	var dials atomic.Int32
	r := &engine.Runner{Inventory: inv, Connect: func(ctx context.Context, h *engine.HostSpec) (transport.Conn, error) {
		c, err := dialHost(ctx, h)
		if err != nil {
			return nil, err
		}
		return dialCounter{Conn: c, dials: &dials}, nil
	}}
	if err := r.Run(context.Background(), pb, engine.Inputs{}); err != nil {
		t.Fatal(err)
	}
	if posts.Load() != 1 || dials.Load() < 2 {
		t.Errorf("%d POSTs, %d connections through SSH; want 1 and at least 2", posts.Load(), dials.Load())
	}
}

// TestHTTPEmptyHeaderNotSent: a header whose value renders empty (an
// optional token that is not set) is left out, not sent empty.
func TestHTTPEmptyHeaderNotSent(t *testing.T) {
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, ok := r.Header["Authorization"]
		seen = append(seen, fmt.Sprintf("%v %q", ok, r.Header.Get("Authorization")))
	}))
	t.Cleanup(srv.Close)
	src := taking("http", "api", `secrets:
  token: {env: TOKEN, optional: true}
steps:
  - http:
      url: ${{ params.api }}/x
      headers: {Authorization: '${{ secrets.token != "" ? "Bearer " + secrets.token : "" }}'}
`)
	for _, tok := range []string{"", "a-token-of-some-length"} {
		if _, err := runPlaybook(t, src, runOpts{params: map[string]string{"api": srv.URL}, secrets: map[string]string{"token": tok}}); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{`false ""`, `true "Bearer a-token-of-some-length"`}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("Authorization headers seen: %v, want %v", seen, want)
	}
}

// TestHTTPBodyOverLimitIsAnError: a body larger than the step reads is an
// error naming the limit, never a silent cut; one of exactly the limit is
// read whole.
func TestHTTPBodyOverLimitIsAnError(t *testing.T) {
	for _, n := range []int{1 << 20, 1<<20 + 1} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(strings.Repeat("x", n)))
		}))
		src := taking("http-big", "base", `steps:
  - id: get
    http:
      url: ${{ params.base }}/big
      method: GET
    assert: len(result.body) == 1048576
`)
		_, err := runPlaybook(t, src, given("base", srv.URL))
		srv.Close()
		switch {
		case n == 1<<20 && err != nil:
			t.Errorf("a body of exactly the limit: %v", err)
		case n > 1<<20 && (err == nil || !strings.Contains(err.Error(), "larger than 1MiB")):
			t.Errorf("a body over the limit: %v", err)
		}
	}
}
