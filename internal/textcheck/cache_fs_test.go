package textcheck

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// openCache returns a cache in dir, opened as a run opens it.
func openCache(t testing.TB, dir string) *resultCache {
	t.Helper()
	rc := newResultCache(dir, 0)
	if err := rc.open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.close)
	rc.setIdentity("test")
	return rc
}

// TestCacheTrimOwnOnly: a trim counts and removes only what has the name
// of one of its entries: other files below the directory are not the
// cache's, however old or large.
func TestCacheTrimOwnOnly(t *testing.T) {
	rc := openCache(t, t.TempDir())
	rc.every = 0
	long := time.Now().Add(-24 * time.Hour)
	var planted []string
	for _, p := range []string{
		"zz/not-an-entry.dat",
		"ab/" + strings.Repeat("c", 64),        // a key's name in another key's directory
		"ab/" + strings.Repeat("a", 63),        // one digit short
		"AB/" + "ab" + strings.Repeat("0", 62), // not lowercase
		"notes.txt",
	} {
		p = filepath.Join(rc.dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, 64<<10), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, long, long); err != nil {
			t.Fatal(err)
		}
		planted = append(planted, p)
	}
	rc.put("echo a", nil)
	rc.put("echo b", nil)
	rc.max = 1 // every entry goes
	if err := rc.maybeTrim(); err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"echo a", "echo b"} {
		if _, ok := rc.get(text); ok {
			t.Errorf("%q: its entry is still there, want it trimmed", text)
		}
	}
	for _, p := range planted {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s, not an entry, was removed: %v", p, err)
		}
	}
}

// TestCacheLinkedDir: a cache directory that is a link (to another disk)
// is used and trimmed where it leads.
func TestCacheLinkedDir(t *testing.T) {
	real := filepath.Join(t.TempDir(), "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	top := t.TempDir()
	link := filepath.Join(top, "shellcheck")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	rc := openCache(t, link)
	rc.every = 0
	rc.put("echo a", nil)
	p := filepath.Join(real, rc.key("echo a")[:2], rc.key("echo a"))
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the entry is not in the directory linked to: %v", err)
	}
	rc.max = 1
	if err := rc.maybeTrim(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err == nil {
		t.Error("the entry is still there: the linked directory was not trimmed")
	}
	if _, err := os.Stat(filepath.Join(real, trimMark)); err != nil {
		t.Errorf("no mark in the directory trimmed: %v", err)
	}
}

// TestCacheEntryDirLink: an entry's directory that is a link is not
// written through (the entry would be outside the cache): it is
// replaced by a directory.
func TestCacheEntryDirLink(t *testing.T) {
	rc := openCache(t, t.TempDir())
	outside := t.TempDir()
	key := rc.key("echo a")
	if err := os.Symlink(outside, filepath.Join(rc.dir, key[:2])); err != nil {
		t.Fatal(err)
	}
	rc.put("echo a", nil)
	if n, err := rc.putFailure(); err != nil {
		t.Fatalf("%d not written: %v", n, err)
	}
	if es, _ := os.ReadDir(outside); len(es) > 0 {
		t.Errorf("written outside the cache: %v", es)
	}
	if st, err := os.Lstat(rc.file(key)); err != nil || !st.Mode().IsRegular() {
		t.Errorf("the entry: %v, %v; want a file in the cache", st, err)
	}
}

// TestCacheBadEntry: a directory where an entry is to be written is
// replaced; a write that fails is one miss, counted and said, not the
// cache off for the rest of the run.
func TestCacheBadEntry(t *testing.T) {
	rc := openCache(t, t.TempDir())
	rc.put("echo b", nil)
	p := rc.file(rc.key("echo a"))
	if err := os.MkdirAll(filepath.Join(p, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	rc.put("echo a", nil)
	if n, err := rc.putFailure(); err != nil {
		t.Errorf("%d not written: %v", n, err)
	}
	for _, text := range []string{"echo a", "echo b"} {
		if _, ok := rc.get(text); !ok {
			t.Errorf("%q: a miss", text)
		}
	}
	// The directory gone under the cache: each write fails, the reads
	// are still tried, and the first failure names where.
	if err := os.RemoveAll(rc.dir); err != nil {
		t.Fatal(err)
	}
	rc.put("echo c", nil)
	rc.put("echo d", nil)
	if n, err := rc.putFailure(); n != 2 || err == nil || !strings.Contains(err.Error(), rc.dir) {
		t.Errorf("putFailure() = %d, %v; want 2 and the directory named", n, err)
	}
	if err := rc.failure(); err != nil {
		t.Errorf("failure() = %v, want the cache still on", err)
	}
}

// TestIdentityBounded: a shellcheck that never says its version, through
// a wrapper whose child holds its output, is stopped at the time limit,
// and the cache off says why.
func TestIdentityBounded(t *testing.T) {
	// sleep is a child of the shell: a kill of the shell alone leaves
	// it, holding the output Wait reads.
	fake := fakeIn(t, t.TempDir(), "sleep 1000\nexit 0\n")
	r := cachingRunner(t, context.Background(), fake, Limits{MaxText: 1 << 10, Timeout: 200 * time.Millisecond})
	cachedInBackground(r)(t, "shellcheck --version still waited for after a minute")
	if err := r.results.failure(); err == nil || !strings.Contains(err.Error(), "did not finish within 200ms") {
		t.Errorf("failure() = %v, want the limit named", err)
	}
}

// TestCacheKeyProgram: two programs saying the same version are two
// identities (a wrapper that adds checks gives other findings).
func TestCacheKeyProgram(t *testing.T) {
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("shellcheck is not installed")
	}
	key := func(script string) string {
		t.Helper()
		r := cachingRunner(t, context.Background(), fakeIn(t, t.TempDir(), script), DefaultLimits)
		r.cached("echo $x")
		if err := r.results.failure(); err != nil {
			t.Fatal(err)
		}
		return r.results.key("echo $x")
	}
	plain := key("exec " + sc + " \"$@\"\n")
	all := key("exec " + sc + " --enable=all \"$@\"\n")
	if plain == all {
		t.Error("two wrappers of the same shellcheck give the same key")
	}
}

// TestIdentityInterrupted: validate interrupted while shellcheck, run by
// a wrapper, is saying its version ends it at once, the wrapper's child
// included, whatever the time limit.
func TestIdentityInterrupted(t *testing.T) {
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	if err := syscall.Mkfifo(ready, 0o600); err != nil {
		t.Fatal(err)
	}
	fake := fakeIn(t, dir, "echo started > \"$READY\"\nsleep 1000\nexit 0\n")
	t.Setenv("READY", ready)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := cachingRunner(t, ctx, fake, Limits{MaxText: 1 << 10, Timeout: time.Hour})
	wait := cachedInBackground(r)
	// The wrapper has started once it has written to the FIFO.
	if _, err := os.ReadFile(ready); err != nil {
		t.Fatal(err)
	}
	cancel()
	wait(t, "shellcheck --version still waited for a minute after the interruption")
	if err := r.results.failure(); err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("failure() = %v, want the interruption named", err)
	}
}

// fakeIn writes a shellcheck into dir that runs script (sh) instead, and
// returns its path.
func fakeIn(t *testing.T, dir, script string) string {
	t.Helper()
	fake := filepath.Join(dir, "shellcheck")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return fake
}

// cachingRunner runs the shellcheck at path, its results cached in a
// fresh directory.
func cachingRunner(t *testing.T, ctx context.Context, path string, l Limits) *shellRunner {
	r := newShellRunner(ctx, path, l)
	r.results = newResultCache(t.TempDir(), 0)
	return r
}

// cachedInBackground asks r for the findings of a text (the cache first
// asks shellcheck its version) in a goroutine; the function it returns
// waits for the answer, and fails the test with msg after a minute.
func cachedInBackground(r *shellRunner) func(t *testing.T, msg string) {
	done := make(chan struct{})
	go func() {
		r.cached("echo")
		close(done)
	}()
	return func(t *testing.T, msg string) {
		t.Helper()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatal(msg)
		}
	}
}

