package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDebInstalls builds the .deb, installs it on this machine with
// apt-get, and runs what it installed: runbook version, the man pages and
// the bash completion (through the bash-completion package's loader, as
// an interactive bash finds it). Then it removes the package. It needs
// root and apt-get (Debian); without them it is skipped.
func TestDebInstalls(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("installing a package needs root")
	}
	for _, p := range []string{"dpkg", "apt-get", "bash"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s is not installed: this test installs the .deb on a Debian machine", p)
		}
	}
	if err := exec.Command("dpkg", "-s", "runbook").Run(); err == nil {
		t.Skip("a runbook package is installed on this machine already: this test does not replace it")
	}
	out := t.TempDir()
	const version = "0.0.1-test"
	if err := build(version, out, []string{"deb"}); err != nil {
		t.Fatal(err)
	}
	debs, _ := filepath.Glob(filepath.Join(out, "runbook_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("want one runbook_*.deb in %s, have %v", out, debs)
	}
	t.Logf("built %s", filepath.Base(debs[0]))
	sh := func(script string) string {
		t.Helper()
		cmd := exec.Command("bash", "-c", script)
		cmd.Dir = out
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, b)
		}
		return string(b)
	}
	// Another apt-get may hold the lock for a while (a shared machine).
	sh("apt-get install -y -o DPkg::Lock::Timeout=300 ./runbook_*.deb")
	t.Cleanup(func() {
		if b, err := exec.Command("apt-get", "remove", "-y", "--purge", "-o", "DPkg::Lock::Timeout=300", "runbook").CombinedOutput(); err != nil {
			t.Errorf("apt-get remove runbook: %v\n%s", err, b)
		}
	})
	if got := sh("/usr/bin/runbook version"); got != "runbook "+version+"\n" {
		t.Errorf("the installed runbook version says %q", got)
	}
	// The man pages, gzipped where man reads them, and read by man.
	for page, want := range map[string]string{"runbook": "runbook-run(1)", "runbook-run": "--inventory", "runbook-runs-prune": "--older-than"} {
		f, err := os.Open("/usr/share/man/man1/" + page + ".1.gz")
		if err != nil {
			t.Errorf("man page %s: %v", page, err)
			continue
		}
		z, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		text, _ := io.ReadAll(z)
		f.Close()
		if !bytes.Contains(text, []byte(`.TH "RUNBOOK"`)) {
			t.Errorf("%s.1.gz is not a man page:\n%.300s", page, text)
		}
		if got := sh("MANPAGER=cat MANWIDTH=200 man " + page + " 2>&1"); !strings.Contains(strings.ReplaceAll(got, "\\-", "-"), want) {
			t.Errorf("man %s does not show %q:\n%s", page, want, got)
		}
	}
	// The bash completion, loaded on demand from where the package put it
	// (as bash-completion does at the first TAB), completes a bundled
	// playbook's name by asking the installed binary.
	got := sh(`source /usr/share/bash-completion/bash_completion
_completion_loader runbook
COMP_LINE="runbook run pg-ha/pro"; COMP_POINT=${#COMP_LINE}; COMP_WORDS=(runbook run pg-ha/pro); COMP_CWORD=2; COMP_TYPE=9
__start_runbook runbook pg-ha/pro run 2>/dev/null # compopt: no TAB pressed
printf '%s\n' "${COMPREPLY[@]}"`)
	if strings.TrimSpace(got) != "pg-ha/promote-standby" {
		t.Errorf("the installed bash completion of runbook run pg-ha/pro gives %q, want pg-ha/promote-standby", got)
	}
	for _, f := range []string{"/usr/share/zsh/vendor-completions/_runbook", "/usr/share/fish/vendor_completions.d/runbook.fish"} {
		if b, err := os.ReadFile(f); err != nil || !bytes.Contains(b, []byte("__complete")) {
			t.Errorf("%s: not a completion script of runbook (%v)", f, err)
		}
	}
}
