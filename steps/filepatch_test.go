package steps_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/testkit"
	"github.com/runbook-dev/runbook/internal/testsshd"
	"github.com/runbook-dev/runbook/steps"
)

func TestFilePatchOperations(t *testing.T) {
	dir, cfg := fileIn(t, "database.cfg", "[server]\nbind-port=8888\n\n[database]\nhost=10.0.0.11\nname=inmanta\npassword=secret\n", 0o600)
	hba := filepath.Join(dir, "pg_hba.conf")
	testkit.WriteFile(t, hba, "local all postgres peer\nhost replication replication 10.0.0.9/32 md5\n", 0o640)
	src := `version: 1
name: patch
params:
  dir: {type: string}
  new_primary: {type: string}
steps:
  - id: cfg
    file-patch:
      path: ${{ params.dir }}/database.cfg
      ini:
        - section: database
          values: {host: "${{ params.new_primary }}", port: "5432"}
  - id: hba
    file-patch:
      path: ${{ params.dir }}/pg_hba.conf
      backup: false
      ensure-line:
        - line: host replication replication ${{ params.new_primary }}/32 scram-sha-256
        - line: host replication replication 10.0.0.9/32 md5
          state: absent
  - id: auto
    file-patch:
      path: ${{ params.dir }}/new/dir/postgresql.auto.conf
      create: true
      mode: "0600"
      set: {primary_slot_name: replication}
  - id: gone
    file-patch:
      path: ${{ params.dir }}/standby.signal
      absent: true
`
	p := map[string]string{"dir": dir, "new_primary": "10.0.0.12"}
	ev, err := runPlaybook(t, src, runOpts{params: p})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]engine.Status{"cfg": engine.StatusChanged, "hba": engine.StatusChanged, "auto": engine.StatusChanged, "gone": engine.StatusOK} {
		if got := ev.end(id).Status; got != want {
			t.Errorf("%s: %s, want %s (%s)", id, got, want, ev.end(id).Message)
		}
	}
	got, _ := os.ReadFile(cfg)
	if string(got) != "[server]\nbind-port=8888\n\n[database]\nhost=10.0.0.12\nname=inmanta\npassword=secret\nport=5432\n" {
		t.Errorf("database.cfg:\n%s", got)
	}
	if st, _ := os.Stat(cfg); st.Mode().Perm() != 0o600 {
		t.Errorf("database.cfg mode %v", st.Mode().Perm())
	}
	backups, _ := filepath.Glob(cfg + ".runbook-*.bak")
	if len(backups) != 1 {
		t.Errorf("backups of database.cfg: %v", backups)
	} else if b, _ := os.ReadFile(backups[0]); !strings.Contains(string(b), "host=10.0.0.11") {
		t.Errorf("backup content: %s", b)
	}
	got, _ = os.ReadFile(hba)
	if string(got) != "local all postgres peer\nhost replication replication 10.0.0.12/32 scram-sha-256\n" {
		t.Errorf("pg_hba.conf:\n%s", got)
	}
	if hbaBackups, _ := filepath.Glob(hba + ".runbook-*"); len(hbaBackups) != 0 {
		t.Errorf("backup: false left %v", hbaBackups)
	}
	got, _ = os.ReadFile(filepath.Join(dir, "new/dir/postgresql.auto.conf"))
	if string(got) != "primary_slot_name = 'replication'\n" {
		t.Errorf("postgresql.auto.conf: %q", got)
	}
	// Second run: nothing changes, no new backup.
	testkit.WriteFile(t, filepath.Join(dir, "standby.signal"), "", 0o600)
	ev, err = runPlaybook(t, src, runOpts{params: p})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"cfg", "hba", "auto"} {
		if got := ev.end(id).Status; got != engine.StatusOK {
			t.Errorf("second run %s: %s", id, got)
		}
	}
	if ev.end("gone").Status != engine.StatusChanged {
		t.Errorf("absent: %s", ev.end("gone").Status)
	}
	if _, err := os.Stat(filepath.Join(dir, "standby.signal")); err == nil {
		t.Error("standby.signal not removed")
	}
	if backups, _ := filepath.Glob(cfg + ".runbook-*.bak"); len(backups) != 1 {
		t.Errorf("an unchanged file was backed up again: %v", backups)
	}
}

