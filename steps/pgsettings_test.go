package steps_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/engine"
	"github.com/runbook-dev/runbook/internal/testkit"
	"github.com/runbook-dev/runbook/internal/testpg"
)

// settingsPlaybook runs one pg-settings step, as postgres through the
// server's socket, with the given settings list.
func settingsPlaybook(pg *testpg.Server, settings string) string {
	return settingsOver("pg-settings", pg.Data, pg, settings)
}

// filesSettingsPlaybook, named name, runs one pg-settings step over the
// files of the data directory data alone (no server asked), with the
// given settings list and what follows it.
func filesSettingsPlaybook(name, data, settings string) string {
	return settingsOver(name, data, nil, settings)
}

// settingsOver is a playbook named name of one pg-settings step (id s)
// over the data directory data, reaching the server pg when not nil.
func settingsOver(name, data string, pg *testpg.Server, settings string) string {
	become, server := "", ""
	if pg != nil {
		become = "    become: postgres\n"
		server = "      socket_dir: " + pg.Socket + "\n      port: " + strconv.Itoa(pg.Port) + "\n"
	}
	return `version: 1
name: ` + name + `
params:
  listen: {type: string, default: ""}
steps:
  - id: s
` + become + `    pg-settings:
      config_file: ` + filepath.Join(data, "postgresql.conf") + `
      data_dir: ` + data + `
` + server + `      settings:
` + settings
}

func appendTo(t *testing.T, p, content string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WriteFile(t, p, string(b)+content, 0o644)
}

// TestPGSettingsWritesWhereItTakesEffect: a setting overridden in an
// include_dir file is changed there, not in postgresql.conf where it would
// change nothing; PostgreSQL reads the new value from that line; a second
// run changes nothing; a minimum already exceeded is kept; restart is
// false for a setting marked restart: false.
func TestPGSettingsWritesWhereItTakesEffect(t *testing.T) {
	pg := testpg.StartPrepared(t, func(data string) {
		appendTo(t, filepath.Join(data, "postgresql.conf"), "hot_standby = off\ninclude_dir 'conf.d'\n")
		testkit.WriteFile(t, filepath.Join(data, "conf.d/ha.conf"), "# the DBA's\nhot_standby = on\nwal_level = logical\nmax_wal_senders = 20\n", 0o644)
	})
	conf := filepath.Join(pg.Data, "postgresql.conf")
	before, _ := os.ReadFile(conf)
	src := settingsPlaybook(pg, `        - {name: hot_standby, value: "off", restart: false}
        - {name: wal_level, at_least: replica}
        - {name: max_wal_senders, at_least: 5}
    assert: result.ok && result.changed && !result.restart && result.settings.hot_standby.source endsWith "conf.d/ha.conf:2"
`)
	ev, err := runPlaybook(t, src, runOpts{})
	if err != nil {
		t.Fatalf("%v\n%v", err, ev.all)
	}
	if e := ev.end("s"); e.Status != engine.StatusChanged || !strings.Contains(e.Diff, "-hot_standby = on") || !strings.Contains(e.Diff, "conf.d/ha.conf") {
		t.Errorf("status %s, diff:\n%s", e.Status, e.Diff)
	}
	if after, _ := os.ReadFile(conf); string(after) != string(before) {
		t.Errorf("postgresql.conf changed:\n%s", after)
	}
	got := pg.Psql(t, "SELECT name || '=' || setting || '@' || sourcefile || ':' || sourceline FROM pg_file_settings WHERE name IN ('hot_standby', 'wal_level', 'max_wal_senders') ORDER BY seqno DESC LIMIT 3")
	for _, want := range []string{"hot_standby=off@" + filepath.Join(pg.Data, "conf.d/ha.conf") + ":2", "wal_level=logical@", "max_wal_senders=20@"} {
		if !strings.Contains(got, want) {
			t.Errorf("pg_file_settings lacks %q:\n%s", want, got)
		}
	}
	ev, err = runPlaybook(t, src, runOpts{})
	if err == nil || ev.end("s").Status != engine.StatusFailed {
		// The assert wants a change: a second run finds none.
		t.Errorf("second run: %v %s", err, ev.end("s").Status)
	}
	if !strings.Contains(ev.end("s").Message, "result.changed") {
		t.Errorf("second run: %s", ev.end("s").Message)
	}
}

