package cli_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/internal/cli"
	"github.com/runbook-dev/runbook/internal/testsshd"
)

// asidePlaybook runs configure-standby's two last steps, as bundled: which
// sets of data set aside are beyond keep_aside, and their removal (with
// what each prints, as there). The data directory and the swap's output
// (the set this run made) are params here.
func asidePlaybook(t *testing.T) string {
	var b strings.Builder
	b.WriteString(`version: 1
name: test/aside
params:
  data_dir: {type: string}
  keep_aside: {type: int, default: 1}
  swap: {type: string, default: ""}
steps:
`)
	for _, id := range []string{"aside_sets", "prune_aside"} {
		body := stepBody(t, "pg-ha/configure-standby", id)
		body = strings.ReplaceAll(body, "host.facts.pg.data_dir", "params.data_dir")
		body = strings.ReplaceAll(body, `steps.swap.status == "changed" ? steps.swap.result.stdout : ""`, "params.swap")
		fmt.Fprintf(&b, "  - id: %s\n    host: box\n", id)
		if id == "prune_aside" {
			b.WriteString("    when: trim(steps.aside_sets.result.stdout) != \"\"\n    print: ${{ trim(result.stdout) }}\n")
		} else {
			b.WriteString("    print: ${{ trim(result.stderr) }}\n")
		}
		b.WriteString("    ssh-exec:\n")
		for _, l := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
			b.WriteString("      " + l + "\n")
		}
	}
	return b.String()
}

