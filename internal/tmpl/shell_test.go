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
		{src: `X=${{ params.v }} env`, want: `X='a'\''b"c$(x)` + "`y`" + `\' env`},
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
		{src: "sh -c ${{ params.v }}", want: "${{ }} in an argument that is run as shell code", rule: diag.RuleShellInterpolation},
		{src: "bash -ec \"x=${{ params.v }}\"", want: "${{ }} in an argument that is run as shell code", rule: diag.RuleShellInterpolation},
		{src: "sudo -u postgres sh -c \"$(echo ${{ params.v }})\"", want: "${{ }} in an argument that is run as shell code", rule: diag.RuleShellInterpolation},
		{src: "eval ls ${{ params.v }}", want: "${{ }} in an argument that is run as shell code", rule: diag.RuleShellInterpolation},
		{src: "trap ${{ params.v }} EXIT", want: "${{ }} in an argument that is run as shell code", rule: diag.RuleShellInterpolation},
		{src: "command eval ${{ params.v }}", want: "${{ }} in an argument that is run as shell code", rule: diag.RuleShellInterpolation},
		{src: "grep eval ${{ params.v }}", want: `grep eval 'a'\''b"c$(x)` + "`y`" + `\'`},
		{src: "sh -c 'echo \"$0\"' ${{ params.v }}", want: `sh -c 'echo "$0"' 'a'\''b"c$(x)` + "`y`" + `\'`},
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

// TestShellErrorOffsets: a refusal points at the ${{ of its value.
func TestShellErrorOffsets(t *testing.T) {
	src := "echo ok\necho `x ${{ params.v }}` ${{ params.v }}"
	_, errs := bind(t, src, Shell)
	if len(errs) != 1 || errs[0].Offset != strings.Index(src, "${{") {
		t.Fatalf("got %v", errs)
	}
}

// TestShellWordStart: a plain value is quoted when it would read as an
// assignment (any value with =) or, starting a word, a reserved word.
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
		if len(errs) > 0 {
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
	for _, s := range []string{"", "a b", "'", `"`, "`id`", "$(id)", "\\", "a\nEOF\nb", "EOF", "\tEOF", "x\x00", "$do$", "PATH=/x", "if", "!", "*", "~", "\xff"} {
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
				if lines[i] == "EOF" || dashDropsByte(lines[i], "EOF") {
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
