package confedit

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/internal/testsshd"
)

// configparserGet reads text with Python's configparser in its default,
// strict mode, and returns [section] key, or fails the test with what
// configparser said.
func configparserGet(t *testing.T, text, section, key string) string {
	return pythonGet(t, text, section, key, "configparser.ConfigParser()")
}

// inmantaGet reads text as the Inmanta server does (inmanta-core's
// config.py: a configparser whose optionxform replaces _ by - before
// lower-casing, strict), and returns [section] key.
func inmantaGet(t *testing.T, text, section, key string) string {
	return pythonGet(t, text, section, key, `type("Lenient", (configparser.ConfigParser,), {"optionxform": lambda self, name: name.replace("_", "-").lower()})(interpolation=None)`)
}

// pythonGet reads [section] key of text with the Python parser parser
// builds, or fails the test with what the parser said.
func pythonGet(t *testing.T, text, section, key, parser string) string {
	t.Helper()
	_, err := exec.LookPath("python3")
	testsshd.Require(t, err == nil, "python3 is not installed (apt-get install python3)")
	file := filepath.Join(t.TempDir(), "database.cfg")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	script := "import configparser, json, sys\nc = " + parser + "\nc.read(sys.argv[1])\nprint(json.dumps(c.get(sys.argv[2], sys.argv[3], raw=True)))"
	out, err := exec.Command("python3", "-c", script, file, section, key).CombinedOutput()
	if err != nil {
		t.Fatalf("the reader refuses the result: %v\n%s\n--- file ---\n%s", err, out, text)
	}
	var v string
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("reader output %q: %v", out, err)
	}
	return v
}

// TestIniSetAsConfigparserReads sets a key in every line form configparser
// accepts and checks, with configparser itself, that the file is still
// readable (no second section, no second key) and holds the new value.
func TestIniSetAsConfigparserReads(t *testing.T) {
	tests := []struct {
		name, in, section, key, want string
		changed                      bool
	}{
		{"colon separator", "[database]\nhost: 10.0.0.5\nname: inmanta\n", "database", "host", "[database]\nhost: 10.0.0.6\nname: inmanta\n", true},
		{"key in another case", "[database]\nHost=10.0.0.5\n", "database", "host", "[database]\nHost=10.0.0.6\n", true},
		{"comment after the header", "[database] ; the orchestrator's database\nhost=10.0.0.5\n", "database", "host", "[database] ; the orchestrator's database\nhost=10.0.0.6\n", true},
		{"hash comment after the header", "[database]   # db\nport=5432\n", "database", "host", "[database]   # db\nport=5432\nhost=10.0.0.6\n", true},
		{"white space around", "  [database]  \n   host   =   10.0.0.5   \n", "database", "host", "  [database]  \n   host   =   10.0.0.6\n", true},
		{"continuation lines replaced whole", "[database]\nhost = 10.0.0.5\n  10.0.0.7\n\n    10.0.0.8\nname = x\n", "database", "host", "[database]\nhost = 10.0.0.6\nname = x\n", true},
		{"commented key is not the key", "[database]\n# host = 10.0.0.1\n; host=10.0.0.2\n  # host: 3\nname=x\n", "database", "host", "[database]\n# host = 10.0.0.1\n; host=10.0.0.2\n  # host: 3\nname=x\nhost=10.0.0.6\n", true},
		{"key added after a multi-line value", "[database]\nname = a\n  b\n\n[server]\nx=1\n", "database", "host", "[database]\nname = a\n  b\nhost=10.0.0.6\n\n[server]\nx=1\n", true},
		{"section name is case-sensitive", "[Database]\nhost=1\n", "database", "host", "[Database]\nhost=1\n\n[database]\nhost=10.0.0.6\n", true},
		{"same value unchanged", "[database]\nHOST : 10.0.0.6 \n", "database", "host", "[database]\nHOST : 10.0.0.6 \n", false},
		{"empty file", "", "database", "host", "[database]\nhost=10.0.0.6\n", true},
		{"DEFAULT section", "[DEFAULT]\nhost=1\n[database]\nname=x\n", "DEFAULT", "host", "[DEFAULT]\nhost=10.0.0.6\n[database]\nname=x\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, ch, err := IniSet(tt.in, tt.section, tt.key, "10.0.0.6", ConfigParser)
			if err != nil {
				t.Fatal(err)
			}
			if (len(ch) > 0) != tt.changed || out != tt.want {
				t.Fatalf("IniSet = %q %v, want %q (changed %v)", out, ch, tt.want, tt.changed)
			}
			if got := configparserGet(t, out, tt.section, tt.key); got != "10.0.0.6" {
				t.Fatalf("configparser reads [%s] %s = %q, want 10.0.0.6", tt.section, tt.key, got)
			}
			if again, ch, err := IniSet(out, tt.section, tt.key, "10.0.0.6", ConfigParser); err != nil || len(ch) != 0 || again != out {
				t.Fatalf("second IniSet changed %v %v", ch, err)
			}
		})
	}
}

