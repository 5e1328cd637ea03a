package lab

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The stand-in's API: the endpoints the bundled playbooks call, with the
// status codes inmanta-server gives them.

func (s *Standin) mux() *http.ServeMux {
	mux := http.NewServeMux()
	if s.version.HasHealth() {
		// methods_v2.health: no authentication (enforce_auth=False).
		mux.HandleFunc("GET /api/v2/health", s.health)
	}
	mux.HandleFunc("GET /api/v1/serverstatus", s.authorized(s.serverStatus))
	mux.HandleFunc("GET /api/v2/environment", s.authorized(s.environments))
	mux.HandleFunc("POST /api/v1/notify/{env}", s.authorized(s.notify))
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// withDB answers a request with f, given a connection to the database as
// the server's own client, for five seconds at most; a connection refused
// is a server error.
func (s *Standin) withDB(w http.ResponseWriter, r *http.Request, f func(ctx context.Context, c *pgx.Conn)) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	c, err := s.connect(ctx, "inmanta-server-standin")
	if err != nil {
		serverError(w, err)
		return
	}
	defer c.Close(context.Background())
	f(ctx, c)
}

// serverError answers a request that failed on the server's side: a 500
// with the error as its message.
func serverError(w http.ResponseWriter, err error) {
	writeJSON(w, http.StatusInternalServerError, map[string]any{"message": err.Error()})
}

// databaseConnected is DatabaseService.get_connection_status: a
// connection of the pool can be had. It reads nothing and writes nothing,
// so it holds while writes wait for a synchronous standby that is down.
func (s *Standin) databaseConnected(ctx context.Context) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := s.connect(ctx, "inmanta-server-standin")
	if err != nil {
		return false, err.Error()
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// health is Server.health: 200 when every slice reports OK, else 500
// (never 503), with no body of meaning.
func (s *Standin) health(w http.ResponseWriter, r *http.Request) {
	if ok, _ := s.databaseConnected(r.Context()); !ok {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// serverStatus is get_server_status: the version, and the database
// slice's status.
func (s *Standin) serverStatus(w http.ResponseWriter, r *http.Request) {
	ok, why := s.databaseConnected(r.Context())
	status := "ok"
	if !ok {
		status = "error"
	}
	db := map[string]any{"connected": ok, "database": s.db.Name, "host": s.db.Host}
	if why != "" {
		db["error"] = why
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"product": "inmanta-server stand-in (runbook lab)", "version": s.version.String(), "status": status,
		"slices": []any{map[string]any{"name": "core.database", "status": db}},
	}})
}

func (s *Standin) environments(w http.ResponseWriter, r *http.Request) {
	s.withDB(w, r, func(ctx context.Context, c *pgx.Conn) {
		rows, err := c.Query(ctx, "SELECT id, name, halted FROM standin_environment ORDER BY name")
		if err != nil {
			serverError(w, err)
			return
		}
		envs := []map[string]any{}
		for rows.Next() {
			var id, name string
			var halted bool
			if err := rows.Scan(&id, &name, &halted); err != nil {
				serverError(w, err)
				return
			}
			envs = append(envs, map[string]any{"id": id, "name": name, "halted": halted})
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": envs})
	})
}

// notify is notify_change: a recompile of the environment, with update
// (pull the project and its modules first) true unless the body says
// otherwise; a halted environment is recompiled as any other.
func (s *Standin) notify(w http.ResponseWriter, r *http.Request) {
	env := r.PathValue("env")
	body := struct {
		Update *bool `json:"update"`
	}{}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"message": "the body is not JSON: " + err.Error()})
			return
		}
	}
	update := body.Update == nil || *body.Update
	s.withDB(w, r, func(ctx context.Context, c *pgx.Conn) {
		tag, err := c.Exec(ctx, "INSERT INTO standin_recompile (environment, update_sources, halted, server) SELECT id, $2, halted, $3 FROM standin_environment WHERE id = $1", env, update, s.host)
		if err != nil {
			serverError(w, err)
			return
		}
		if tag.RowsAffected() == 0 {
			writeJSON(w, http.StatusNotFound, map[string]any{"message": "Request or referenced resource does not exist: environment " + env})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{})
	})
}

// standinAuth is server.auth with the HS256 issuers of the
// [auth_jwt_*] sections (src/inmanta/protocol/auth/auth.py).
type standinAuth struct {
	issuers map[string]jwtIssuer
}

type jwtIssuer struct {
	key      []byte
	audience string
}