// file is the path of key's entry.
func (rc *resultCache) file(key string) string {
	return filepath.Join(rc.dir, rc.path(key))
}

// TestCacheSwappedAfterOpen: the cache is used through the directory
// opened, never by its path: the directory renamed away and a link to
// another put in its place after the open redirects no write or read,
// and neither does a link inside it that leads out of it.
func TestCacheSwappedAfterOpen(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "c")
	rc := openCache(t, dir)
	rc.every = 0
	rc.put("echo a", nil)
	other := filepath.Join(base, "other")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(other, dir); err != nil {
		t.Fatal(err)
	}
	rc.put("echo b", nil)
	if err := rc.maybeTrim(); err != nil {
		t.Fatal(err)
	}
	if n, err := rc.putFailure(); err != nil {
		t.Fatalf("%d not written: %v", n, err)
	}
	for _, text := range []string{"echo a", "echo b"} {
		if _, ok := rc.get(text); !ok {
			t.Errorf("%q: a miss", text)
		}
		if _, err := os.Stat(filepath.Join(dir+".old", rc.path(rc.key(text)))); err != nil {
			t.Errorf("%q: not in the directory opened: %v", text, err)
		}
	}
	if es, _ := os.ReadDir(other); len(es) != 0 {
		t.Errorf("written to the directory put in its place: %v", es)
	}

	// A forged entry in another directory, reached by a link that
	// replaced an entry's directory: a miss, and not overwritten.
	key := rc.key("echo c")
	out := filepath.Join(other, key[:2])
	if err := os.MkdirAll(out, 0o700); err != nil {
		t.Fatal(err)
	}
	forged := filepath.Join(out, key)
	if err := os.WriteFile(forged, encodeEntry(key, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir+".old", key[:2])); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(out, filepath.Join(dir+".old", key[:2])); err != nil {
		t.Fatal(err)
	}
	if _, ok := rc.get("echo c"); ok {
		t.Error("an entry read through a link that leads out of the cache")
	}
}

// TestCacheParentWritable: a directory above the cache's, however far
// up, that others can write (not sticky) turns the cache off: whoever
// can write it could put a directory of theirs in the cache's place.
func TestCacheParentWritable(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "given", "c")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o777); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(base, 0o700)
	rc := newResultCache(dir, 0)
	err := rc.open()
	if err == nil || !strings.Contains(err.Error(), base+" can be written by others") {
		t.Fatalf("open() = %v, want %s refused", err, base)
	}
}

// TestCacheGitTracked: a cache directory in a git work tree is refused
// when it holds files tracked by git (committed entries, forged by
// whoever could commit, are the user's after a checkout), and used when
// nothing in it is tracked.
func TestCacheGitTracked(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	repo := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@t"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	dir := filepath.Join(repo, ".runbook-cache", "shellcheck")
	rc := openCache(t, dir) // nothing tracked: used
	rc.put("echo a", nil)
	if n, err := rc.putFailure(); err != nil {
		t.Fatalf("%d not written: %v", n, err)
	}
	git("add", "-A")
	git("commit", "-q", "-m", "cache")
	rc = newResultCache(dir, 0)
	err := rc.open()
	if err == nil || !strings.Contains(err.Error(), "tracked by git") {
		t.Fatalf("open() = %v, want the directory refused as tracked by git", err)
	}
	// Beside a tracked file, but holding none: used.
	other := filepath.Join(repo, "other")
	openCache(t, other)
}
