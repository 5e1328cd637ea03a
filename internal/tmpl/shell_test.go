package tmpl

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/expr-lang/expr/types"

	"github.com/runbook-dev/runbook/internal/diag"
)

func testScope() *Scope {
	return &Scope{Params: types.Map{"v": types.String, "n": types.Int}}
}

func bind(t *testing.T, src string, lang Lang) (*Template, []*TemplateError) {
	t.Helper()
	tp, errs := ParseTemplate(src, testScope())
	if len(errs) > 0 {
		t.Fatalf("%q: %s", src, errs[0].Msg)
	}
	return tp, tp.In(lang)
}

// TestShellContexts: where each value lands, and the places refused with
// the rule and a hint of the fix.
func TestShellContexts(t *testing.T) {
	v := `a'b"c$(x)` + "`y`\\"
	for _, c := range []struct {
		src  string
		want string // the rendered command, or the start of the refusal
		rule string
	}{
		{src: `echo ${{ params.v }}`, want: `echo 'a'\''b"c$(x)` + "`y`" + `\'`},
		{src: `echo "value ${{ params.v }}"`, want: `echo "value a'b\"c\$(x)\` + "`y\\`" + `\\"`},
		{src: `echo 'value ${{ params.v }}'`, want: `echo 'value a'\''b"c$(x)` + "`y`" + `\'`},
		{src: "cat <<EOF\n${{ params.v }}\nEOF", want: "cat <<EOF\na'b\"c\\$(x)\\`y\\`\\\\\nEOF"},
		{src: "cat <<\"EOF\"\n${{ params.v }}\nEOF", want: "cat <<\"EOF\"\na'b\"c$(x)`y`\\\nEOF"},
		{src: `x=$(printf %s "${{ params.v }}")`, want: `x=$(printf %s "a'b\"c\$(x)\` + "`y\\`" + `\\")`},
		{src: `X=${{ params.v }} env`, want: "${{ }} in an assignment to the environment of a command", rule: diag.RuleShellDataPosition},
		{src: "echo `echo ${{ params.v }}`", want: "${{ }} inside backquotes", rule: diag.RuleShellInterpolation},
		{src: "echo $((${{ params.n }}+1))", want: "${{ }} in shell arithmetic", rule: diag.RuleShellInterpolation},
		{src: "(( ${{ params.n }} > 1 ))", want: "${{ }} in shell arithmetic", rule: diag.RuleShellInterpolation},
		{src: "echo ${x:-${{ params.v }}}", want: "${{ }} inside ${...}", rule: diag.RuleShellInterpolation},
		{src: "echo ${x:-\"${{ params.v }}\"}", want: "${{ }} inside ${...}", rule: diag.RuleShellInterpolation},
		{src: "echo $${{ params.v }}", want: "${{ }} where the shell expects a name", rule: diag.RuleShellInterpolation},
		{src: "echo ok # ${{ params.v }}", want: "${{ }} in a shell comment", rule: diag.RuleShellInterpolation},
		{src: "echo $'${{ params.v }}'", want: "${{ }} inside $'...'", rule: diag.RuleShellInterpolation},
		{src: "echo $\"${{ params.v }}\"", want: "${{ }} inside $\"...\"", rule: diag.RuleShellInterpolation},
		{src: `echo \${{ params.v }}`, want: "${{ }} right after a backslash", rule: diag.RuleShellInterpolation},
		{src: `echo "\${{ params.v }}"`, want: "${{ }} right after a backslash", rule: diag.RuleShellInterpolation},
		{src: `echo \\${{ params.v }}`, want: `echo \\'a'\''b"c$(x)` + "`y`" + `\'`},
		{src: "${{ params.v }}=1 env", want: "${{ }} where the shell expects a name", rule: diag.RuleShellInterpolation},
		{src: "${{ params.v }}() { :; }", want: "${{ }} where the shell expects a name", rule: diag.RuleShellInterpolation},
		{src: "cat <<${{ params.v }}\nx\nEOF", want: "runbook cannot parse this command", rule: diag.RuleShellInterpolation},
		{src: "sh -c ${{ params.v }}", want: "${{ }} reaches sh, which runs its arguments", rule: diag.RuleShellInterpolation},
		{src: "bash -ec \"x=${{ params.v }}\"", want: "${{ }} reaches bash, which runs its arguments", rule: diag.RuleShellInterpolation},
		{src: "sudo -u postgres sh -c \"$(echo ${{ params.v }})\"", want: "${{ }} reaches sh, which runs its arguments", rule: diag.RuleShellInterpolation},
		{src: "eval ls ${{ params.v }}", want: "${{ }} reaches eval, which runs its arguments", rule: diag.RuleShellInterpolation},
		{src: "trap ${{ params.v }} EXIT", want: "${{ }} reaches trap, which runs its arguments", rule: diag.RuleShellInterpolation},
		{src: "command eval ${{ params.v }}", want: "${{ }} reaches eval, which runs its arguments", rule: diag.RuleShellInterpolation},
		{src: "grep eval ${{ params.v }}", want: `grep eval 'a'\''b"c$(x)` + "`y`" + `\'`},
		{src: "sh -c 'echo \"$0\"' ${{ params.v }}", want: "${{ }} reaches sh, which runs its arguments", rule: diag.RuleShellInterpolation},
		{src: "[[ $x -eq ${{ params.n }} ]]", want: "${{ }} in an arithmetic comparison", rule: diag.RuleShellInterpolation},
		{src: "a[${{ params.n }}]=1", want: "${{ }} in the name or index of an assignment", rule: diag.RuleShellInterpolation},
		{src: "echo \"${{ params.v }}", want: "runbook cannot parse this command as shell (reached EOF without closing quote", rule: diag.RuleShellInterpolation},
		{src: "echo ${{ raw(params.v) }}", want: "raw() inserts its value unquoted", rule: diag.RuleUnsafeRaw},
		{src: `echo ${{ raw("-l") }}`, want: "echo -l"},
		{src: "echo ${{ literal(params.v) }}", want: "literal() makes an SQL string literal", rule: diag.RuleShellInterpolation},
	} {
		tp, errs := bind(t, c.src, Shell)
		if c.rule != "" {
			if len(errs) != 1 || errs[0].Rule != c.rule || !strings.HasPrefix(errs[0].Msg, c.want) {
				t.Errorf("%q: got %v, want one %s refusal starting %q", c.src, errMsgs(errs), c.rule, c.want)
			}
			continue
		}
		if len(errs) > 0 {
			t.Errorf("%q: refused: %v", c.src, errMsgs(errs))
			continue
		}
		got, err := tp.Render(map[string]any{"params": map[string]any{"v": v, "n": 1}})
		if err != nil || got != c.want {
			t.Errorf("%q:\n got %s (%v)\nwant %s", c.src, got, err, c.want)
		}
	}
}

func errMsgs(errs []*TemplateError) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Msg+" ["+e.Rule+"]")
	}
	return out
}

