package transport

import "testing"

func TestSimpleCommand(t *testing.T) {
	for line, want := range map[string]bool{
		"true": true,
		"pg_ctl promote -w -D '/var/lib/pgsql/data'": true,
		"systemctl is-active 'postgresql@15-main'":   true,
		"/usr/bin/env x=1":                           true,
		"printf '%s|' 'a b'":                         true,
		"":                                           false,
		"cd /":                                       false,
		"exit 1":                                     false,
		"X=1 true":                                   false,
		"true; false":                                false,
		"true && false":                              false,
		"echo $HOME":                                 false,
		"echo \"x\"":                                 false,
		"echo `id`":                                  false,
		"echo x > f":                                 false,
		"ls *":                                       false,
		"ls ~":                                       false,
		"echo 'unterminated":                         false,
		"'quoted-name' x":                            false,
		"echo a\nb":                                  false,
		"echo x\\ y":                                 false,
		"cat <f":                                     false,
		"a|b":                                        false,
		"(true)":                                     false,
		"echo {a,b}":                                 false,
	} {
		if got := simpleCommand(line); got != want {
			t.Errorf("simpleCommand(%q) = %v, want %v", line, got, want)
		}
	}
}

func TestKillableRunsBuiltinsInTheLoginShell(t *testing.T) {
	for line, want := range map[string]string{
		"true":          `printf 'runbook-pid:%s\n' "$$" >&2; true`,
		"test -f '/x'":  `printf 'runbook-pid:%s\n' "$$" >&2; test -f '/x'`,
		"echo x":        `printf 'runbook-pid:%s\n' "$$" >&2; exec echo x`,
		"truex":         `printf 'runbook-pid:%s\n' "$$" >&2; exec truex`,
		"true; sleep 1": `printf 'runbook-pid:%s\n' "$$" >&2; exec /bin/sh -c 'true; sleep 1'`,
	} {
		if got := killable(line); got != want {
			t.Errorf("killable(%q) = %s, want %s", line, got, want)
		}
	}
}