func TestFilePatchMissingFileIsAnError(t *testing.T) {
	dir := t.TempDir()
	src := taking("patch", "dir", `steps:
  - id: p
    file-patch:
      path: ${{ params.dir }}/nope.conf
      set: {a: b}
`)
	_, err := runPlaybook(t, src, given("dir", dir))
	if err == nil || !strings.Contains(err.Error(), "nope.conf does not exist on localhost (set create: true to create it)") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "nope.conf")); err == nil {
		t.Error("a file was created")
	}
}

func TestFilePatchMasksPasswordsInDiffs(t *testing.T) {
	for in, want := range map[string]string{
		"-primary_conninfo = 'user=replication password=''Pw x!'' host=10.0.0.1'": "-primary_conninfo = 'user=replication password=******** host=10.0.0.1'",
		"+password=hunter2":                 "+password=********",
		"+db_password = 'it''s secret' # c": "+db_password = ******** # c",
		"+PGPASSWORD: abc def":              "+PGPASSWORD: ******** def",
		" host=10.0.0.1":                    " host=10.0.0.1",
		// A conninfo password with a quote and a backslash, as conninfo
		// escapes them (\' and \\) inside postgresql.conf (which doubles
		// both again): nothing of it may show.
		`+primary_conninfo = 'user=r password=''it\\''s \\\\x'' host=h'`: "+primary_conninfo = 'user=r password=******** host=h'",
		`+db_password = 'a\'b' # c`:                                      "+db_password = ******** # c",
	} {
		if got := steps.MaskPasswords(in); got != want {
			t.Errorf("%q:\n got %q\nwant %q", in, got, want)
		}
	}
}

// TestFilePatchOwnerGroupMode gives an existing file the owner, group and
// mode a service needs to read it (database.cfg: root:inmanta 0640), with
// the content in the same rename; the second run changes nothing.
func TestFilePatchOwnerGroupMode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can give a file away")
	}
	dir, cfg := fileIn(t, "database.cfg", "[database]\nhost=10.0.0.11\n", 0o600)
	src := taking("patch", "dir", `steps:
  - id: cfg
    file-patch:
      path: ${{ params.dir }}/database.cfg
      owner: root
      group: "4242"
      mode: "0640"
      ini:
        - section: database
          values: {host: 10.0.0.12}
  - id: again
    file-patch:
      path: ${{ params.dir }}/database.cfg
      owner: "0"
      group: "4242"
      mode: "0640"
      ini:
        - section: database
          values: {host: 10.0.0.12}
`)
	ev, err := runPlaybook(t, src, given("dir", dir))
	if err != nil {
		t.Fatal(err)
	}
	if e := ev.end("cfg"); e.Status != engine.StatusChanged || !strings.Contains(e.Message, "group 4242 (4242, was 0)") || !strings.Contains(e.Message, "mode 0640 (was 0600)") {
		t.Errorf("first: %s %s", e.Status, e.Message)
	}
	if e := ev.end("again"); e.Status != engine.StatusOK {
		t.Errorf("second: %s %s", e.Status, e.Message)
	}
	fi, err := os.Stat(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o640 || st.Uid != 0 || st.Gid != 4242 {
		t.Errorf("database.cfg is %v %d:%d, want 0640 0:4242", fi.Mode().Perm(), st.Uid, st.Gid)
	}
	if b, _ := os.ReadFile(cfg); string(b) != "[database]\nhost=10.0.0.12\n" {
		t.Errorf("content %q", b)
	}
	// An unknown user is an error naming it, before anything is written.
	bad := strings.Replace(src, "owner: root", "owner: no-such-user-here", 1)
	if _, err := runPlaybook(t, bad, given("dir", dir)); err == nil || !strings.Contains(err.Error(), `owner "no-such-user-here"`) {
		t.Errorf("unknown owner: %v", err)
	}
}