// TestShellDenyByDefault: a value is accepted only where it is proven
// data. Each refused form is one that a list of bad commands missed; each
// accepted one is a form the bundled playbooks use.
func TestShellDenyByDefault(t *testing.T) {
	refused := []struct{ src, rule string }{
		{`"eval" ${{ params.v }}`, diag.RuleShellInterpolation},
		{`e''val ${{ params.v }}`, diag.RuleShellInterpolation},
		{`sh "-c" ${{ params.v }}`, diag.RuleShellInterpolation},
		{`'sh' -c ${{ params.v }}`, diag.RuleShellInterpolation},
		{`command -p eval ${{ params.v }}`, diag.RuleShellInterpolation},
		{`$S -c ${{ params.v }}`, diag.RuleShellDataPosition},
		{`"$S" ${{ params.v }}`, diag.RuleShellDataPosition},
		{`su --command=${{ params.v }}`, diag.RuleShellInterpolation},
		{`su postgres --command ${{ params.v }}`, diag.RuleShellInterpolation},
		{`flock /tmp/l -c ${{ params.v }}`, diag.RuleShellInterpolation},
		{`watch ${{ params.v }}`, diag.RuleShellInterpolation},
		{`echo ${{ params.v }} | xargs sh -c`, diag.RuleShellInterpolation},
		{`printf %s ${{ params.v }} | xargs -0 rm`, diag.RuleShellInterpolation},
		{"sh <<EOF\n${{ params.v }}\nEOF", diag.RuleShellInterpolation},
		{"cat <<EOF | sh\n${{ params.v }}\nEOF", diag.RuleShellInterpolation},
		{`echo ${{ params.v }} | sh`, diag.RuleShellInterpolation},
		{`echo ${{ params.v }} | tee /tmp/x | bash -s`, diag.RuleShellInterpolation},
		{`{ echo ${{ params.v }}; } | sh`, diag.RuleShellInterpolation},
		{`echo ${{ params.v }} | while read -r l; do $l; done`, diag.RuleShellDataPosition},
		{`alias x=${{ params.v }}`, diag.RuleShellInterpolation},
		{`test -v ${{ params.v }}`, diag.RuleShellInterpolation},
		{`[ -v "${{ params.v }}" ]`, diag.RuleShellInterpolation},
		{`[ ${{ params.v }} ]`, diag.RuleShellDataPosition},
		{`declare -i n=${{ params.v }}`, diag.RuleShellInterpolation},
		{`local x=${{ params.v }}`, diag.RuleShellInterpolation},
		{`export X=${{ params.v }}`, diag.RuleShellInterpolation},
		{`printf -v ${{ params.v }} %s x`, diag.RuleShellInterpolation},
		{`printf -v x ${{ params.v }}`, diag.RuleShellInterpolation},
		{`printf ${{ params.v }} x`, diag.RuleShellInterpolation},
		{`read ${{ params.v }}`, diag.RuleShellInterpolation},
		{`sh <<< ${{ params.v }}`, diag.RuleShellInterpolation},
		{`psql <<< ${{ params.v }}`, diag.RuleShellInterpolation},
		{"x=$(sh <<EOF\n${{ params.v }}\nEOF)", diag.RuleShellInterpolation},
		{`$(echo ${{ params.v }}) arg`, diag.RuleShellDataPosition},
		{`eval "$(echo ${{ params.v }})"`, diag.RuleShellInterpolation},
		{`x=${{ params.v }}; eval "$x"`, diag.RuleShellInterpolation},
		{`x=${{ params.v }}; y=$x; $y`, diag.RuleShellDataPosition},
		{`x=${{ params.v }}; echo $((x + 1))`, diag.RuleShellInterpolation},
		{`x=${{ params.v }}; echo "${!x}"`, diag.RuleShellInterpolation},
		{`declare -i x; x=${{ params.v }}`, diag.RuleShellDataPosition},
		{`PATH=${{ params.v }}`, diag.RuleShellDataPosition},
		{`PATH=${{ params.v }} ls`, diag.RuleShellDataPosition},
		{`env LD_PRELOAD=${{ params.v }} ls`, diag.RuleShellDataPosition},
		{`env -S ${{ params.v }}`, diag.RuleShellInterpolation},
		{`sudo -s ${{ params.v }}`, diag.RuleShellInterpolation},
		{`sudo ${{ params.v }}`, diag.RuleShellDataPosition},
		{`f() { $1; }; f ${{ params.v }}`, diag.RuleShellDataPosition},
		{`awk ${{ params.v }}`, diag.RuleShellInterpolation},
		{`sed s/a/${{ params.v }}/ f`, diag.RuleShellInterpolation},
		{`find . -name ${{ params.v }}`, diag.RuleShellInterpolation},
		{`mytool ${{ params.v }}`, diag.RuleShellDataPosition},
		{`psql -c ${{ params.v }}`, diag.RuleShellInterpolation},
		{`psql -Xc ${{ params.v }}`, diag.RuleShellInterpolation},
		{`psql --command=${{ params.v }}`, diag.RuleShellInterpolation},
		{`psql ${{ params.v }}`, diag.RuleShellInterpolation},
		{`pg_ctl start -o ${{ params.v }}`, diag.RuleShellInterpolation},
		{`sort --compress-program ${{ params.v }} f`, diag.RuleShellInterpolation},
		{`cat 3<<EOF
${{ params.v }}
EOF`, diag.RuleShellDataPosition},
		{`ls >&${{ params.v }}`, diag.RuleShellDataPosition},
		{`timeout 5 sh -c ${{ params.v }}`, diag.RuleShellInterpolation},
		{`sudo -u postgres env X=${{ params.v }} ls`, diag.RuleShellDataPosition},
		{`for x in ${{ params.v }}; do $x; done`, diag.RuleShellDataPosition},
		// Option operands are data only where the program is known to keep
		// them so: psql pipes -o '|cmd' to a shell, pg_ctl pastes -D, -l
		// and -p into the shell line that starts the server.
		{`psql -o ${{ params.v }} -c 'SELECT 1'`, diag.RuleShellInterpolation},
		{`psql --output=${{ params.v }}`, diag.RuleShellInterpolation},
		{`psql -f ${{ params.v }}`, diag.RuleShellInterpolation},
		{`psql -L ${{ params.v }} -c 'SELECT 1'`, diag.RuleShellDataPosition},
		{`psql -P ${{ params.v }} -c 'SELECT 1'`, diag.RuleShellDataPosition},
		{`pg_ctl start -D ${{ params.v }}`, diag.RuleShellInterpolation},
		{`pg_ctl -D ${{ params.v }} restart`, diag.RuleShellInterpolation},
		{`pg_ctl -l ${{ params.v }} start`, diag.RuleShellInterpolation},
		{`pg_ctl start -p ${{ params.v }}`, diag.RuleShellInterpolation},
		// In every mode, for a configuration-only directory (adjust_data_dir).
		{`pg_ctl promote -w -t 60 -D ${{ params.v }}`, diag.RuleShellInterpolation},
		{`pg_ctl status -D"${{ params.v }}"`, diag.RuleShellInterpolation},
		{`data=${{ params.v }}; "$bin/pg_ctl" status -D "$data"`, diag.RuleShellInterpolation},
		// A here-document on exec without a program is every later
		// command's input; a file read as input is what the command reads.
		{"exec <<EOF\n${{ params.v }}\nEOF\nsh", diag.RuleShellDataPosition},
		{"exec 0<<EOF\n${{ params.v }}\nEOF\npsql", diag.RuleShellDataPosition},
		{`exec <<< ${{ params.v }}; sh`, diag.RuleShellDataPosition},
		{`sh < ${{ params.v }}`, diag.RuleShellInterpolation},
		{`psql -X -h /tmp < ${{ params.v }}`, diag.RuleShellInterpolation},
		{`sh < <(echo ${{ params.v }})`, diag.RuleShellInterpolation},
		{`cat 3< ${{ params.v }}`, diag.RuleShellDataPosition},
		{`sh -c "$(cat < <(echo ${{ params.v }}))"`, diag.RuleShellInterpolation},
		{`x=$(cat < ${{ params.v }}); eval "$x"`, diag.RuleShellInterpolation},
		// An unquoted $(...) holding a value is split into arguments.
		{`psql -X -h $(echo ${{ params.v }}) -c 'SELECT 1'`, diag.RuleShellInterpolation},
		{`rm -rf $(echo ${{ params.v }})`, diag.RuleShellInterpolation},
		// psql reads a -v variable used as :name as more input (\! runs a shell).
		{`psql -X -v lim=${{ params.v }} -c 'SELECT 1'`, diag.RuleShellDataPosition},
		// Programs whose options run code.
		{`initdb -L ${{ params.v }} -D /tmp/x`, diag.RuleShellInterpolation},
		{`pg_rewind -c --config-file ${{ params.v }} -D /x`, diag.RuleShellInterpolation},
		{`pg_rewind -c -D ${{ params.v }}`, diag.RuleShellInterpolation},
		{`sudo -c ls ${{ params.v }}`, diag.RuleShellDataPosition},
		{`pg_ctlcluster -- 15 main restart ${{ params.v }}`, diag.RuleShellInterpolation},
		{`pg_ctlcluster 15 main start -o ${{ params.v }}`, diag.RuleShellInterpolation},
		{`pg_ctlcluster 15 main start -- ${{ params.v }}`, diag.RuleShellInterpolation},
		// getopt_long takes an unambiguous prefix of a long option.
		{`psql --comm=${{ params.v }}`, diag.RuleShellInterpolation},
		{`psql --out ${{ params.v }}`, diag.RuleShellInterpolation},
		{`sort --compress=${{ params.v }} f`, diag.RuleShellInterpolation},
		{`sudo --sh ${{ params.v }}`, diag.RuleShellInterpolation},
		{`psql -${{ params.v }}`, diag.RuleShellInterpolation},
		{`psql --${{ params.v }}`, diag.RuleShellInterpolation},
		{`psql --quiet ${{ params.v }}`, diag.RuleShellDataPosition},
		{`sudo -R ${{ params.v }} ls`, diag.RuleShellDataPosition},
		{`sudo --chroot=${{ params.v }} ls`, diag.RuleShellDataPosition},
		{`nc localhost ${{ params.v }}`, diag.RuleShellDataPosition},
		// A variable's value: split when unquoted, evaluated by bash's
		// prompt expansion, arithmetic and -v.
		{`h=${{ params.v }}; psql -h $h -c 'SELECT 1'`, diag.RuleShellInterpolation},
		{`x=${{ params.v }}; echo "${x@P}"`, diag.RuleShellInterpolation},
		{`x=${{ params.v }}; [[ $x -eq 1 ]]`, diag.RuleShellInterpolation},
		{`x=${{ params.v }}; [[ -v $x ]]`, diag.RuleShellInterpolation},
		// Output that reaches a command no pipe shows.
		{`echo ${{ params.v }} | tee >(sh)`, diag.RuleShellDataPosition},
		{`coproc sh; echo ${{ params.v }} >&"${COPROC[1]}"`, diag.RuleShellDataPosition},
	}
	for _, c := range refused {
		_, errs := bind(t, c.src, Shell)
		if len(errs) != 1 || errs[0].Rule != c.rule || !strings.Contains(errs[0].Msg, "${{ }}") {
			t.Errorf("%q: got %v, want one %s refusal", c.src, errMsgs(errs), c.rule)
		}
	}
	accepted := []string{
		`echo ${{ params.v }}`,
		`printf '%s\n' "${{ params.v }}"`,
		`printf -- ${{ params.v }}`,
		`test -f ${{ params.v }}/standby.signal`,
		`[ "${{ params.v }}" = x ]`,
		`[ -n "${{ params.v }}" ]`,
		`[[ -v x && ${{ params.v }} == x ]]`,
		`LC_ALL=C ${{ params.v }}/pg_controldata -D ${{ params.v }}`,
		`sudo -u ${{ params.v }} ls ${{ params.v }}`,
		`sudo -u postgres -- timeout ${{ params.n }} pg_isready -h ${{ params.v }}`,
		`runuser -u postgres -- env PGPASSFILE=/dev/fd/4 pg_basebackup -D ${{ params.v }} -w`,
		`x=$(cat ${{ params.v }} | grep -c y); echo "$x"`,
		`psql -X -c 'SELECT 1' "host=${{ params.v }}"`,
		`psql -d ${{ params.v }} -c 'SELECT 1'`,
		"cat <<EOF > /tmp/f\n${{ params.v }}\nEOF",
		"cat <<'EOF' | tee /tmp/f\n${{ params.v }}\nEOF",
		`grep -qx -- host=${{ params.v }} ${{ params.v }}`,
		`echo ${{ params.v }} > ${{ params.v }}`,
		`case ${{ params.v }} in x) echo y;; esac`,
		`for f in ${{ params.v }}; do rm -f "$f"; done`,
		`psql -h ${{ params.v }} -p ${{ params.n }} -U ${{ params.v }} -d x -c 'SELECT 1'`,
		`psql --host=${{ params.v }} --user ${{ params.v }} -c 'SELECT 1'`,
		`h=${{ params.v }}; psql -h "$h" -c 'SELECT 1'`,
		`sudo -u ${{ params.v }} -D ${{ params.v }} ls`,
		`sort -k ${{ params.v }} f`,
		`cat <(echo ${{ params.v }})`,
		`pg_ctlcluster 15 main start -m ${{ params.v }}`,
		`pg_ctlcluster -- ${{ params.v }} ${{ params.v }} restart`,
		`journalctl --unit=${{ params.v }} -n 20`,
		`pg_isready --host=${{ params.v }} --port=5432`,
		`echo "$(echo ${{ params.v }})"`,
		`x="$(cat ${{ params.v }})"; echo "$x"`,
		`grep -c x < ${{ params.v }}`,
		`cat < <(echo ${{ params.v }})`,
		`initdb -D ${{ params.v }} -U postgres`,
		`pg_rewind --source-server=${{ params.v }} -D /var/lib/pgsql/data`,
	}
	for _, src := range accepted {
		if _, errs := bind(t, src, Shell); len(errs) > 0 {
			t.Errorf("%q: refused: %v", src, errMsgs(errs))
		}
	}
}

