package engine_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/runbook-dev/runbook/engine"
)

func TestCheckSecrets(t *testing.T) {
	pb := mustLoad(t, `
version: 1
name: check
params:
  user: {type: string, default: replication}
  hosts: {type: list, default: [pg1, pg2]}
secrets:
  pw: {env: PW}
steps:
  - ssh-exec:
      command: echo ${{ params.user }} ${{ params.hosts }} "$PW"
      env: {PW: "${{ secrets.pw }}"}
      read_only: true
`)
	inv, ds := engine.ParseInventory("inv.yaml", []byte("hosts:\n  db-primary-host: {address: 10.0.0.1}\n"))
	if inv == nil {
		t.Fatal(ds)
	}
	for _, tc := range []struct {
		value  string
		params map[string]any
		want   string
	}{
		{"a-fine-secret", nil, ""},
		{`it's "fine" too\`, nil, ""},
		{"x9#k", nil, "secret pw is 4 bytes long, shorter than 8"},
		// Each line shows on its own in a diff or a log: every line must
		// be long enough to mask (a PEM key's last line, "-----END", is).
		{"x9#k\nq7!z\nm2$w\n", nil, "secret pw has a line (the 1st) of 4 bytes, shorter than 8"},
		{"a-long-first-line\nq7!z", nil, "secret pw has a line (the 2nd) of 4 bytes"},
		{"a-long-first-line\r\nanother-long-line\n", nil, ""},
		{"   x9#k    ", nil, "secret pw is 4 bytes long without the blanks around it"},
		{"replication", nil, "secret pw occurs in the text of the playbook test.yaml"},
		{"echo ${{ params.user }}", nil, "occurs in the text of the playbook"},
		{"db-primary-host", nil, "secret pw occurs in the text of the inventory inv.yaml"},
		{"a-given-value", map[string]any{"user": "the a-given-value"}, "secret pw occurs in the value of param user"},
		{"pg2-in-a-list", map[string]any{"hosts": []any{"pg1", "pg2-in-a-list"}}, "secret pw occurs in the value of param hosts"},
		{"interrupted", nil, "secret pw is a word runbook prints in its own report"},
	} {
		err := engine.CheckSecrets(pb, inv, tc.params, map[string]string{"pw": tc.value})
		var we *engine.WeakSecretError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.value, err)
		case tc.want != "" && (!errors.As(err, &we) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: got %v, want %q", tc.value, err, tc.want)
		case err != nil && strings.Contains(err.Error(), tc.value):
			t.Errorf("%q: the refusal shows the value: %v", tc.value, err)
		}
	}
}
