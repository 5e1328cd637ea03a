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
	inv := mustInventory(t, "hosts:\n  db-primary-host: {address: 10.0.0.1}\n")
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

// TestOptionalSecret: an optional secret without a value is "", neither
// asked for nor refused as too short; given, it is checked as any other.
func TestOptionalSecret(t *testing.T) {
	pb := mustLoad(t, `
version: 1
name: optional
secrets:
  token: {env: TOKEN, optional: true, description: API token}
steps:
  - ssh-exec:
      command: test -n "$T"
      env: {T: "${{ secrets.token }}"}
      read_only: true
`)
	asked := false
	got, err := engine.ResolveSecrets(pb, engine.SecretSource{
		LookupEnv: func(string) (string, bool) { return "", false },
		Prompt:    func(string, string) (string, error) { asked = true; return "x", nil },
	})
	if err != nil || got["token"] != "" || asked {
		t.Fatalf("got %q, %v, asked %v", got, err, asked)
	}
	if err := engine.CheckSecrets(pb, nil, nil, got); err != nil {
		t.Errorf("an absent optional secret was refused: %v", err)
	}
	if err := engine.CheckSecrets(pb, nil, nil, map[string]string{"token": "abc"}); err == nil {
		t.Error("a short optional secret that is given was not refused")
	}
}
