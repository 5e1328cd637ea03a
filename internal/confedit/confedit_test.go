package confedit

import (
	"regexp"
	"testing"
)

const pgConf = `# - Connection Settings -

#listen_addresses = 'localhost'		# what IP address(es) to listen on;
port = 5432				# (change requires restart)
#wal_level = replica			# minimal, replica, or logical
synchronous_commit = off
# synchronous_standby_names is a list
#synchronous_standby_names = ''	# standby servers that provide sync rep
`

func TestSet(t *testing.T) {
	tests := []struct {
		name, key, value, want string
		changed                bool
	}{
		{"uncomment default in place", "listen_addresses", "*",
			"listen_addresses = '*'\t\t# what IP address(es) to listen on;", true},
		{"replace active", "synchronous_commit", "on", "synchronous_commit = on", true},
		{"same number unchanged", "port", "5432", "", false},
		{"prose comment is not an assignment", "synchronous_standby_names", "inmanta",
			"synchronous_standby_names = 'inmanta'\t# standby servers that provide sync rep", true},
		{"append when absent", "hot_standby", "off", "hot_standby = off", true},
		{"quote in value doubled", "application_name", "it's", "application_name = 'it''s'", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, changes := Set(pgConf, tt.key, tt.value)
			if (len(changes) > 0) != tt.changed {
				t.Fatalf("changes = %v, want changed=%v", changes, tt.changed)
			}
			if !tt.changed {
				if out != pgConf {
					t.Fatal("text changed although nothing was to change")
				}
				return
			}
			if !containsLine(out, tt.want) {
				t.Errorf("no line %q in\n%s", tt.want, out)
			}
			again, changes := Set(out, tt.key, tt.value)
			if len(changes) != 0 || again != out {
				t.Errorf("second Set changed %v", changes)
			}
		})
	}
}

func TestSetKeepsUnquotedEquivalent(t *testing.T) {
	in := "wal_level = replica\n"
	if out, ch := Set(in, "wal_level", "replica"); len(ch) != 0 || out != in {
		t.Fatalf("unquoted equal value rewritten: %q %v", out, ch)
	}
}

func TestComment(t *testing.T) {
	out, ch := Comment("a = 1\nsynchronous_standby_names = 'inmanta' # sync\n", "synchronous_standby_names")
	if len(ch) != 1 || out != "a = 1\n#synchronous_standby_names = 'inmanta' # sync\n" {
		t.Fatalf("got %q %v", out, ch)
	}
	if again, ch := Comment(out, "synchronous_standby_names"); len(ch) != 0 || again != out {
		t.Fatalf("second comment changed: %v", ch)
	}
}

func TestUnset(t *testing.T) {
	out, ch := Unset("a = 1\nb = 2\n#b = 3\n", "b")
	if len(ch) != 1 || out != "a = 1\n#b = 3\n" {
		t.Fatalf("got %q %v", out, ch)
	}
}

func TestIniSet(t *testing.T) {
	in := "[server]\nbind=0.0.0.0\n\n[database]\nhost=10.0.0.1\nname=inmanta\n\n[other]\nx=1\n"
	out, ch, _ := IniSet(in, "database", "host", "10.0.0.2", ConfigParser)
	if len(ch) != 1 || out != "[server]\nbind=0.0.0.0\n\n[database]\nhost=10.0.0.2\nname=inmanta\n\n[other]\nx=1\n" {
		t.Fatalf("got %q", out)
	}
	if again, ch, _ := IniSet(out, "database", "host", "10.0.0.2", ConfigParser); len(ch) != 0 || again != out {
		t.Fatalf("second set changed %v", ch)
	}
	out, _, _ = IniSet(in, "database", "port", "5432", ConfigParser)
	if out != "[server]\nbind=0.0.0.0\n\n[database]\nhost=10.0.0.1\nname=inmanta\nport=5432\n\n[other]\nx=1\n" {
		t.Fatalf("added key in wrong place: %q", out)
	}
	out, _, _ = IniSet("", "database", "host", "h", ConfigParser)
	if out != "[database]\nhost=h\n" {
		t.Fatalf("new section: %q", out)
	}
}

func TestEnsureLine(t *testing.T) {
	hba := "local all postgres peer\nhost    replication     replication      10.0.0.1/32        md5\n"
	if out, ch := EnsureLine(hba, "host replication replication 10.0.0.1/32 md5", nil); len(ch) != 0 || out != hba {
		t.Fatalf("same fields should be unchanged, got %v", ch)
	}
	out, ch := EnsureLine(hba, "host replication replication 10.0.0.2/32 md5", nil)
	if len(ch) != 1 || !containsLine(out, "host replication replication 10.0.0.2/32 md5") {
		t.Fatalf("not appended: %q", out)
	}
	out, ch = EnsureLine(hba, "host replication replication 10.0.0.1/32 scram-sha-256", regexp.MustCompile(`^host\s+replication\s+replication\s+10\.0\.0\.1/32`))
	if len(ch) != 1 || containsLine(out, "host    replication     replication      10.0.0.1/32        md5") {
		t.Fatalf("not replaced: %q", out)
	}
	out, ch = RemoveLine(hba, "host replication replication 10.0.0.1/32 md5", nil)
	if len(ch) != 1 || out != "local all postgres peer\n" {
		t.Fatalf("not removed: %q", out)
	}
}

func containsLine(text, line string) bool {
	for _, l := range split(text) {
		if l == line {
			return true
		}
	}
	return false
}

func TestQuoteEscapesBackslash(t *testing.T) {
	in := `password='it\'s'`
	want := `'password=''it\\''s'''`
	if got := Quote(in); got != want {
		t.Fatalf("Quote(%q) = %s, want %s", in, got, want)
	}
	if got := Unquote(want); got != in {
		t.Fatalf("Unquote = %q, want %q", got, in)
	}
	out, _ := Set("", "primary_conninfo", in)
	if again, ch := Set(out, "primary_conninfo", in); len(ch) != 0 || again != out {
		t.Fatalf("not idempotent: %v", ch)
	}
}
