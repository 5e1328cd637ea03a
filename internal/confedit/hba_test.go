package confedit

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/internal/testpg"
)

// TestEnsureHBALineAsPostgreSQLMatches: a rule made present by
// EnsureHBALine admits, after a reload, the connection it is written for,
// in the shapes where appending it would leave it shadowed (PostgreSQL
// takes the first rule that matches): a catch-all reject at the end, a
// broader earlier rule with another method, the rule already present but
// after a reject. A second run changes nothing.
func TestEnsureHBALineAsPostgreSQLMatches(t *testing.T) {
	s := testpg.Start(t)
	s.Psql(t, "CREATE ROLE rbtest LOGIN")
	file := filepath.Join(s.Data, "pg_hba.conf")
	const rule = "host all rbtest 127.0.0.1/32 trust"
	base := "local all all trust\n"
	tests := []struct {
		name, hba string
		match     *regexp.Regexp
	}{
		{"catch-all reject at the end", base + "host all all 0.0.0.0/0 reject\n", nil},
		{"broader earlier rule, another method", base + "host all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n", nil},
		{"present but after a reject", base + "host    all   all   127.0.0.0   255.0.0.0   reject  # loopback\n" + rule + "\n", nil},
		{"replaced in place after a samehost reject", base + "hostnossl all all samehost reject\nhost all rbtest 127.0.0.1/32 md5\n", regexp.MustCompile(`^host all rbtest `)},
		{"database list over white space", base + "host postgres, template1 all 127.0.0.1/32 reject\n", nil},
		{"reject continued over two lines", base + "host all all \\\n   127.0.0.1/32 reject\n", nil},
		// PostgreSQL 15 joins a comment ending in a backslash with the next
		// line: a rule appended there would be part of the comment.
		{"comment ending in a backslash at the end", base + "# allow the app from C:\\\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, ch, err := EnsureHBALine(tt.hba, rule, tt.match)
			if err != nil || len(ch) != 1 {
				t.Fatalf("EnsureHBALine: %v %v", ch, err)
			}
			if again, ch, err := EnsureHBALine(out, rule, tt.match); err != nil || len(ch) != 0 || again != out {
				t.Fatalf("second run changed %v %v:\n%s", ch, err, again)
			}
			if err := os.WriteFile(file, []byte(out), 0o600); err != nil {
				t.Fatal(err)
			}
			s.Psql(t, "SELECT pg_reload_conf()")
			if errs := s.Psql(t, "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL"); strings.TrimSpace(errs) != "0" {
				t.Fatalf("PostgreSQL refuses the file:\n%s", out)
			}
			// The reload is asynchronous; pg_hba_file_rules reads the file
			// itself, so wait for the postmaster to have loaded it.
			var last []byte
			for i := 0; i < 50; i++ {
				cmd := exec.Command("/usr/bin/psql", "-X", "-w", "-A", "-t", "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-U", "rbtest", "-d", "postgres", "-c", "SELECT current_user")
				cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
				last, err = cmd.CombinedOutput()
				if err == nil && strings.TrimSpace(string(last)) == "rbtest" {
					return
				}
				exec.Command("sleep", "0.1").Run()
			}
			t.Fatalf("PostgreSQL refuses the connection the rule admits: %s\n--- pg_hba.conf ---\n%s", last, out)
		})
	}
}

// TestEnsureHBALineRefuses: when the rule would make a rule of the file
// never apply, nothing changes and the error names that rule.
func TestEnsureHBALineRefuses(t *testing.T) {
	in := "local all all peer\nhost all all 0.0.0.0/0 reject\n"
	out, ch, err := EnsureHBALine(in, "host all all 0.0.0.0/0 scram-sha-256", nil)
	if err == nil || out != in || ch != nil || !strings.Contains(err.Error(), `line 2 "host all all 0.0.0.0/0 reject"`) {
		t.Fatalf("EnsureHBALine = %q %v %v, want a refusal naming line 2", out, ch, err)
	}
	// Replication connections are not matched by "all": no move needed.
	in = "host all all 0.0.0.0/0 reject\n"
	out, _, err = EnsureHBALine(in, "host replication repl 10.0.0.12/32 scram-sha-256", nil)
	if err != nil || out != in+"host replication repl 10.0.0.12/32 scram-sha-256\n" {
		t.Fatalf("replication rule after an all reject: %q %v", out, err)
	}
}
