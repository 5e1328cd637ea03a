//go:build cgo

package textcheck

import (
	"encoding/json"
	"errors"

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
		} `json:"stmts"`
	}
	if err := json.Unmarshal([]byte(tree), &parsed); err != nil {
		return &sqlResult{err: "pg_query's parse tree does not read as JSON: " + err.Error()}
	}
	r := &sqlResult{}
	for _, s := range parsed.Stmts {
		r.stmts = append(r.stmts, s.Location)
		r.params = paramRefs(s.Stmt, r.params)
	}
	return r
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
