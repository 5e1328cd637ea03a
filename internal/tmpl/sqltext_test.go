package tmpl

import (
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/internal/diag"
)

// TestSQLContexts: where each value lands in SQL text, and the places
// refused. What PostgreSQL makes of the quoted text is checked against a
// real server in steps (FuzzInterpolation).
func TestSQLContexts(t *testing.T) {
	v := `a'b"c`
	for _, c := range []struct {
		src, want, rule string
	}{
		{src: `SELECT 1 AS ${{ params.v }}`, want: `SELECT 1 AS "a'b""c"`},
		{src: `SELECT s.${{ params.v }}::text, "x_${{ params.v }}"`, want: `SELECT s."a'b""c"::text, "x_a'b""c"`},
		{src: `COMMENT ON TABLE t IS ${{ literal(params.v) }}`, want: `COMMENT ON TABLE t IS 'a''b"c'`},
		{src: `SELECT $1, ${{ params.v }}`, want: `SELECT $1, "a'b""c"`},
		{src: "DO $do$ BEGIN PERFORM ${{ literal(params.v) }}; END $do$", want: `DO $do$ BEGIN PERFORM 'a''b"c'; END $do$`},
		{src: "DO LANGUAGE plpgsql $$ BEGIN PERFORM ${{ literal(params.v) }}; END $$", want: `DO LANGUAGE plpgsql $$ BEGIN PERFORM 'a''b"c'; END $$`},
		{src: "SELECT 'it''s', ${{ params.v }}", want: `SELECT 'it''s', "a'b""c"`},
		{src: "SELECT E'it\\'s', ${{ params.v }}", want: `SELECT E'it\'s', "a'b""c"`},
		{src: "SELECT /* a /* nested */ comment */ ${{ params.v }}", want: `SELECT /* a /* nested */ comment */ "a'b""c"`},
		{src: "SELECT a$b$ ${{ params.v }}", want: `SELECT a$b$ "a'b""c"`},
		{src: `SELECT '${{ params.v }}'`, want: "${{ }} inside an SQL string literal", rule: diag.RuleSQLInterpolation},
		{src: `SELECT 'it''s ${{ params.v }}'`, want: "${{ }} inside an SQL string literal", rule: diag.RuleSQLInterpolation},
		{src: "SELECT E'it\\' ${{ params.v }}'", want: "${{ }} inside an SQL string literal", rule: diag.RuleSQLInterpolation},
		{src: "SELECT e'${{ params.v }}'", want: "${{ }} inside an SQL string literal", rule: diag.RuleSQLInterpolation},
		{src: "SELECT X'${{ params.v }}'", want: "${{ }} inside an SQL string literal", rule: diag.RuleSQLInterpolation},
		{src: "SELECT U&'${{ params.v }}'", want: "${{ }} inside an SQL string literal", rule: diag.RuleSQLInterpolation},
		{src: `SELECT U&"${{ params.v }}"`, want: "${{ }} inside a U&", rule: diag.RuleSQLInterpolation},
		{src: "SELECT $$${{ params.v }}$$", want: "${{ }} inside a dollar-quoted string", rule: diag.RuleSQLInterpolation},
		{src: "SELECT $q$ ${{ params.v }} $q$", want: "${{ }} inside a dollar-quoted string", rule: diag.RuleSQLInterpolation},
		{src: "CREATE FUNCTION f() RETURNS int AS $f$ SELECT ${{ params.v }} $f$ LANGUAGE sql", want: "${{ }} inside a dollar-quoted string", rule: diag.RuleSQLInterpolation},
		{src: "DO $do$ BEGIN RAISE NOTICE '${{ params.v }}'; END $do$", want: "${{ }} inside an SQL string literal", rule: diag.RuleSQLInterpolation},
		{src: "DO $do$ BEGIN EXECUTE $x$ ${{ params.v }} $x$; END $do$", want: "${{ }} inside a dollar-quoted string", rule: diag.RuleSQLInterpolation},
		{src: "SELECT $${{ params.v }}$ x $${{ params.v }}$", want: "${{ }} in the tag of a dollar quote", rule: diag.RuleSQLInterpolation},
		{src: "SELECT 1 -- ${{ params.v }}", want: "${{ }} in an SQL comment", rule: diag.RuleSQLInterpolation},
		{src: "SELECT /* ${{ params.v }} */ 1", want: "${{ }} in an SQL comment", rule: diag.RuleSQLInterpolation},
		{src: "SELECT tbl_${{ params.v }}", want: "${{ }} joined to other text", rule: diag.RuleSQLInterpolation},
		{src: "SELECT ${{ params.v }}_x", want: "${{ }} joined to other text", rule: diag.RuleSQLInterpolation},
		{src: `SELECT "a"${{ params.v }}`, want: "${{ }} joined to other text", rule: diag.RuleSQLInterpolation},
		{src: `SELECT $1${{ params.v }}`, want: "${{ }} joined to other text", rule: diag.RuleSQLInterpolation},
		{src: `SELECT "${{ literal(params.v) }}"`, want: "literal() inside a quoted identifier", rule: diag.RuleSQLInterpolation},
		{src: `DROP TABLE ${{ raw(params.v) }}`, want: "raw() inserts its value into the SQL text unquoted", rule: diag.RuleUnsafeRaw},
		{src: `SELECT ${{ raw("now()") }}`, want: "SELECT now()"},
	} {
		tp, errs := bind(t, c.src, SQL)
		if c.rule != "" {
			if len(errs) == 0 || errs[0].Rule != c.rule || !strings.HasPrefix(errs[0].Msg, c.want) {
				t.Errorf("%q: got %v, want a %s refusal starting %q", c.src, errMsgs(errs), c.rule, c.want)
			}
			continue
		}
		if len(errs) > 0 {
			t.Errorf("%q: refused: %v", c.src, errMsgs(errs))
			continue
		}
		got, err := tp.Render(map[string]any{"params": map[string]any{"v": v}})
		if err != nil || got != c.want {
			t.Errorf("%q:\n got %s (%v)\nwant %s", c.src, got, err, c.want)
		}
	}
}

