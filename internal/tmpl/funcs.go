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

	"github.com/runbook-dev/runbook/internal/confedit"
)

// funcs are the functions runbook adds to expressions.
var funcs = []expr.Option{
	// raw(x) inserts x into a command line or SQL text as it is. A value
	// from outside the playbook is refused there (unsafe-raw).
	expr.Function("raw", func(args ...any) (any, error) {
		return Raw{args[0]}, nil
	}, new(func(any) Raw)),
	// literal(s) inserts s into SQL text as a quoted string literal, for
	// the statements that take no bound parameters (ALTER ROLE ...
	// PASSWORD).
	expr.Function("literal", func(args ...any) (any, error) {
		return SQLString{Format(args[0])}, nil
	}, new(func(string) SQLString)),
	// conninfo_value(s) is s as a value of a libpq connection string
	// (host=... user=...): quoted when it holds a space, a quote or a
	// backslash, so that it stays one value.
	expr.Function("conninfo_value", func(args ...any) (any, error) {
		return ConninfoValue(Format(args[0]))
	}, new(func(string) string)),
	// pgpass_value(s) is s as a field of a .pgpass line, with : and \
	// escaped. A newline cannot be written in a field: it is an error.
	expr.Function("pgpass_value", func(args ...any) (any, error) {
		return PgpassValue(Format(args[0]))
	}, new(func(string) string)),
	// standby_names(s) is s as PostgreSQL's synchronous_standby_names must
	// hold it: names that are not plain identifiers in double quotes
	// ("pg-standby-2"), the value pg-settings and file-patch write, and
	// current_setting() then returns.
	expr.Function("standby_names", func(args ...any) (any, error) {
		return confedit.StandbyNames(Format(args[0]))
	}, new(func(string) string)),
	// sync_standbys(s) reads a synchronous_standby_names value as
	// PostgreSQL does: {method: "FIRST" or "ANY", num: the number of
	// standbys a commit waits for, names: the names in order, quotes
	// undone and their ASCII letters in lower case, as PostgreSQL matches
	// them with a standby's application_name (pg_strcasecmp in syncrep.c,
	// SyncRepGetStandbyPriority: ASCII letters only)}; "" gives num 0 and no names. A value
	// PostgreSQL refuses is an error.
	expr.Function("sync_standbys", func(args ...any) (any, error) {
		v, err := confedit.ParseStandbyNames(Format(args[0]))
		if err != nil {
			return nil, err
		}
		names := make([]any, len(v.Names))
		for i, n := range v.Names {
			names[i] = asciiLower(n)
		}
		return map[string]any{"method": v.Method, "num": v.Num, "names": names}, nil
	}, new(func(string) map[string]any)),
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

// Raw marks a value that a template inserts without quoting.
type Raw struct{ Value any }

// SQLString marks a value that SQL text takes as a string literal
// (literal()).
type SQLString struct{ Value string }

// String is the value as an SQL string literal: in single quotes with
// quotes doubled, and as an escape string (E'...') with backslashes
// doubled too when it has any, which reads the same whatever
// standard_conforming_strings says.
func (s SQLString) String() string {
	v := strings.ReplaceAll(s.Value, "'", "''")
	if strings.Contains(v, `\`) {
		return "E'" + strings.ReplaceAll(v, `\`, `\\`) + "'"
	}
	return "'" + v + "'"
}

// unmark returns the plain value of a marked one: what a template with
// no language inserts.
func unmark(v any) any {
	switch v := v.(type) {
	case Raw:
		return v.Value
	case SQLString:
		return v.String()
	}
	return v
}

// ConninfoValue writes s as one value of a libpq key=value connection
// string: as it is when it is plain, otherwise in single quotes with \
// and ' escaped by a backslash (libpq skips spaces after key=, so an
// empty value is quoted too). A NUL byte would end the string: it is an
// error.
func ConninfoValue(s string) (string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return "", errors.New("conninfo_value: a connection string cannot hold a NUL byte")
	}
	if s != "" && !strings.ContainsAny(s, " \t\n\r\v\f'\\=") {
		return s, nil
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'", nil
}

// PgpassValue writes s as a field of a .pgpass line, escaping : and \.
// A line break cannot be written in a field.
func PgpassValue(s string) (string, error) {
	if strings.ContainsAny(s, "\r\n\x00") {
		return "", errors.New("pgpass_value: a .pgpass field cannot hold a line break or a NUL byte")
	}
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(s), nil
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

// asciiLower folds A-Z to a-z and leaves every other byte as it is, as
// PostgreSQL's pg_strcasecmp compares.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}
