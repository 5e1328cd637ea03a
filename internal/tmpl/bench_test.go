package tmpl

import "testing"

// BenchmarkShellBind: binding a command with quotes and a substitution,
// which takes the shell parser (plain commands do not).
func BenchmarkShellBind(b *testing.B) {
	src := `if test -f ${{ params.v }}/standby.signal; then echo a standby; else echo "databases: $(ls ${{ params.v }}/base 2>/dev/null | wc -l)"; fi`
	benchBind(b, src, Shell)
}

// BenchmarkSQLBind: binding SQL text.
func BenchmarkSQLBind(b *testing.B) {
	src := `DO $do$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = ${{ literal(params.v) }}) THEN ALTER ROLE ${{ params.v }} LOGIN; END IF; END $do$`
	benchBind(b, src, SQL)
}

// benchBind parses src and binds it to lang, b.N times.
func benchBind(b *testing.B, src string, lang Lang) {
	s := testScope()
	for b.Loop() {
		t, errs := ParseTemplate(src, s)
		if len(errs) > 0 {
			b.Fatal(errs[0].Msg)
		}
		if errs := t.In(lang); len(errs) > 0 {
			b.Fatal(errs[0].Msg)
		}
	}
}