// TestSQLRenderRefusals: values that no quoting can place are run-time
// errors that never show the value.
func TestSQLRenderRefusals(t *testing.T) {
	for _, c := range []struct{ src, v, want string }{
		{`SELECT ${{ params.v }}`, "", "an empty value cannot be an identifier"},
		{`SELECT ${{ params.v }}`, strings.Repeat("x", 64), "PostgreSQL would cut an identifier"},
		{`SELECT ${{ params.v }}`, "a\x00b", "NUL byte"},
		{`SELECT ${{ literal(params.v) }}`, "\xff", "not valid UTF-8"},
		{"DO $do$ BEGIN PERFORM ${{ literal(params.v) }}; END $do$", "x$do$y", "would end the dollar-quoted body"},
		{"DO $do$ BEGIN PERFORM \"a${{ params.v }}$\"; END $do$", "$do", "would end the dollar-quoted body"},
		{"DO $do$ BEGIN PERFORM \"${{ params.v }}do$\"; END $do$", "x$", "would end the dollar-quoted body"},
	} {
		tp, errs := bind(t, c.src, SQL)
		if len(errs) > 0 {
			t.Fatalf("%q: %v", c.src, errMsgs(errs))
		}
		_, err := tp.Render(map[string]any{"params": map[string]any{"v": c.v}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q with %q: %v, want %q", c.src, c.v, err, c.want)
		}
		if err != nil && len(c.v) > 5 && strings.Contains(err.Error(), c.v) {
			t.Errorf("the error shows the value: %v", err)
		}
	}
}

// TestLiteral: literal() reads the same whatever standard_conforming_strings
// says; conninfo_value and pgpass_value keep a value one field.
func TestLiteral(t *testing.T) {
	for v, want := range map[string]string{"it's": `'it''s'`, `a\b`: `E'a\\b'`, `\'`: `E'\\'''`, "": "''"} {
		if got := (SQLString{v}).String(); got != want {
			t.Errorf("literal(%q) = %s, want %s", v, got, want)
		}
	}
	for v, want := range map[string]string{"10.0.0.1": "10.0.0.1", "": "''", "a b": "'a b'", `it's\`: `'it\'s\\'`, "k=v": "'k=v'"} {
		if got, err := ConninfoValue(v); err != nil || got != want {
			t.Errorf("conninfo_value(%q) = %s %v, want %s", v, got, err, want)
		}
	}
	if _, err := ConninfoValue("a\x00"); err == nil {
		t.Error("conninfo_value took a NUL byte")
	}
	if got, err := PgpassValue(`a:b\c`); err != nil || got != `a\:b\\c` {
		t.Errorf("pgpass_value = %s %v", got, err)
	}
	if _, err := PgpassValue("a\nb"); err == nil {
		t.Error("pgpass_value took a line break")
	}
}