// TestIniSetRefuses: a file configparser refuses, or a key or value it
// would read otherwise, is refused before any change, naming the line.
func TestIniSetRefuses(t *testing.T) {
	tests := []struct{ name, in, key, value, want string }{
		{"duplicate section", "[database]\nhost=1\n[database] ; again\nport=2\n", "host", "x", "line 3: section [database] appears again (first on line 1)"},
		{"duplicate key", "[database]\nhost=1\nHost: 2\n", "host", "x", "line 3: Host appears again in [database] (first on line 2, as host)"},
		{"line before any section", "host=1\n[database]\n", "host", "x", "line 1"},
		{"key with a delimiter", "[database]\n", "a=b", "x", "holds = or :"},
		{"value with a line break", "[database]\n", "host", "a\nb", "line break"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, ch, err := IniSet(tt.in, "database", tt.key, tt.value, ConfigParser)
			if err == nil || !strings.Contains(err.Error(), tt.want) || out != tt.in || ch != nil {
				t.Fatalf("IniSet = %q %v %v, want the error %q and no change", out, ch, err, tt.want)
			}
		})
	}
}

// TestIniSetAsInmantaReads: with the Inmanta reader, _ and - in a key are
// one key: the existing spelling is edited, never a second one added
// (which the server refuses at start-up), and a file holding both is
// refused before any change.
func TestIniSetAsInmantaReads(t *testing.T) {
	in := "[database]\nconnection_pool_max_size = 10\nhost = a\n"
	out, ch, err := IniSet(in, "database", "connection-pool-max-size", "20", Inmanta)
	if err != nil || len(ch) != 1 || out != "[database]\nconnection_pool_max_size = 20\nhost = a\n" {
		t.Fatalf("got %q %v %v", out, ch, err)
	}
	if v := inmantaGet(t, out, "database", "connection_pool_max_size"); v != "20" {
		t.Fatalf("the server reads %q", v)
	}
	// configparser alone keeps them apart: the key is added.
	if out, _, err := IniSet(in, "database", "connection-pool-max-size", "20", ConfigParser); err != nil || !strings.Contains(out, "connection-pool-max-size=20") {
		t.Fatalf("configparser: %q %v", out, err)
	}
	if _, _, err := IniSet("[database]\nwait_time=1\nwait-time=2\n", "database", "host", "x", Inmanta); err == nil || !strings.Contains(err.Error(), "Inmanta") {
		t.Fatalf("both spellings: %v", err)
	}
}

// TestIniLinesAsPythonReads: indentation counted in characters (a
// no-break space is one), a bare CR refused.
func TestIniLinesAsPythonReads(t *testing.T) {
	in := "[database]\n\u00a0host = a\n  port = 5432\n"
	// Python reads "  port = 5432" as the continuation of host's value.
	if v := configparserGet(t, in, "database", "host"); v != "a\nport = 5432" {
		t.Fatalf("configparser reads host as %q", v)
	}
	out, _, err := IniSet(in, "database", "port", "5433", ConfigParser)
	if err != nil {
		t.Fatal(err)
	}
	if v := configparserGet(t, out, "database", "port"); v != "5433" {
		t.Fatalf("configparser reads port as %q in\n%s", v, out)
	}
	if _, _, err := IniSet("[database]\rhost = a\rport = 1\r", "database", "port", "2", ConfigParser); err == nil || !strings.Contains(err.Error(), "carriage return") {
		t.Fatalf("bare CR: %v", err)
	}
	if out, _, err := IniSet("[database]\r\nhost = a\r\n", "database", "host", "b", ConfigParser); err != nil || configparserGet(t, out, "database", "host") != "b" {
		t.Fatalf("CRLF: %q %v", out, err)
	}
}
