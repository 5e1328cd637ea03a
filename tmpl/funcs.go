package tmpl

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
)

// funcs are the functions runbook adds to expressions.
var funcs = []expr.Option{
	// raw(x) inserts x into a command line or SQL text as it is.
	expr.Function("raw", func(args ...any) (any, error) {
		return Raw{args[0]}, nil
	}, new(func(any) Raw)),
	// literal(s) inserts s into SQL text as a quoted string literal, for
	// the statements that take no bound parameters (ALTER ROLE ...
	// PASSWORD).
	expr.Function("literal", func(args ...any) (any, error) {
		return Raw{"'" + strings.ReplaceAll(Format(args[0]), "'", "''") + "'"}, nil
	}, new(func(string) Raw)),
	// scram_sha256(password) is the SCRAM-SHA-256 verifier PostgreSQL
	// stores for a password: setting a role's password with it keeps the
	// plain text out of the server's logs and views.
	expr.Function("scram_sha256", func(args ...any) (any, error) {
		return ScramVerifier(Format(args[0]))
	}, new(func(string) string)),
	// scram_verify(verifier, password) reports whether a stored verifier
	// (pg_authid.rolpassword) is that of password.
	expr.Function("scram_verify", func(args ...any) (any, error) {
		return ScramVerify(Format(args[0]), Format(args[1])), nil
	}, new(func(string, string) bool)),
}

const scramIterations = 4096

// ScramVerifier computes a SCRAM-SHA-256 verifier with a random salt, in
// PostgreSQL's format.
func ScramVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return scramWith(password, salt, scramIterations)
}

func scramWith(password string, salt []byte, iter int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, 32)
	if err != nil {
		return "", err
	}
	clientKey := hmacSHA256(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iter, b64(salt), b64(stored[:]), b64(serverKey)), nil
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// ScramVerify reports whether verifier is the SCRAM-SHA-256 verifier of
// password.
func ScramVerify(verifier, password string) bool {
	iter, salt, err := parseScram(verifier)
	if err != nil {
		return false
	}
	again, err := scramWith(password, salt, iter)
	return err == nil && hmac.Equal([]byte(again), []byte(verifier))
}

func parseScram(v string) (int, []byte, error) {
	rest, ok := strings.CutPrefix(v, "SCRAM-SHA-256$")
	if !ok {
		return 0, nil, errors.New("not a SCRAM-SHA-256 verifier")
	}
	params, _, ok := strings.Cut(rest, "$")
	if !ok {
		return 0, nil, errors.New("malformed verifier")
	}
	it, saltB64, ok := strings.Cut(params, ":")
	if !ok {
		return 0, nil, errors.New("malformed verifier")
	}
	iter, err := strconv.Atoi(it)
	if err != nil {
		return 0, nil, err
	}
	salt, err := base64.StdEncoding.DecodeString(saltB64)
	return iter, salt, err
}
