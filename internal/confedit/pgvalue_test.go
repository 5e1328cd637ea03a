package confedit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/internal/testpg"
)

// TestStandbyNamesAsPostgreSQLReads writes synchronous_standby_names the
// way file-patch and pg-settings do and has PostgreSQL read it on reload:
// the server takes the value (pg_file_settings has no error, SHOW gives
// it), and it means the names given.
func TestStandbyNamesAsPostgreSQLReads(t *testing.T) {
	var conf string
	s := testpg.StartPrepared(t, func(data string) {
		conf = filepath.Join(data, "runbook.conf")
		f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString("include_if_exists = 'runbook.conf'\n"); err != nil {
			t.Fatal(err)
		}
	})
	tests := []struct{ in, want string }{
		{"pg-standby-2", `"pg-standby-2"`},
		{"inmanta", "inmanta"},
		{"FIRST 1 (pg-standby-2, inmanta)", `FIRST 1 ("pg-standby-2", inmanta)`},
		{`any 2 (a, "b c", d.e, first)`, `ANY 2 (a, "b c", "d.e", "first")`},
		{"2 (s1, s2)", "2 (s1, s2)"},
		{"*", "*"},
		{`it's`, `"it's"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v, err := PGValue("synchronous_standby_names", tt.in)
			if err != nil || v != tt.want {
				t.Fatalf("PGValue(%q) = %q %v, want %q", tt.in, v, err, tt.want)
			}
			text, _ := Set("", "synchronous_standby_names", v)
			if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			s.Psql(t, "SELECT pg_reload_conf()")
			var show string
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				if show = strings.TrimSpace(s.Psql(t, "SHOW synchronous_standby_names")); show == tt.want {
					break
				}
			}
			errs := strings.TrimSpace(s.Psql(t, "SELECT coalesce(string_agg(error, '; '), '') FROM pg_file_settings WHERE name = 'synchronous_standby_names' AND error IS NOT NULL"))
			if show != tt.want || errs != "" {
				log, _ := exec.Command("tail", "-5", filepath.Join(s.Dir, "postgres.log")).Output()
				t.Fatalf("PostgreSQL reads %q (errors: %q), want %q; wrote:\n%s\nlog:\n%s", show, errs, tt.want, text, log)
			}
		})
	}
	// Malformed by PostgreSQL's grammar: refused, as PostgreSQL refuses
	// the author's text, never quoted into valid names no standby has.
	for _, bad := range []string{"FIRST (s1, s2)", "ANY 1 s1, s2", "2 (s1, s2", "s1, s2)", "FIRST 0 (a)", "s1 s2", "FIRST 1 (s1 s2)", "s1, s2 s3", "application_name=s1"} {
		if v, err := PGValue("synchronous_standby_names", bad); err == nil {
			t.Errorf("PGValue(%q) = %q, want a refusal", bad, v)
		}
		text, _ := Set("", "synchronous_standby_names", "'"+bad+"'")
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if errs := strings.TrimSpace(s.Psql(t, "SELECT count(*) FROM pg_file_settings WHERE name = 'synchronous_standby_names' AND error IS NOT NULL")); errs != "1" {
			t.Errorf("PostgreSQL accepts %q as written: the case is not malformed", bad)
		}
	}
	if _, err := PGValue("synchronous_standby_names", `a, b"c`); err == nil {
		t.Fatal("a stray double quote was accepted")
	}
}

// TestParseStandbyNames: the method, the number and the names as
// syncrep_gram.y reads them (a bare list is FIRST 1; quotes undone).
func TestParseStandbyNames(t *testing.T) {
	tests := []struct {
		in   string
		want SyncStandbys
	}{
		{"", SyncStandbys{}},
		{"inmanta", SyncStandbys{"FIRST", 1, []string{"inmanta"}}},
		{"pg-standby-2, Inmanta", SyncStandbys{"FIRST", 1, []string{"pg-standby-2", "Inmanta"}}},
		{`any 2 (a, "b ""c""", first)`, SyncStandbys{"ANY", 2, []string{"a", `b "c"`, "first"}}},
		{"3 (s1, s2, s3)", SyncStandbys{"FIRST", 3, []string{"s1", "s2", "s3"}}},
		{"FIRST 1 (*)", SyncStandbys{"FIRST", 1, []string{"*"}}},
	}
	for _, tt := range tests {
		got, err := ParseStandbyNames(tt.in)
		if err != nil || got.Method != tt.want.Method || got.Num != tt.want.Num || strings.Join(got.Names, "|") != strings.Join(tt.want.Names, "|") {
			t.Errorf("ParseStandbyNames(%q) = %+v %v, want %+v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"FIRST 0 (a)", "ANY 1 s1, s2", `a, b"c`} {
		if got, err := ParseStandbyNames(bad); err == nil {
			t.Errorf("ParseStandbyNames(%q) = %+v, want a refusal", bad, got)
		}
	}
}
