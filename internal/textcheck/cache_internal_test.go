package textcheck

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCacheKey: an argument of shellcheck or its locale that changes is
// another key; the same of both is the same key.
func TestCacheKey(t *testing.T) {
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("shellcheck is not installed")
	}
	key := func(env []string, args ...string) string {
		t.Helper()
		t.Setenv("LC_ALL", "")
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		r := cachingRunner(t, context.Background(), sc, DefaultLimits)
		if args != nil {
			r.args = args
		}
		r.cached("echo $x")
		if err := r.results.failure(); err != nil {
			t.Fatal(err)
		}
		return r.results.key("echo $x")
	}
	base := key(nil)
	if again := key(nil); again != base {
		t.Errorf("the same shellcheck, arguments and locale give two keys: %s, %s", base, again)
	}
	for _, tt := range []struct {
		name string
		env  []string
		args []string
	}{
		{"another dialect", nil, []string{"--norc", "--format=json1", "--shell=bash", "--exclude=" + excluded}},
		{"another exclusion", nil, []string{"--norc", "--format=json1", "--shell=" + Dialect, "--exclude=SC2086"}},
		{"another locale", []string{"LC_ALL=C"}, nil},
	} {
		if k := key(tt.env, tt.args...); k == base {
			t.Errorf("%s: the same key", tt.name)
		}
	}
}

// TestCacheTrim: past its bound, the cache loses the entries used longest
// ago, down to three quarters of the bound, and the temporary files a
// killed process left; a trim is done at most once per interval.
func TestCacheTrim(t *testing.T) {
	dir := t.TempDir()
	rc := openCache(t, dir)
	var texts []string
	for i := range 40 {
		text := fmt.Sprintf("echo %d", i)
		texts = append(texts, text)
		rc.put(text, []shellComment{{Line: 1, Column: 6, Level: "info", Code: 2086, Message: "m"}})
		// Entry i was used i hours ago.
		at := time.Now().Add(-time.Duration(i) * time.Hour)
		if err := os.Chtimes(rc.file(rc.key(text)), at, at); err != nil {
			t.Fatal(err)
		}
	}
	stale := filepath.Join(dir, "00", ".tmp-1")
	if err := os.MkdirAll(filepath.Dir(stale), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stale, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(rc.file(rc.key(texts[0])))
	if err != nil {
		t.Fatal(err)
	}
	per := diskUse(st)
	rc.max = 20 * per
	if err := rc.maybeTrim(); err != nil {
		t.Fatal(err)
	}
	var kept []int
	for i, text := range texts {
		if _, ok := rc.get(text); ok {
			kept = append(kept, i)
		}
	}
	if want := 15; len(kept) != want || kept[len(kept)-1] != want-1 {
		t.Errorf("kept %v, want the %d used last", kept, want)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("the stale temporary file is still there")
	}
	count := func() int {
		n := 0
		for _, text := range texts {
			if _, ok := rc.get(text); ok {
				n++
			}
		}
		return n
	}
	// Within the interval, no trim, unless the run alone wrote more than
	// a quarter of the bound.
	rc.max = 1 << 40
	for _, text := range texts {
		rc.put(text, nil)
	}
	if err := rc.maybeTrim(); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != len(texts) {
		t.Errorf("%d entries, want %d: trimmed again within the interval", n, len(texts))
	}
	rc.max = 20 * per
	if err := rc.maybeTrim(); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 15 {
		t.Errorf("%d entries, want 15: a run that wrote past a quarter of the bound did not trim", n)
	}
}

// TestCacheGetTouches: an entry read is marked as used, so that the
// entries a tree uses are the last to go.
func TestCacheGetTouches(t *testing.T) {
	rc := openCache(t, t.TempDir())
	rc.put("echo", nil)
	p := rc.file(rc.key("echo"))
	old := time.Now().Add(-3 * time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	if _, ok := rc.get("echo"); !ok {
		t.Fatal("a miss")
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(st.ModTime()) > time.Minute {
		t.Errorf("mtime %s, want now", st.ModTime())
	}
}

// sqlTexts are SQL texts of the shapes of BenchmarkValidate1000's, n
// distinct ones.
func sqlTexts(n int) []string {
	texts := make([]string, n)
	for i := range texts {
		if i%2 == 0 {
			texts[i] = fmt.Sprintf("SELECT state FROM pg_stat_replication WHERE application_name = $1 AND pid > %d", i)
		} else {
			texts[i] = fmt.Sprintf("SELECT %d AS one", i)
		}
	}
	return texts
}

// BenchmarkParseSQL is PostgreSQL's parser on the 2,000 distinct SQL
// texts of BenchmarkValidate1000, and BenchmarkCacheGet the cache's read
// of as many entries: whether a cache of the parser's results between
// runs would pay. ns/text is the cost of one.
func BenchmarkParseSQL(b *testing.B) {
	if !sqlParserLinked {
		b.Skip("built without cgo")
	}
	texts := sqlTexts(2000)
	for b.Loop() {
		for _, t := range texts {
			if r := parseSQL(t); r.err != "" {
				b.Fatal(r.err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(texts)), "ns/text")
}

func BenchmarkCacheGet(b *testing.B) {
	rc := openCache(b, b.TempDir())
	texts := sqlTexts(2000)
	for _, t := range texts {
		rc.put(t, nil)
	}
	for b.Loop() {
		for _, t := range texts {
			if _, ok := rc.get(t); !ok {
				b.Fatal("a miss")
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(texts)), "ns/text")
}

// BenchmarkCachePut is the cache's write of an entry (a temporary file
// renamed into place): what a first run pays per command on top of
// shellcheck.
func BenchmarkCachePut(b *testing.B) {
	rc := openCache(b, b.TempDir())
	texts := sqlTexts(2000)
	for b.Loop() {
		for _, t := range texts {
			rc.put(t, []shellComment{{Line: 1, Column: 6, Level: "warning", Code: 2086, Message: "Double quote to prevent globbing and word splitting."}})
		}
	}
	if err := rc.failure(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(texts)), "ns/text")
}