// TestKeepAside runs the bound on the data set aside by base backups over
// SSH on this machine, on a node laid out as a DBA would (pg_wal a link
// to a WAL directory, a tablespace), with sets of three stamps, a link
// and names runbook never gives beside them: the oldest set goes, each of
// its paths said with its size, oldest first; the set this run made is
// kept even when its stamp is not the newest; a link named like a set,
// what it points to, and names out of the stamp's format stay; a rerun
// removes nothing; keep_aside=0 removes every set; a removal cut short
// (part of the list gone) finishes.
func TestKeepAside(t *testing.T) {
	sshd := testsshd.Start(t)
	work := t.TempDir()
	inv := filepath.Join(work, "inventory.yaml")
	if err := os.WriteFile(inv, []byte(sshd.Inventory("box")), 0o600); err != nil {
		t.Fatal(err)
	}
	pb := filepath.Join(work, "aside.yaml")
	if err := os.WriteFile(pb, []byte(asidePlaybook(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(work, "node")
	data := filepath.Join(root, "data", "main")
	wal := filepath.Join(root, "wal", "pg_wal")
	ts := filepath.Join(root, "ts", "ts1")
	mkdir := func(p string) {
		t.Helper()
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, name); err != nil {
			t.Fatal(err)
		}
	}
	mkdir(filepath.Join(data, "pg_tblspc"))
	mkdir(wal)
	mkdir(ts)
	link(wal, filepath.Join(data, "pg_wal"))
	link(ts, filepath.Join(data, "pg_tblspc", "16384"))
	const t1, t2, t3 = "20261101T010101", "20261102T020202", "20261103T030303"
	set := func(stamp string) []string {
		return []string{data + ".runbook-old-" + stamp, wal + ".runbook-old-" + stamp, ts + ".runbook-old-" + stamp}
	}
	for _, s := range []string{t1, t2, t3} {
		for _, p := range set(s) {
			mkdir(p)
		}
	}
	// Two MiB in the oldest set's data part, for its size.
	if err := os.WriteFile(filepath.Join(set(t1)[0], "base"), bytes.Repeat([]byte{1}, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	// Inside the data directory, as in a mount point: part of set 1.
	inside := filepath.Join(data, "pgsql_tmp.runbook-old-"+t1)
	mkdir(inside)
	// What is never removed: a link named like the oldest set (and what
	// it points to), names out of the stamp's format.
	elsewhere := filepath.Join(root, "elsewhere")
	mkdir(elsewhere)
	link(elsewhere, data+".runbook-old-20261031T000000")
	others := []string{data + ".runbook-old-2026110T000000", data + ".runbook-old-x", data + ".runbook-new", wal + ".runbook-old-20261101T0101011"}
	for _, p := range others {
		mkdir(p)
	}

	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		e := &cli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out, Getenv: os.Getenv, LookupEnv: os.LookupEnv}
		code := e.Main(append([]string{"runbook", "run", pb, "-i", inv, "--state-dir", filepath.Join(work, "state"), "-p", "data_dir=" + data}, args...))
		if code != cli.ExitOK {
			t.Fatalf("runbook run %v: exit %d\n%s", args, code, out.String())
		}
		return out.String()
	}
	left := func() []string {
		t.Helper()
		var got []string
		for _, dir := range []string{filepath.Dir(data), filepath.Dir(wal), filepath.Dir(ts), data} {
			m, err := filepath.Glob(filepath.Join(dir, "*runbook-*"))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, m...)
		}
		slices.Sort(got)
		return got
	}
	want := func(sets ...string) []string {
		w := append([]string{data + ".runbook-old-20261031T000000"}, others...)
		for _, s := range sets {
			w = append(w, set(s)...)
		}
		slices.Sort(w)
		return w
	}

	// keep_aside=1, the swap of this run made set 2: sets 3 (the newest)
	// and 2 (this run's) stay, set 1 goes, oldest first, each path with
	// its size.
	out := run("-p", "swap=the old data is kept aside: "+set(t2)[0]+" "+set(t2)[1]+" ")
	if got := left(); !slices.Equal(got, want(t2, t3)) {
		t.Errorf("left after keep_aside=1:\n%s\nwant:\n%s\n%s", strings.Join(got, "\n"), strings.Join(want(t2, t3), "\n"), out)
	}
	removed := slices.Sorted(slices.Values(append(set(t1), inside)))
	var said []string
	for _, l := range strings.Split(out, "\n") {
		if i := strings.Index(l, "removed /"); i >= 0 {
			said = append(said, l[i:])
		}
	}
	var wantSaid []string
	for _, p := range removed {
		size := "1 MiB"
		if p == set(t1)[0] {
			size = "3 MiB"
		}
		wantSaid = append(wantSaid, "removed "+p+" ("+size+")")
	}
	if !slices.Equal(said, wantSaid) {
		t.Errorf("the run said:\n%s\nwant, in this order:\n%s\n(output:\n%s)", strings.Join(said, "\n"), strings.Join(wantSaid, "\n"), out)
	}
	if _, err := os.Stat(elsewhere); err != nil {
		t.Errorf("what a link named like a set points to: %v", err)
	}

	// A rerun removes nothing: the removal is not even run.
	out = run("-p", "swap=the old data is kept aside: "+set(t2)[0])
	if strings.Contains(out, "removed") || !strings.Contains(out, "sets of data set aside on this node: 2") {
		t.Errorf("a rerun:\n%s", out)
	}
	if got := left(); !slices.Equal(got, want(t2, t3)) {
		t.Errorf("left after a rerun:\n%s", strings.Join(got, "\n"))
	}

	// A removal cut short: half of set 2 gone already, the rest goes; what
	// was gone is said.
	if err := os.RemoveAll(set(t2)[0]); err != nil {
		t.Fatal(err)
	}
	out = run()
	if got := left(); !slices.Equal(got, want(t3)) || !strings.Contains(out, "removed "+set(t2)[1]+" (") {
		t.Errorf("after a removal cut short, left:\n%s\n%s", strings.Join(got, "\n"), out)
	}

	// keep_aside=0: the operator asked for every set to go, this run's too.
	out = run("-p", "keep_aside=0", "-p", "swap=the old data is kept aside: "+set(t3)[0])
	if got := left(); !slices.Equal(got, want()) {
		t.Errorf("left after keep_aside=0:\n%s\n%s", strings.Join(got, "\n"), out)
	}
}
