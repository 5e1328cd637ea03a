package playbooks_test

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/runbook-dev/runbook/internal/testpg"
	"github.com/runbook-dev/runbook/playbooks"
)

// bundled reads the bundled playbook name into T (the fields a test
// reads of it).
func bundled[T any](t *testing.T, name string) T {
	t.Helper()
	var doc T
	src, ok := playbooks.Lookup(name)
	if !ok {
		t.Fatalf("no bundled playbook %s", name)
	}
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return doc
}

// rejoinStep returns the command of one of pg-ha/rejoin's ssh-exec steps,
// as bundled.
func rejoinStep(t *testing.T, id string) string {
	t.Helper()
	doc := bundled[struct {
		Steps []struct {
			ID      string `yaml:"id"`
			SSHExec struct {
				Command string `yaml:"command"`
			} `yaml:"ssh-exec"`
		} `yaml:"steps"`
	}](t, "pg-ha/rejoin")
	for _, s := range doc.Steps {
		if s.ID == id {
			return s.SSHExec.Command
		}
	}
	t.Fatalf("pg-ha/rejoin has no step %s", id)
	return ""
}

// rewindCost runs rejoin's rewind_cost step (pg_rewind --dry-run) on the
// data directory data against the new primary src, as postgres, with the
// password on its standard input as the playbook gives it.
func rewindCost(t *testing.T, data string, src *testpg.Server, port int) string {
	t.Helper()
	cmd := exec.Command("sh", "-c", rejoinStep(t, "rewind_cost"))
	cmd.Env = append(os.Environ(), "BIN="+testpg.Bin, "DATA="+data, "CONF="+data, "RESTORE=auto",
		"BASE_BACKUP=runbook run pg-ha/add-standby -p primary=pg2 -p standby=pg1 -p layout=debian",
		"SOURCE=host=127.0.0.1 port="+strconv.Itoa(port)+" user=postgres dbname=postgres connect_timeout=10 application_name=runbook_rewind")
	cmd.Stdin = strings.NewReader(fmt.Sprintf("127.0.0.1:%d:postgres:postgres:%s\n", port, testpg.Password))
	asPostgres(t, cmd)
	cmd.Dir = src.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the rewind_cost step: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// tree is every entry of a directory with its mode, size, modification
// time and content's hash.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			v += fmt.Sprintf(" %x", h.Sum(nil))
		}
		m[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRejoinRewindCost runs rejoin's dry-run step on real clusters: an old
// primary stopped cleanly after the failover, a new primary whose pg_wal
// holds far more than its databases. The step prints pg_rewind's "need to
// copy" line beside the new primary's pg_wal and what a base backup would
// copy, names add-standby as the cheaper way, and changes nothing in the
// node's data directory (every file's content, size and time); killed
// uncleanly, the node gets no estimate and the reason; a dry run that
// fails (the new primary unreachable) says "failed:" with pg_rewind's
// reason, which stops the rejoin before the rewind.
func TestRejoinRewindCost(t *testing.T) {
	p := testpg.Start(t, "wal_level=replica", "max_wal_senders=5", "wal_log_hints=on", "wal_keep_size=1GB")
	q := testpg.StartStandby(t, p, "wal_keep_size=1GB")
	p.Psql(t, "CREATE TABLE t AS SELECT g AS id, repeat(md5(g::text), 7) AS pad FROM generate_series(1, 20000) g")
	caughtUp(t, p)
	q.Psql(t, "SELECT pg_promote()")
	// The new primary writes far more WAL than its databases hold (a
	// table made and dropped), kept by wal_keep_size.
	q.Psql(t, "CREATE TABLE w AS SELECT g AS id, repeat(md5(g::text), 7) AS pad FROM generate_series(1, 600000) g")
	q.Psql(t, "DROP TABLE w")
	q.Psql(t, "CHECKPOINT")
	p.Psql(t, "INSERT INTO t VALUES (-1, 'the old primary, after the switch point')")
	stop(t, p)

	before := tree(t, p.Data)
	got := rewindCost(t, p.Data, q, q.Port)
	t.Log(got)
	if !strings.HasPrefix(got, "estimate: pg_rewind would need to copy ") || !strings.Contains(got, "MB (total source directory size is ") ||
		!strings.Contains(got, "servers diverged at WAL location") || !strings.Contains(got, "the new primary's pg_wal is ") ||
		!strings.Contains(got, "a base backup (pg-ha/add-standby) would copy ") ||
		!strings.Contains(got, "the base backup copies less") || !strings.Contains(got, "runbook run pg-ha/add-standby -p primary=pg2 -p standby=pg1") {
		t.Errorf("a clean old primary, a new primary with a large pg_wal: want the estimate naming add-standby, got:\n%s", got)
	}
	var need, wal, base int
	if _, err := fmt.Sscanf(got[strings.Index(got, "need to copy "):], "need to copy %d MB", &need); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscanf(got[strings.Index(got, "pg_wal is "):], "pg_wal is %d MB", &wal); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscanf(got[strings.Index(got, "would copy "):], "would copy %d MB", &base); err != nil {
		t.Fatal(err)
	}
	if need < wal || wal <= base {
		t.Errorf("need to copy %d MB, pg_wal %d MB, base backup %d MB: want pg_wal copied whole and larger than the databases", need, wal, base)
	}
	after := tree(t, p.Data)
	for f, v := range before {
		if after[f] != v {
			t.Errorf("the dry run changed %s: %q, was %q", f, after[f], v)
		}
	}
	for f := range after {
		if _, ok := before[f]; !ok {
			t.Errorf("the dry run made %s", f)
		}
	}

	// The new primary unreachable: the dry run fails, with its reason.
	if got := rewindCost(t, p.Data, q, 1); !strings.HasPrefix(got, "failed: pg_rewind --dry-run ended with status 1") || !strings.Contains(got, "connect") {
		t.Errorf("the new primary unreachable: want failed with pg_rewind's reason, got:\n%s", got)
	}

	// Killed: no estimate (a dry run refuses a node not shut down cleanly).
	p2 := testpg.Start(t, "wal_level=replica", "wal_log_hints=on")
	if err := p2.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if got := rewindCost(t, p2.Data, q, q.Port); !strings.HasPrefix(got, "no estimate: the node was not shut down cleanly (cluster in production)") ||
		!strings.Contains(got, "the new primary's pg_wal, which pg_rewind copies whole, is ") {
		t.Errorf("a node killed: want no estimate with the reason, got:\n%s", got)
	}
}
