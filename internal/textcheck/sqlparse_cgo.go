//go:build cgo

package textcheck

import (
	"errors"
	"regexp"
	"strconv"

	pgquery "github.com/pganalyze/pg_query_go/v6"
	pgerror "github.com/pganalyze/pg_query_go/v6/parser"
)

// sqlParserLinked: PostgreSQL's parser is C code (libpg_query, through
// pg_query_go), linked only with cgo.
const sqlParserLinked = true

var paramRef = regexp.MustCompile(`"ParamRef":\{"number":(\d+)(?:,"location":(\d+))?`)

// parseSQL parses text with PostgreSQL's own grammar and returns its
// syntax error, or the $n parameters it refers to.
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
	r := &sqlResult{}
	for _, m := range paramRef.FindAllStringSubmatch(tree, -1) {
		n, _ := strconv.Atoi(m[1])
		at := 0
		if m[2] != "" {
			at, _ = strconv.Atoi(m[2])
		}
		r.params = append(r.params, sqlParam{n: n, at: at})
	}
	return r
}