// TestFilePatchThroughLink: file-patch of a path that is a symbolic link
// (a conf/ directory of links to the files the server reads) edits the
// linked file, leaves the link a link, and puts the backup beside the
// linked file; the second run changes nothing.
func TestFilePatchThroughLink(t *testing.T) {
	s := testsshd.Start(t)
	dir := t.TempDir()
	real := filepath.Join(dir, "etc", "postgresql.conf")
	link := filepath.Join(dir, "conf", "postgresql.conf")
	testkit.WriteFile(t, real, "#wal_level = replica\n", 0o640)
	testkit.Symlink(t, "../etc/postgresql.conf", link)
	src := setOnDB("link", "{wal_level: logical}")
	for run, want := range []engine.Status{engine.StatusChanged, engine.StatusOK} {
		ev, err := runPlaybook(t, src, runOpts{params: map[string]string{"path": link}, inv: s.Inventory("db")})
		if err != nil {
			t.Fatalf("run %d: %v", run+1, err)
		}
		if got := ev.end("conf").Status; got != want {
			t.Fatalf("run %d: %s, want %s", run+1, got, want)
		}
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced by a file: %v", err)
	}
	if b, _ := os.ReadFile(real); string(b) != "wal_level = 'logical'\n" {
		t.Fatalf("linked file: %q", b)
	}
	backups, _ := filepath.Glob(real + ".runbook-*.bak")
	if len(backups) != 1 {
		t.Fatalf("backups beside the linked file: %v", backups)
	}
	if others, _ := filepath.Glob(link + ".runbook-*"); len(others) != 0 {
		t.Fatalf("files beside the link: %v", others)
	}
}

// setOnDB is a playbook named name that sets the settings given (a YAML
// flow mapping) in the file named by the param path, on the host db.
func setOnDB(name, settings string) string {
	return taking(name, "path", `steps:
  - id: conf
    host: db
    file-patch:
      path: ${{ params.path }}
      set: `+settings+"\n")
}

// TestFilePatchHardLinksAndImmutable: a file with hard links is refused
// before anything changes (a rename would leave the other names with the
// old content); an immutable file fails naming the attribute, and leaves
// no backup behind. Over a real sshd.
func TestFilePatchHardLinksAndImmutable(t *testing.T) {
	s := testsshd.Start(t)
	dir, conf := fileIn(t, "postgresql.conf", "work_mem = 4MB\n", 0o644)
	if err := os.Link(conf, filepath.Join(dir, "hard.conf")); err != nil {
		t.Fatal(err)
	}
	src := setOnDB("links", "{work_mem: 64MB}")
	_, err := runPlaybook(t, src, runOpts{params: map[string]string{"path": conf}, inv: s.Inventory("db")})
	if err == nil || !strings.Contains(err.Error(), "has 2 hard links") {
		t.Fatalf("hard links: %v", err)
	}
	if b, _ := os.ReadFile(conf); string(b) != "work_mem = 4MB\n" {
		t.Fatalf("changed: %q", b)
	}
	if err := os.Remove(filepath.Join(dir, "hard.conf")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chattr", "+i", conf).CombinedOutput(); err != nil {
		t.Logf("chattr +i is not supported here (%v %s): the immutable case is not tried", err, out)
		return
	}
	defer exec.Command("chattr", "-i", conf).Run()
	_, err = runPlaybook(t, src, runOpts{params: map[string]string{"path": conf}, inv: s.Inventory("db")})
	if err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Fatalf("immutable: %v", err)
	}
	if baks, _ := filepath.Glob(conf + ".runbook-*.bak"); len(baks) > 0 {
		t.Fatalf("backups left behind: %v", baks)
	}
}

// TestFilePatchQuotedTwice: a value given by a parameter in single quotes
// already is refused when it renders, before any change: PostgreSQL would
// read the quotes as part of it.
func TestFilePatchQuotedTwice(t *testing.T) {
	_, conf := fileIn(t, "postgresql.conf", "#shared_preload_libraries = ''\n", 0o644)
	src := `version: 1
name: quoted
params:
  path: {type: string}
  libs: {type: string}
steps:
  - id: conf
    file-patch:
      path: ${{ params.path }}
      set: {shared_preload_libraries: "${{ params.libs }}"}
`
	_, err := runPlaybook(t, src, runOpts{params: map[string]string{"path": conf, "libs": "'pg_stat_statements'"}})
	if err == nil || !strings.Contains(err.Error(), "in single quotes already") {
		t.Fatalf("got %v", err)
	}
	if b, _ := os.ReadFile(conf); string(b) != "#shared_preload_libraries = ''\n" {
		t.Fatalf("changed: %q", b)
	}
	if _, err := runPlaybook(t, src, runOpts{params: map[string]string{"path": conf, "libs": "pg_stat_statements"}}); err != nil {
		t.Fatal(err)
	}
}
