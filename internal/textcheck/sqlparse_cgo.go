//go:build cgo

package textcheck

import (
	"encoding/json"
	"errors"
	"strings"

	pgquery "github.com/pganalyze/pg_query_go/v6"
	pgerror "github.com/pganalyze/pg_query_go/v6/parser"
)

// sqlParserLinked: PostgreSQL's parser is C code (libpg_query, through
// pg_query_go), linked only with cgo.
const sqlParserLinked = true

// parseSQL parses text with PostgreSQL's own grammar and returns its
// syntax error, or its statements and the $n parameters they refer to.
func parseSQL(text string) *sqlResult {
	tree, err := pgquery.ParseToJSON(text)
	if err != nil {
		r := &sqlResult{err: err.Error()}
		var pe *pgerror.Error
		if errors.As(err, &pe) {
			r.err = pe.Message
			r.errAt = runeOffset(text, pe.Cursorpos)
		}
		return r
	}
	var parsed struct {
		Stmts []struct {
			Stmt     any `json:"stmt"`
			Location int `json:"stmt_location"`
			Len      int `json:"stmt_len"`
		} `json:"stmts"`
	}
	if err := json.Unmarshal([]byte(tree), &parsed); err != nil {
		return &sqlResult{err: "pg_query's parse tree does not read as JSON: " + err.Error()}
	}
	r := &sqlResult{}
	for _, s := range parsed.Stmts {
		r.stmts = append(r.stmts, s.Location)
		r.params = paramRefs(s.Stmt, r.params)
		end := len(text)
		if s.Len > 0 {
			end = min(s.Location+s.Len, len(text))
		}
		if e, ok := plpgsqlError(text[s.Location:end], s.Stmt); ok {
			e.at += s.Location
			r.bodyErrs = append(r.bodyErrs, e)
		}
	}
	return r
}

// plpgsqlError parses the PL/pgSQL body of a DO block or of a CREATE
// FUNCTION ... LANGUAGE plpgsql statement (stmt, of text) with
// PostgreSQL's PL/pgSQL parser, and returns its error, placed on the
// body's first character: that parser says what is wrong, not where.
func plpgsqlError(text string, stmt any) (sqlErr, bool) {
	m, _ := stmt.(map[string]any)
	var fn, lang string
	var body map[string]any
	if do, ok := m["DoStmt"].(map[string]any); ok {
		lang, body = languageAndBody(list(do["args"]), "plpgsql")
		if lang != "plpgsql" || body == nil {
			return sqlErr{}, false
		}
		src := sval(body["arg"])
		tag := "$rbdo$"
		for strings.Contains(src, tag) {
			tag = tag[:len(tag)-1] + "q$"
		}
		fn = "CREATE FUNCTION rbdo() RETURNS void LANGUAGE plpgsql AS " + tag + src + tag
	} else if cf, ok := m["CreateFunctionStmt"].(map[string]any); ok {
		lang, body = languageAndBody(list(cf["options"]), "")
		if lang != "plpgsql" || body == nil {
			return sqlErr{}, false
		}
		fn = text
	} else {
		return sqlErr{}, false
	}
	_, err := pgquery.ParsePlPgSqlToJSON(fn)
	if err == nil {
		return sqlErr{}, false
	}
	msg := err.Error()
	var pe *pgerror.Error
	if errors.As(err, &pe) {
		msg = pe.Message
	}
	at, _ := body["location"].(float64)
	return sqlErr{msg: msg, at: bodyStart(text, int(at))}, true
}

// bodyStart returns the offset of the string that follows AS at or after
// off in text (a $$ or ' quote): where a function's body starts.
func bodyStart(text string, off int) int {
	for i := off; i < len(text); i++ {
		if text[i] == '$' || text[i] == '\'' {
			return i
		}
	}
	return off
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// languageAndBody reads the LANGUAGE and AS definitions among defs (a DO
// block's args, a CREATE FUNCTION's options): the language, lang where
// none is given, and the AS definition, nil where there is none.
func languageAndBody(defs []any, lang string) (string, map[string]any) {
	var body map[string]any
	for _, a := range defs {
		switch d := defElem(a); d["defname"] {
		case "language":
			lang = sval(d["arg"])
		case "as":
			body = d
		}
	}
	return lang, body
}

func defElem(v any) map[string]any {
	m, _ := v.(map[string]any)
	d, _ := m["DefElem"].(map[string]any)
	return d
}

// sval reads a String node, or a List of one (a function's AS).
func sval(v any) string {
	m, _ := v.(map[string]any)
	if s, ok := m["String"].(map[string]any); ok {
		str, _ := s["sval"].(string)
		return str
	}
	if l, ok := m["List"].(map[string]any); ok {
		if items := list(l["items"]); len(items) > 0 {
			return sval(items[0])
		}
	}
	return ""
}

// paramRefs appends the locations of the $n of a parse tree that the
// driver binds: not those of a function's SQL-standard body (BEGIN
// ATOMIC ... END, RETURN ...) nor of a prepared statement's query, which
// are the function's and the prepared statement's own parameters.
func paramRefs(node any, at []int) []int {
	switch n := node.(type) {
	case []any:
		for _, v := range n {
			at = paramRefs(v, at)
		}
	case map[string]any:
		for k, v := range n {
			switch k {
			case "ParamRef":
				// The number is read from the text: the parser keeps it
				// in 32 bits, and leaves $0 out of its JSON.
				if m, ok := v.(map[string]any); ok {
					loc, _ := m["location"].(float64)
					at = append(at, int(loc))
				}
				continue
			case "CreateFunctionStmt":
				if m, ok := v.(map[string]any); ok {
					v = without(m, "sql_body")
				}
			case "PrepareStmt":
				if m, ok := v.(map[string]any); ok {
					v = without(m, "query")
				}
			}
			at = paramRefs(v, at)
		}
	}
	return at
}

func without(m map[string]any, key string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}