// TestShellErrorOffsets: a refusal points at the ${{ of its value.
func TestShellErrorOffsets(t *testing.T) {
	src := "echo ok\necho `x ${{ params.v }}` ${{ params.v }}"
	_, errs := bind(t, src, Shell)
	if len(errs) != 1 || errs[0].Offset != strings.Index(src, "${{") {
		t.Fatalf("got %v", errs)
	}
}

// TestShellWordStart: a plain value is quoted when it would read as an
// assignment (any value with =) or, starting a word, a reserved word: a
// value as a command's name is refused (shell-data-position), and still
// quoted when the author keeps it with # runbook:ignore.
func TestShellWordStart(t *testing.T) {
	for _, c := range []struct{ src, v, want string }{
		{"${{ params.v }} true", "PATH=/tmp", "'PATH=/tmp' true"},
		{"${{ params.v }} true", "if", "'if' true"},
		{"${{ params.v }} true", "ls", "ls true"},
		{"${{ params.v }} true", "/bin/ls", "/bin/ls true"},
		{"PATH${{ params.v }} true", "=/tmp", "PATH'=/tmp' true"},
		{"${{ params.v }}${{ params.v }} true", "=", "'=''=' true"},
		{"echo ${{ params.v }}", "if", "echo 'if'"},
	} {
		tp, errs := bind(t, c.src, Shell)
		if len(errs) > 0 && (errs[0].Rule != diag.RuleShellDataPosition || strings.HasPrefix(c.src, "echo")) {
			t.Fatal(errMsgs(errs))
		}
		if got, _ := tp.Render(map[string]any{"params": map[string]any{"v": c.v}}); got != c.want {
			t.Errorf("%q with %q: got %s, want %s", c.src, c.v, got, c.want)
		}
	}
}

