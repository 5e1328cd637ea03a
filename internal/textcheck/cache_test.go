package textcheck_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/diag"
	"github.com/runbook-dev/runbook/internal/textcheck"
	"github.com/runbook-dev/runbook/steps"
)

// cachedPlaybook holds shell texts with findings in every form of scalar
// whose positions are mapped apart: plain, double-quoted, literal block,
// folded block, a flow mapping; and a clean one. tag makes the texts its
// own.
func cachedPlaybook(tag string) []byte {
	return fmt.Appendf(nil, `version: 1
name: t/cached
steps:
  - id: plain
    ssh-exec:
      command: if [ -f $marker ]; then echo %[1]s; fi
      read_only: true
  - id: quoted
    ssh-exec:
      command: "echo \"%[1]s\" $HOME"
      read_only: true
  - id: block
    ssh-exec:
      read_only: true
      command: |
        echo %[1]s
        if true; then
          echo no fi
  - id: folded
    ssh-exec:
      read_only: true
      command: >
        ls %[1]s
        $HOME
  - id: flow
    ssh-exec: {command: "cat %[1]s $FILE", read_only: true}
  - id: clean
    ssh-exec:
      command: echo "%[1]s"
      read_only: true
`, tag)
}

// cachedTexts is the number of distinct shell texts of cachedPlaybook.
const cachedTexts = 6

// checkWith validates the files with a checker made as cfg says, and
// returns every diagnostic of each file as text, and the checker's
// counts.
func checkWith(t *testing.T, cfg textcheck.Config, files map[string][]byte) (map[string]string, textcheck.Stats) {
	t.Helper()
	got, st, err := checkCache(t, cfg, files)
	if err != nil {
		t.Fatal(err)
	}
	return got, st
}

// cachedOnce checks a.yaml (cachedPlaybook("a")) with the real shellcheck:
// once without a cache, for the findings every later check must give, then
// with cfg's cache (a fresh directory where cfg names none), which that
// check fills. It returns the files, those findings and the config used.
func cachedOnce(t *testing.T, cfg textcheck.Config) (map[string][]byte, map[string]string, textcheck.Config) {
	t.Helper()
	cfg.Shellcheck = shellcheck(t)
	files := map[string][]byte{"a.yaml": cachedPlaybook("a")}
	want, _ := checkWith(t, textcheck.Config{Shellcheck: cfg.Shellcheck}, files)
	if cfg.CacheDir == "" {
		cfg.CacheDir = t.TempDir()
	}
	checkWith(t, cfg, files)
	return files, want, cfg
}

