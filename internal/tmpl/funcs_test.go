package tmpl

import (
	"reflect"
	"testing"
)

// TestScramRoundTrip checks verify against compute; the format is checked
// against a real PostgreSQL in steps (TestSQLScramPassword).
func TestScramRoundTrip(t *testing.T) {
	got, err := scramWith("pencil", []byte("0123456789abcdef"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	if !ScramVerify(got, "pencil") || ScramVerify(got, "pencil2") {
		t.Fatalf("verify failed for %s", got)
	}
	v, err := ScramVerifier("s3cret")
	if err != nil || !ScramVerify(v, "s3cret") {
		t.Fatalf("%s %v", v, err)
	}
	if ScramVerify("md5abc", "x") {
		t.Fatal("an md5 hash verified")
	}
}

// TestSyncStandbys: the judgement restore-sync makes with it, on the
// value PostgreSQL reads (the names lower-cased as PostgreSQL compares
// them).
func TestSyncStandbys(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want any
	}{
		{`sync_standbys("FIRST 2 (Inmanta, \"pg-3\")").num`, 2},
		{`sync_standbys("Inmanta, pg3").method`, "FIRST"},
		{`"inmanta" in sync_standbys("ANY 1 (Inmanta, \"pg-3\")").names`, true},
		{`"pg-3" in sync_standbys("ANY 1 (Inmanta, \"pg-3\")").names`, true},
		{`len(sync_standbys("").names)`, 0},
		// pg_strcasecmp folds ASCII letters only.
		{`sync_standbys("\"Ép3\", ABC").names`, []any{"Ép3", "abc"}},
	} {
		e, err := Compile(tc.src, &Scope{})
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		got, err := e.Eval(map[string]any{})
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s = %v %v, want %v", tc.src, got, err, tc.want)
		}
	}
	e, err := Compile(`sync_standbys("FIRST 0 (a)")`, &Scope{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.Eval(map[string]any{}); err == nil {
		t.Errorf("sync_standbys of a value PostgreSQL refuses = %v, want an error", got)
	}
}