// shells are the POSIX shells a command may meet: dash is /bin/sh on
// Debian, bash on RHEL.
func shells(t testing.TB) [][]string {
	var out [][]string
	for _, sh := range [][]string{{"/bin/dash", "-c"}, {"/bin/bash", "-c"}, {"/bin/bash", "--posix", "-c"}, {"/bin/busybox", "sh", "-c"}} {
		if _, err := os.Stat(sh[0]); err == nil {
			out = append(out, sh)
		}
	}
	if len(out) == 0 {
		t.Skip("no shell to run commands with")
	}
	return out
}

// FuzzShellQuoting runs each quoting context of a command in every shell
// installed here, with any value: what the command receives, printed
// NUL-separated, is the value exactly, or the value is refused. The step
// types run the same through the transports in steps (FuzzInterpolation).
func FuzzShellQuoting(f *testing.F) {
	for _, s := range []string{"", "a b", "'", `"`, "`id`", "$(id)", "\\", "a\nEOF\nb", "EOF", "\tEOF", "x\x00", "EOF)\necho pwned >&2", "EOF )", "$do$", "PATH=/x", "if", "!", "*", "~", "\xff"} {
		f.Add(s)
	}
	sh := shells(f)
	type ctx struct {
		src  string
		want func(v string) (string, bool)
	}
	plain := func(pre, post string) func(string) (string, bool) {
		return func(v string) (string, bool) { return pre + v + post + "\x00", !strings.Contains(v, "\x00") }
	}
	doc := func(dash bool) func(string) (string, bool) {
		return func(v string) (string, bool) {
			lines := strings.Split("pre "+v, "\n")
			for i, l := range lines {
				if dash {
					lines[i] = strings.TrimLeft(l, "\t")
				}
				if endsHeredoc(lines[i], "EOF") || dashDropsByte(lines[i], "EOF") {
					return "", false
				}
			}
			return strings.Join(lines, "\n") + "\n", !strings.Contains(v, "\x00")
		}
	}
	ctxs := []ctx{
		{`printf '%s\0' ${{ params.v }}`, plain("", "")},
		{`printf '%s\0' x${{ params.v }}y`, plain("x", "y")},
		{`printf '%s\0' "pre ${{ params.v }} post"`, plain("pre ", " post")},
		{`printf '%s\0' 'pre ${{ params.v }} post'`, plain("pre ", " post")},
		{`printf '%s\0' "$(printf %s "${{ params.v }}"; echo .)"`, plain("", ".")},
		{"cat <<EOF\npre ${{ params.v }}\nEOF", doc(false)},
		{"cat <<'EOF'\npre ${{ params.v }}\nEOF", doc(false)},
		{"cat <<-EOF\n\tpre ${{ params.v }}\n\tEOF", doc(true)},
		{"if true; then printf '%s\\0' ${{ params.v }}; fi", plain("", "")},
		{"x=$(cat <<EOF\npre ${{ params.v }}\nEOF\n)\nprintf '%s\\n' \"$x\"", func(v string) (string, bool) {
			w, ok := doc(false)(v)
			return strings.TrimRight(w, "\n") + "\n", ok
		}},
	}
	tps := make([]*Template, len(ctxs))
	for i, c := range ctxs {
		tp, errs := ParseTemplate(c.src, testScope())
		if len(errs) == 0 {
			errs = tp.In(Shell)
		}
		if len(errs) > 0 {
			f.Fatalf("%q: %s", c.src, errs[0].Msg)
		}
		tps[i] = tp
	}
	f.Fuzz(func(t *testing.T, v string) {
		for i, c := range ctxs {
			want, ok := c.want(v)
			line, err := tps[i].Render(map[string]any{"params": map[string]any{"v": v}})
			if !ok {
				if err == nil {
					t.Errorf("%q with %q: placed, want refused", c.src, v)
				}
				continue
			}
			if err != nil {
				t.Errorf("%q with %q: %v", c.src, v, err)
				continue
			}
			for _, s := range sh {
				var out bytes.Buffer
				cmd := exec.Command(s[0], append(s[1:], line)...)
				cmd.Stdout = &out
				if err := cmd.Run(); err != nil || out.String() != want {
					t.Errorf("%s %q with %q:\n got %q (%v)\nwant %q\nline %s", s[0], c.src, v, out.String(), err, want, line)
				}
			}
		}
	})
}
