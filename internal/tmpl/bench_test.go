package tmpl

import "testing"

// BenchmarkShellBind: binding a command with quotes and a substitution,
// which takes the shell parser (plain commands do not).
func BenchmarkShellBind(b *testing.B) {
	src := `if test -f ${{ params.v }}/standby.signal; then echo a standby; else echo "databases: $(ls ${{ params.v }}/base 2>/dev/null | wc -l)"; fi`
	s := testScope()
	for b.Loop() {
		t, errs := ParseTemplate(src, s)
		if len(errs) > 0 {
			b.Fatal(errs[0].Msg)
		}
		if errs := t.In(Shell); len(errs) > 0 {
			b.Fatal(errs[0].Msg)
		}
	}
}

// BenchmarkSQLBind: binding SQL text.
func BenchmarkSQLBind(b *testing.B) {
	src := `DO $do$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = ${{ literal(params.v) }}) THEN ALTER ROLE ${{ params.v }} LOGIN; END IF; END $do$`
	s := testScope()
	for b.Loop() {
		t, errs := ParseTemplate(src, s)
		if len(errs) > 0 {
			b.Fatal(errs[0].Msg)
		}
		if errs := t.In(SQL); len(errs) > 0 {
			b.Fatal(errs[0].Msg)
		}
	}
}
