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