// TestPGSettingsRestartAndMinimal: wal_level = minimal set in an included
// file is raised there, with max_wal_senders (PostgreSQL would not start
// with streaming and minimal); the running values call for a restart.
func TestPGSettingsRestartAndMinimal(t *testing.T) {
	pg := testpg.StartPrepared(t, func(data string) {
		appendTo(t, filepath.Join(data, "postgresql.conf"), "include 'tuning.conf'\n")
		testkit.WriteFile(t, filepath.Join(data, "tuning.conf"), "wal_level = minimal\nmax_wal_senders = 0\n", 0o644)
	})
	src := settingsPlaybook(pg, `        - {name: wal_level, at_least: replica}
        - {name: max_wal_senders, at_least: 4}
        - {name: synchronous_commit, at_least: "on"}
    assert: result.ok && result.restart && result.settings.wal_level.running == "minimal" && result.settings.wal_level.value == "replica"
`)
	ev, err := runPlaybook(t, src, runOpts{})
	if err != nil {
		t.Fatalf("%v\n%v", err, ev.all)
	}
	b, _ := os.ReadFile(filepath.Join(pg.Data, "tuning.conf"))
	if string(b) != "wal_level = 'replica'\nmax_wal_senders = 4\n" {
		t.Errorf("tuning.conf:\n%s", b)
	}
	if got := pg.Psql(t, "SELECT count(*) FROM pg_file_settings WHERE error IS NOT NULL AND error <> 'setting could not be applied'"); strings.TrimSpace(got) != "0" {
		t.Errorf("PostgreSQL finds errors in the files")
	}
}

// TestPGSettingsRefusals: what cannot be met is refused before anything
// is written: a value on the server's command line, a wal_level below what
// a logical slot needs (PostgreSQL would not restart), a listen value that
// does not cover the replication address.
func TestPGSettingsRefusals(t *testing.T) {
	pg := testpg.StartPrepared(t, func(data string) {
		appendTo(t, filepath.Join(data, "postgresql.conf"), "wal_level = logical\nlisten_addresses = 'localhost'\n")
	}, "max_replication_slots=4")
	pg.Psql(t, "SELECT pg_create_logical_replication_slot('cdc', 'test_decoding')")
	conf := filepath.Join(pg.Data, "postgresql.conf")
	before, _ := os.ReadFile(conf)
	cases := []struct{ name, settings, want string }{
		{"downgrade", `        - {name: wal_level, value: replica}
`, "below what the logical replication slot(s) cdc need"},
		{"command line", `        - {name: max_replication_slots, at_least: 10}
        - {name: listen_addresses, includes: 10.1.2.3}
`, "max_replication_slots = 4 comes from the server's command line"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := settingsPlaybook(pg, c.settings)
			ev, err := runPlaybook(t, src, runOpts{params: map[string]string{"listen": "localhost,10.1.2.4"}})
			if err == nil || !strings.Contains(err.Error(), "refused, nothing was written") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%v\n%v", err, ev.all)
			}
			if after, _ := os.ReadFile(conf); string(after) != string(before) {
				t.Errorf("postgresql.conf changed:\n%s", after)
			}
		})
	}
	// A minimum that logical exceeds is met: nothing to do.
	ev, err := runPlaybook(t, settingsPlaybook(pg, `        - {name: wal_level, at_least: replica}
    assert: result.ok && !result.changed && !result.restart && result.settings.wal_level.value == "logical"
`), runOpts{})
	if err != nil {
		t.Fatalf("%v\n%v", err, ev.all)
	}
	if ev.end("s").Status != engine.StatusOK {
		t.Errorf("status %s", ev.end("s").Status)
	}
}