// checkCache is checkWith, returning why the cache was not used.
func checkCache(t *testing.T, cfg textcheck.Config, files map[string][]byte) (map[string]string, textcheck.Stats, error) {
	t.Helper()
	c := textcheck.NewWithConfig(context.Background(), cfg)
	l := &engine.Loader{Registry: steps.Builtin(), Inside: c}
	got := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, src := range files {
		wg.Go(func() {
			_, ds := l.Load(name, src)
			mu.Lock()
			got[name] = diagText(ds)
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	cerr := c.CacheErr()
	if n, err := c.CacheWriteErr(); err != nil {
		t.Fatalf("%d entries not written: %v", n, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return got, c.Stats(), cerr
}

func diagText(ds []*diag.Diagnostic) string {
	var lines []string
	for _, d := range ds {
		lines = append(lines, fmt.Sprintf("%s (%s)", d, d.Severity))
	}
	return strings.Join(lines, "\n")
}

// sameFindings fails unless got and want hold the same findings, file by
// file, positions included.
func sameFindings(t *testing.T, got, want map[string]string) {
	t.Helper()
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s:\n got %s\nwant %s", name, got[name], w)
		}
	}
}

// entries returns the paths of the cache's entries.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	ps, err := filepath.Glob(filepath.Join(dir, "??", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// TestCacheSecondRun: a second validate of the same files runs shellcheck
// on nothing, and reports the same findings at the same positions as the
// first, and as a run without the cache.
func TestCacheSecondRun(t *testing.T) {
	sc := shellcheck(t)
	files := map[string][]byte{"a.yaml": cachedPlaybook("a"), "b.yaml": cachedPlaybook("b")}
	want, _ := checkWith(t, textcheck.Config{Shellcheck: sc}, files)
	for _, rule := range []string{"a.yaml:6:24: warning: Double quote to prevent globbing and word splitting. [shellcheck:SC2086]", "a.yaml:17:9: Couldn't find 'fi'", "a.yaml:10:28: warning", "a.yaml:24:9: warning", "a.yaml:26:32: warning"} {
		if !strings.Contains(want["a.yaml"], rule) {
			t.Fatalf("the playbook does not give %q:\n%s", rule, want["a.yaml"])
		}
	}
	// The real shellcheck, each start logged with its arguments.
	log := filepath.Join(t.TempDir(), "log")
	logged := fakeShellcheck(t, fmt.Sprintf("echo \"$*\" >> %s\nexec %s \"$@\"\n", log, sc))
	cfg := textcheck.Config{Shellcheck: logged, CacheDir: t.TempDir()}
	first, st := checkWith(t, cfg, files)
	sameFindings(t, first, want)
	if st != (textcheck.Stats{Checked: 2 * cachedTexts}) {
		t.Errorf("first run: %+v, want %d texts checked", st, 2*cachedTexts)
	}
	if n := len(entries(t, cfg.CacheDir)); n != 2*cachedTexts {
		t.Errorf("%d entries, want %d", n, 2*cachedTexts)
	}
	if err := os.Remove(log); err != nil {
		t.Fatal(err)
	}
	second, st := checkWith(t, cfg, files)
	sameFindings(t, second, want)
	if st != (textcheck.Stats{Cached: 2 * cachedTexts}) {
		t.Errorf("second run: %+v, want shellcheck run on nothing", st)
	}
	// shellcheck started once, to say its version (part of the key).
	if b, err := os.ReadFile(log); err != nil || string(b) != "--version\n" {
		t.Errorf("shellcheck was run with %q (%v), want --version only", b, err)
	}
}

// TestCacheChangedText: a changed text misses the cache, the others hit.
func TestCacheChangedText(t *testing.T) {
	sc := shellcheck(t)
	cfg := textcheck.Config{Shellcheck: sc, CacheDir: t.TempDir()}
	checkWith(t, cfg, map[string][]byte{"a.yaml": cachedPlaybook("a")})
	changed := []byte(strings.Replace(string(cachedPlaybook("a")), "cat a $FILE", "cat a  $FILE", 1))
	got, st := checkWith(t, cfg, map[string][]byte{"a.yaml": changed})
	if st != (textcheck.Stats{Checked: 1, Cached: cachedTexts - 1}) {
		t.Errorf("%+v, want the changed text checked, the others cached", st)
	}
	if !strings.Contains(got["a.yaml"], "a.yaml:26:33: warning") {
		t.Errorf("the changed text's finding is not at its new column:\n%s", got["a.yaml"])
	}
}

// TestCacheDamagedEntry: an entry cut short, altered, of another format
// or empty is ignored, the text checked again and the entry rewritten.
func TestCacheDamagedEntry(t *testing.T) {
	files, want, cfg := cachedOnce(t, textcheck.Config{})
	es := entries(t, cfg.CacheDir)
	if len(es) != cachedTexts {
		t.Fatalf("%d entries, want %d", len(es), cachedTexts)
	}
	damage := []func([]byte) []byte{
		func(b []byte) []byte { return b[:len(b)-3] },
		func(b []byte) []byte { return []byte(strings.Replace(string(b), `"line":`, `"line":1`, 1)) },
		func(b []byte) []byte { return []byte(strings.Replace(string(b), "findings 1 ", "findings 0 ", 1)) },
		func([]byte) []byte { return nil },
	}
	for i, f := range damage {
		b, err := os.ReadFile(es[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(es[i], f(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, st := checkWith(t, cfg, files)
	sameFindings(t, got, want)
	if st != (textcheck.Stats{Checked: len(damage), Cached: cachedTexts - len(damage)}) {
		t.Errorf("%+v, want the %d damaged entries checked again", st, len(damage))
	}
	got, st = checkWith(t, cfg, files)
	sameFindings(t, got, want)
	if st != (textcheck.Stats{Cached: cachedTexts}) {
		t.Errorf("after the rewrite: %+v, want every text cached", st)
	}
}

// TestCacheOtherShellcheck: another version of shellcheck misses the
// entries of the first.
func TestCacheOtherShellcheck(t *testing.T) {
	sc := shellcheck(t)
	// The real shellcheck, saying another version.
	other := fakeShellcheck(t, fmt.Sprintf("[ \"$1\" = --version ] && { echo 'version: 0.0.1'; exit 0; }\nexec %s \"$@\"\n", sc))
	dir := t.TempDir()
	files := map[string][]byte{"a.yaml": cachedPlaybook("a")}
	want, _ := checkWith(t, textcheck.Config{Shellcheck: sc, CacheDir: dir}, files)
	got, st := checkWith(t, textcheck.Config{Shellcheck: other, CacheDir: dir}, files)
	sameFindings(t, got, want)
	if st != (textcheck.Stats{Checked: cachedTexts}) {
		t.Errorf("%+v, want every text checked by the other version", st)
	}
	if _, st := checkWith(t, textcheck.Config{Shellcheck: sc, CacheDir: dir}, files); st != (textcheck.Stats{Cached: cachedTexts}) {
		t.Errorf("the first version again: %+v, want its entries kept", st)
	}
}

// TestCacheConcurrentRuns: validates sharing the cache at once (as
// several CI jobs on one runner do) each get the findings of a run
// without it, and leave whole entries.
func TestCacheConcurrentRuns(t *testing.T) {
	sc := shellcheck(t)
	files := map[string][]byte{}
	for i := range 40 {
		files[fmt.Sprintf("p%d.yaml", i)] = cachedPlaybook(fmt.Sprintf("p%d", i))
	}
	want, _ := checkWith(t, textcheck.Config{Shellcheck: sc}, files)
	cfg := textcheck.Config{Shellcheck: sc, CacheDir: t.TempDir()}
	var wg sync.WaitGroup
	runs := make([]map[string]string, 3)
	for i := range runs {
		wg.Go(func() {
			runs[i], _ = checkWith(t, cfg, files)
		})
	}
	wg.Wait()
	for _, got := range runs {
		sameFindings(t, got, want)
	}
	got, st := checkWith(t, cfg, files)
	sameFindings(t, got, want)
	if st != (textcheck.Stats{Cached: len(files) * cachedTexts}) {
		t.Errorf("after the concurrent runs: %+v, want every text cached", st)
	}
	if tmp, _ := filepath.Glob(filepath.Join(cfg.CacheDir, "*", ".tmp-*")); len(tmp) > 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

// TestCacheUnwritable: a cache that cannot be written is said, and the
// checks are whole without it.
func TestCacheUnwritable(t *testing.T) {
	sc := shellcheck(t)
	dir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"a.yaml": cachedPlaybook("a")}
	want, _ := checkWith(t, textcheck.Config{Shellcheck: sc}, files)
	c := textcheck.NewWithConfig(context.Background(), textcheck.Config{Shellcheck: sc, CacheDir: dir})
	l := &engine.Loader{Registry: steps.Builtin(), Inside: c}
	_, ds := l.Load("a.yaml", files["a.yaml"])
	if got := diagText(ds); got != want["a.yaml"] {
		t.Errorf("got %s\nwant %s", got, want["a.yaml"])
	}
	if err := c.CacheErr(); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("CacheErr() = %v, want the directory named", err)
	}
}

// forge rewrites every entry of the cache in dir as whoever can write
// the directory could: findings none, the checksum made anew.
func forge(t *testing.T, dir string) {
	t.Helper()
	for _, p := range entries(t, dir) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		head, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(head)
		sum := sha256.Sum256([]byte("[]"))
		f[len(f)-1] = hex.EncodeToString(sum[:])
		if err := os.WriteFile(p, []byte(strings.Join(f, " ")+"\n[]"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCacheUntrusted: a cache directory that others can write, or one
// of the directories above it up to the one given, is not used (its
// entries could hide findings), and says where and why; the findings
// are those of a run without the cache. The same forged entries in a
// private directory are read: the user's own files are trusted.
func TestCacheUntrusted(t *testing.T) {
	top := filepath.Join(t.TempDir(), "given")
	dir := filepath.Join(top, "shellcheck")
	files, want, cfg := cachedOnce(t, textcheck.Config{CacheDir: dir, CacheTop: top})
	forge(t, dir)
	for _, tt := range []struct {
		name, path string
		mode       os.FileMode
		owner      int
		why        string
	}{
		{"the cache directory world-writable", dir, 0o777, -1, "can be written by others (mode 0777)"},
		{"the cache directory group-writable", dir, 0o770, -1, "can be written by others (mode 0770)"},
		{"the directory given group-writable", top, 0o775, -1, "can be written by others (mode 0775)"},
		{"the cache directory another user's", dir, 0o700, 65534, "belongs to user 65534"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.owner >= 0 {
				if os.Geteuid() != 0 {
					t.Skip("giving a directory to another user needs root")
				}
				if err := os.Chown(tt.path, tt.owner, -1); err != nil {
					t.Fatal(err)
				}
				defer os.Chown(tt.path, 0, -1)
			}
			if err := os.Chmod(tt.path, tt.mode); err != nil {
				t.Fatal(err)
			}
			defer os.Chmod(tt.path, 0o700)
			got, st, err := checkCache(t, cfg, files)
			sameFindings(t, got, want)
			if st != (textcheck.Stats{Checked: cachedTexts}) {
				t.Errorf("%+v, want every text checked", st)
			}
			if err == nil || !strings.Contains(err.Error(), tt.path+" "+tt.why) {
				t.Errorf("CacheErr() = %v, want %q", err, tt.path+" "+tt.why)
			}
		})
	}
	// Private again: the forged entries are read (what the checks
	// above kept them from hiding).
	if _, st := checkWith(t, cfg, files); st != (textcheck.Stats{Cached: cachedTexts}) {
		t.Errorf("private: %+v, want the forged entries read", st)
	}
}

// TestCacheOthersEntries: an entry that is not the user's is a miss,
// and is written again.
func TestCacheOthersEntries(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another user needs root")
	}
	files, want, cfg := cachedOnce(t, textcheck.Config{})
	forge(t, cfg.CacheDir)
	for _, p := range entries(t, cfg.CacheDir) {
		if err := os.Chown(p, 65534, -1); err != nil {
			t.Fatal(err)
		}
	}
	got, st := checkWith(t, cfg, files)
	sameFindings(t, got, want)
	if st != (textcheck.Stats{Checked: cachedTexts}) {
		t.Errorf("%+v, want every text checked", st)
	}
	if _, st := checkWith(t, cfg, files); st != (textcheck.Stats{Cached: cachedTexts}) {
		t.Errorf("after the rewrite: %+v, want every text cached", st)
	}
}

// TestCacheNotRegular: a FIFO or a link where an entry or the trim's mark
// is does not block validate (an open of a FIFO waits for a writer) nor
// is followed: each is a miss, and replaced by a file.
func TestCacheNotRegular(t *testing.T) {
	files, want, cfg := cachedOnce(t, textcheck.Config{})
	es := entries(t, cfg.CacheDir)
	// A link to an entry forged elsewhere.
	forged := t.TempDir()
	if err := os.Mkdir(filepath.Join(forged, filepath.Base(filepath.Dir(es[1]))), 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(es[1])
	if err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(forged, filepath.Base(filepath.Dir(es[1])), filepath.Base(es[1]))
	if err := os.WriteFile(outside, b, 0o600); err != nil {
		t.Fatal(err)
	}
	forge(t, forged)
	mark := filepath.Join(cfg.CacheDir, "trimmed")
	for _, p := range []string{es[0], es[1], mark} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, es[1]); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{es[0], mark} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	type result struct {
		got map[string]string
		st  textcheck.Stats
	}
	done := make(chan result, 1)
	go func() {
		got, st := checkWith(t, cfg, files)
		done <- result{got, st}
	}()
	select {
	case r := <-done:
		sameFindings(t, r.got, want)
		if r.st != (textcheck.Stats{Checked: 2, Cached: cachedTexts - 2}) {
			t.Errorf("%+v, want the FIFO and the link misses", r.st)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("validate still blocked after 2 minutes on a FIFO in the cache")
	}
	for _, p := range []string{es[0], es[1], mark} {
		if st, err := os.Lstat(p); err != nil || !st.Mode().IsRegular() {
			t.Errorf("%s: %v, %v: want a file written in its place", p, st, err)
		}
	}
}
