package steps

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/expr-lang/expr/types"

	"github.com/runbook-dev/runbook/internal/diag"

	"github.com/runbook-dev/runbook/internal/tmpl"
)

// HTTP calls an HTTP API.
var HTTP Type = kind{decodeHTTP, Descriptor{
	Name:   "http",
	Doc:    "call an HTTP API (health checks, orchestrator endpoints); status and JSON body as the result",
	Result: types.Map{"status": types.Int, "body": types.String, "json": types.Any, "headers": tmpl.AnyMap},
	Fields: []Field{
		{Name: "url", Kind: String, Required: true, Doc: "the URL; a ${{ }} at its start is the base URL, in the host a host name or port, in the path one escaped segment, in the query an escaped value", Example: "http://${{ host.address }}:8888/api/v2/health"},
		{Name: "method", Kind: Literal, Doc: "HTTP method; GET and HEAD are read-only", Enum: []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}, Default: "GET"},
		{Name: "headers", Kind: StringMap, Doc: "request headers; one whose value is empty is not sent (an optional token)", Example: map[string]any{"Authorization": "${{ secrets.token != \"\" ? \"Bearer \" + secrets.token : \"\" }}"}},
		{Name: "body", Kind: String, Doc: "request body as text", Example: `{"update": true}`},
		{Name: "json", Kind: Any, Doc: "request body as JSON (sets Content-Type)", Example: map[string]any{"update": true}},
		{Name: "expect_status", Kind: IntList, Doc: "statuses that mean success (default any 2xx)", Example: []int{200}},
		{Name: "via_ssh", Kind: Bool, Doc: "connect through the host's SSH connection"},
		{Name: "read_only", Kind: Bool, Doc: "the call changes nothing even though its method is not GET: run it in plan and probes"},
		{Name: "idempotent", Kind: Bool, Doc: "running it twice has the effect of running it once, so a resume may run it again when a crash left its outcome unknown (PUT and DELETE are by definition; without it a POST or PATCH makes a resume stop and ask)"},
	},
}}

type httpStep struct {
	idempotent     bool
	url, body      *tmpl.Template
	jsonBody       *Value
	method         string
	headers        map[string]*tmpl.Template
	expect         []int
	viaSSH, rdOnly bool
}

// decodeHTTP builds a step of the type from its body (Type.Decode).
func decodeHTTP(d *Decoder, b Body) Step {
	h := &httpStep{url: d.TemplateIn(b.Get("url"), tmpl.URL), method: d.Literal(b.Get("method")), headers: d.TemplateMap(b.Get("headers"), "headers"),
		expect: d.IntList(b.Get("expect_status")), viaSSH: d.Bool(b.Get("via_ssh")), rdOnly: d.Bool(b.Get("read_only")), idempotent: d.Bool(b.Get("idempotent"))}
	if h.method == "" {
		h.method = http.MethodGet
	}
	if n := b.Get("body"); n != nil {
		h.body = d.Template(n)
	}
	if n := b.Get("json"); n != nil {
		if h.body != nil {
			d.Errorf(n, diag.RuleInvalidValue, "http has both body and json: use one")
		}
		h.jsonBody = d.AnyValue(n)
	}
	return h
}

func (h *httpStep) readOnly() bool {
	return h.rdOnly || h.method == http.MethodGet || h.method == http.MethodHead
}

const maxBody = 1 << 20

func (h *httpStep) do(ctx context.Context, x *Exec) (Result, error) {
	u, err := h.url.Render(x.Env)
	if err != nil {
		return nil, err
	}
	var body io.Reader
	ctype := ""
	switch {
	case h.body != nil:
		s, err := h.body.Render(x.Env)
		if err != nil {
			return nil, err
		}
		body = strings.NewReader(s)
	case h.jsonBody != nil:
		v, err := h.jsonBody.Eval(x.Env)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		body, ctype = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, h.method, u, body)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	hdrs, err := Render(h.headers, x.Env)
	if err != nil {
		return nil, err
	}
	for k, v := range hdrs {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	tr := &http.Transport{DisableKeepAlives: true}
	if h.viaSSH {
		conn, err := x.Connect(ctx)
		if err != nil {
			return nil, err
		}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return conn.Dial(ctx, network, addr)
		}
	}
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	// One byte past the limit tells a body of exactly the limit from a
	// larger one: never a silent cut (a body missing its end can pass an
	// assert it would fail).
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxBody {
		return nil, fmt.Errorf("the answer (status %d) has a body larger than %s, which the step reads at most: ask for less (a narrower query), or fetch it with capture", resp.StatusCode, FormatSize(maxBody))
	}
	headers := map[string]any{}
	for k := range resp.Header {
		headers[strings.ToLower(k)] = resp.Header.Get(k)
	}
	r := Result{"status": resp.StatusCode, "body": string(data), "json": nil, "headers": headers}
	var js any
	if len(data) > 0 && json.Unmarshal(data, &js) == nil {
		r["json"] = js
	}
	return r, nil
}

func (h *httpStep) check(x *Exec, r Result) error {
	st := r["status"].(int)
	if len(h.expect) == 0 && st >= 200 && st < 300 || slices.Contains(h.expect, st) {
		return nil
	}
	// Redacted before it is trimmed and cut: a server that echoes a
	// secret must not leave a piece of it in the message.
	body := Cut(strings.TrimSpace(x.Redact.String(r["body"].(string))), 200)
	return fmt.Errorf("HTTP status %d: %s", st, body)
}

// Probe makes a read-only call; a call that could change something is
// refused rather than made.
func (h *httpStep) Probe(ctx context.Context, x *Exec) (Result, error) {
	if !h.readOnly() {
		return nil, fmt.Errorf("a probe must not change anything: %s is not read-only (use GET, or set read_only: true if this call changes nothing)", h.method)
	}
	return h.do(ctx, x)
}

// Plan makes read-only calls for real.
func (h *httpStep) Plan(ctx context.Context, x *Exec) (*Plan, error) {
	u, err := h.url.Render(x.Env)
	if err != nil {
		return nil, err
	}
	if !h.readOnly() {
		return &Plan{Changes: true, Summary: h.method + " " + u}, nil
	}
	r, err := h.do(ctx, x)
	if err != nil {
		return nil, err
	}
	if err := h.check(x, r); err != nil {
		return nil, err
	}
	return &Plan{Summary: fmt.Sprintf("%s %s: %d", h.method, u, r["status"]), Result: r}, nil
}

// Apply makes the call.
func (h *httpStep) Apply(ctx context.Context, x *Exec, _ *Plan) (Result, error) {
	r, err := h.do(ctx, x)
	if err != nil {
		return nil, err
	}
	return r, h.check(x, r)
}

// MayChange implements Changer.
func (h *httpStep) MayChange() bool { return !h.readOnly() }

// Rechecks implements Rechecker: PUT and DELETE are idempotent by
// RFC 9110; POST and PATCH only when the author says so.
func (h *httpStep) Rechecks() bool {
	return h.readOnly() || h.idempotent || h.method == http.MethodPut || h.method == http.MethodDelete
}