// TestPGSettingsStoppedServer: with the server stopped (or a warm standby
// refusing connections), the files are judged alone, and the last start's
// command line (postmaster.opts) counts as a source no file overrides.
func TestPGSettingsStoppedServer(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	testkit.WriteFile(t, filepath.Join(data, "postgresql.conf"), "#hot_standby = on\ninclude_dir 'conf.d'\n", 0o644)
	testkit.WriteFile(t, filepath.Join(data, "conf.d/00.conf"), "synchronous_standby_names = 'inmanta'\n", 0o644)
	testkit.WriteFile(t, filepath.Join(data, "postgresql.auto.conf"), "primary_conninfo = 'host=x'\n", 0o644)
	testkit.WriteFile(t, filepath.Join(data, "postmaster.opts"), `/usr/lib/postgresql/15/bin/postgres "-D" "`+data+`" "-c" "listen_addresses=*" "--port=5433"`+"\n", 0o644)
	src := filesSettingsPlaybook("stopped", data, `        - {name: hot_standby, value: "off"}
        - {name: synchronous_standby_names, value: ""}
        - {name: listen_addresses, includes: 10.0.0.1}
        - {name: max_wal_senders, at_least: 3}
    assert: '!result.running && result.settings.listen_addresses.source == "command line"'
`)
	ev, err := runPlaybook(t, src, runOpts{})
	if err != nil {
		t.Fatalf("%v\n%v", err, ev.all)
	}
	b, _ := os.ReadFile(filepath.Join(data, "postgresql.conf"))
	c, _ := os.ReadFile(filepath.Join(data, "conf.d/00.conf"))
	if string(b) != "hot_standby = off\ninclude_dir 'conf.d'\n" || string(c) != "synchronous_standby_names = ''\n" {
		t.Errorf("postgresql.conf:\n%s\nconf.d/00.conf:\n%s", b, c)
	}
	if bak, _ := filepath.Glob(filepath.Join(data, "conf.d/00.conf.runbook-*.bak")); len(bak) != 1 {
		t.Errorf("backups: %v", bak)
	}
	// listen_addresses in a file: the address is added to the DBA's list;
	// a value asked for must cover the replication address.
	testkit.WriteFile(t, filepath.Join(data, "postmaster.opts"), "", 0o644)
	testkit.WriteFile(t, filepath.Join(data, "conf.d/01-net.conf"), "listen_addresses = 'localhost, 10.0.0.2'\n", 0o644)
	listen := filesSettingsPlaybook("listen", data, `        - {name: listen_addresses, includes: 10.0.0.1, value: '${{ params.listen != "" ? params.listen : nil }}'}
`)
	if ev, err := runPlaybook(t, listen, runOpts{params: map[string]string{"listen": "localhost,10.0.0.3"}}); err == nil || !strings.Contains(err.Error(), "listen_addresses = 'localhost,10.0.0.3', as asked, does not cover 10.0.0.1") {
		t.Errorf("%v\n%v", err, ev.all)
	}
	if ev, err := runPlaybook(t, listen, runOpts{}); err != nil {
		t.Fatalf("%v\n%v", err, ev.all)
	}
	if b, _ := os.ReadFile(filepath.Join(data, "conf.d/01-net.conf")); string(b) != "listen_addresses = 'localhost, 10.0.0.2,10.0.0.1'\n" {
		t.Errorf("01-net.conf: %s", b)
	}
}

// TestPGSettingsQuotedTwiceAndHardLinks: a value already in single quotes
// (a parameter's) is refused before anything is written; a postgresql.conf
// with hard links is refused before it is split.
func TestPGSettingsQuotedTwiceAndHardLinks(t *testing.T) {
	pg := testpg.Start(t)
	conf := filepath.Join(pg.Data, "postgresql.conf")
	before, _ := os.ReadFile(conf)
	src := settingsPlaybook(pg, `        - {name: cluster_name, value: "${{ params.listen }}", restart: false}
`)
	_, err := runPlaybook(t, src, runOpts{params: map[string]string{"listen": "'inmanta'"}})
	if err == nil || !strings.Contains(err.Error(), "in single quotes already") {
		t.Fatalf("quoted twice: %v", err)
	}
	if after, _ := os.ReadFile(conf); string(after) != string(before) {
		t.Fatalf("postgresql.conf changed:\n%s", after)
	}
	if err := os.Link(conf, conf+".hard"); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(conf + ".hard")
	_, err = runPlaybook(t, src, runOpts{params: map[string]string{"listen": "inmanta"}})
	if err == nil || !strings.Contains(err.Error(), "has 2 hard links") {
		t.Fatalf("hard links: %v", err)
	}
	if after, _ := os.ReadFile(conf); string(after) != string(before) {
		t.Fatalf("postgresql.conf changed:\n%s", after)
	}
}