func loadAuth(c *StandinConfig) (*standinAuth, error) {
	on, err := c.Bool("server", "auth", false)
	if err != nil || !on {
		return nil, err
	}
	a := &standinAuth{issuers: map[string]jwtIssuer{}}
	for _, sec := range c.Sections("auth_jwt_") {
		if alg := strings.ToUpper(c.Get(sec, "algorithm", "")); alg != "HS256" {
			return nil, fmt.Errorf("[%s]: the stand-in knows algorithm HS256 only, not %q", sec, alg)
		}
		key, err := base64.URLEncoding.DecodeString(padBase64(c.Get(sec, "key", "")))
		if err != nil || len(key) < 32 {
			return nil, fmt.Errorf("[%s]: HS256 requires a key of 32 bytes (256 bits) or longer, base64url-encoded", sec)
		}
		iss := c.Get(sec, "issuer", "https://localhost:8888/")
		a.issuers[iss] = jwtIssuer{key: key, audience: c.Get(sec, "audience", iss)}
	}
	if len(a.issuers) == 0 {
		return nil, errors.New("server.auth is on but no [auth_jwt_*] section configures a key")
	}
	return a, nil
}

func padBase64(s string) string {
	if m := len(s) % 4; m != 0 {
		s += strings.Repeat("=", 4-m)
	}
	return s
}

// authorized wraps an endpoint that needs a token when auth is on: none
// is 401, one that does not verify or is not for the api client type 403.
func (s *Standin) authorized(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.auth == nil {
			h(w, r)
			return
		}
		hdr := r.Header.Get("Authorization")
		if hdr == "" {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Access to this resource is unauthorized."})
			return
		}
		tok, ok := strings.CutPrefix(hdr, "Bearer ")
		if !ok {
			writeJSON(w, http.StatusForbidden, map[string]any{"message": "Unable to decode provided JWT bearer token."})
			return
		}
		if why := s.auth.verify(tok, time.Now()); why != "" {
			writeJSON(w, http.StatusForbidden, map[string]any{"message": why})
			return
		}
		h(w, r)
	}
}

// verify returns why a token is refused, in the server's words, or "".
func (a *standinAuth) verify(tok string, now time.Time) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "Unable to decode provided JWT bearer token."
	}
	var header struct {
		Alg string `json:"alg"`
	}
	var claims map[string]any
	for i, v := range []any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, v) != nil {
			return "Unable to decode provided JWT bearer token."
		}
	}
	iss, _ := claims["iss"].(string)
	is, ok := a.issuers[iss]
	if !ok {
		return "Unknown issuer for token"
	}
	if !strings.EqualFold(header.Alg, "HS256") {
		return fmt.Sprintf("Algorithm %s is not supported.", header.Alg)
	}
	mac := hmac.New(sha256.New, is.key)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
		return "Signature verification failed"
	}
	if !claimHas(claims["aud"], is.audience) {
		return "Invalid audience"
	}
	if exp, ok := claims["exp"].(float64); ok && now.Unix() >= int64(exp) {
		return "Signature has expired"
	}
	ct := "api"
	if v, ok := claims["urn:inmanta:ct"]; ok {
		ct = fmt.Sprint(v)
		if l, ok := v.([]any); ok {
			var s []string
			for _, x := range l {
				s = append(s, fmt.Sprint(x))
			}
			ct = strings.Join(s, ",")
		}
	}
	if !slices.Contains(strings.Split(strings.ReplaceAll(ct, " ", ""), ","), "api") {
		return "The token is not valid for the api client type"
	}
	return ""
}

func claimHas(v any, want string) bool {
	switch x := v.(type) {
	case string:
		return x == want
	case []any:
		for _, e := range x {
			if e == want {
				return true
			}
		}
	}
	return false
}

// StandinToken signs a token as `inmanta-cli token create` does
// (encode_token): HS256, iss and aud of the issuer, the client types in
// urn:inmanta:ct. key is the section's base64url key.
func StandinToken(key, issuer string, clientTypes ...string) (string, error) {
	k, err := base64.URLEncoding.DecodeString(padBase64(key))
	if err != nil {
		return "", err
	}
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	head := enc(map[string]string{"alg": "HS256", "typ": "JWT"}) + "." +
		enc(map[string]any{"iss": issuer, "aud": []string{issuer}, "urn:inmanta:ct": strings.Join(clientTypes, ","), "iat": time.Now().Unix()})
	mac := hmac.New(sha256.New, k)
	mac.Write([]byte(head))
	return head + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)), nil
}
