package tmpl

import (
	"strings"
	"testing"
)

// TestCheckText: each value stands in as a checker should read it, quoted
// as runbook quotes it there, and offsets map back to the template.
func TestCheckText(t *testing.T) {
	for _, c := range []struct {
		src  string
		lang Lang
		want string
	}{
		{"echo ${{ params.v }} x", Shell, `echo "${RBSLOT0Z}" x`},
		{`echo "a ${{ params.v }}b"`, Shell, `echo "a ${RBSLOT0Z}b"`},
		{`echo 'a ${{ params.v }}'`, Shell, `echo 'a rbslot0z'`},
		{"cat <<EOF\n${{ params.v }}\nEOF", Shell, "cat <<EOF\n${RBSLOT0Z}\nEOF"},
		{"cat <<'EOF'\n${{ params.v }}\nEOF", Shell, "cat <<'EOF'\nrbslot0z\nEOF"},
		{`ls ${{ raw("-l | sort") }}`, Shell, `ls -l | sort`},
		{"echo ${{ params.v }}${{ params.v }}", Shell, `echo "${RBSLOT0Z}""${RBSLOT1Z}"`},
		{"SELECT 1 FROM ${{ params.v }}", SQL, `SELECT 1 FROM "rbslot0z"`},
		{`ALTER ROLE r PASSWORD ${{ literal(params.v) }}`, SQL, `ALTER ROLE r PASSWORD 'rbslot0z'`},
		{`SELECT 1 FROM "t_${{ params.v }}"`, SQL, `SELECT 1 FROM "t_rbslot0z"`},
		{`SELECT 1 ${{ raw("ORDER BY 1") }}`, SQL, `SELECT 1 ORDER BY 1`},
		{"echo rbslot ${{ params.v }}", Shell, `echo rbslot "${RBSLOTQ0Z}"`},
		{"echo plain", Shell, "echo plain"},
	} {
		tp, errs := bind(t, c.src, c.lang)
		if len(errs) > 0 {
			t.Fatalf("%q: %s", c.src, errs[0].Msg)
		}
		ct, ok := tp.CheckText()
		if !ok || ct.Text != c.want {
			t.Errorf("%q: %q (%v), want %q", c.src, ct.Text, ok, c.want)
			continue
		}
		// The text after the last value maps to itself.
		if i := strings.LastIndex(c.src, "}}"); i >= 0 && i+2 < len(c.src) {
			tail := c.src[i+2:]
			if got := ct.SourceOffset(len(ct.Text) - len(tail)); got != i+2 {
				t.Errorf("%q: the text after the last value maps to %d, want %d", c.src, got, i+2)
			}
		}
	}
}

func TestCheckTextOffsets(t *testing.T) {
	src := `echo ${{ params.v }} "$x" ${{ params.v }}`
	tp, _ := bind(t, src, Shell)
	ct, _ := tp.CheckText()
	for _, c := range []struct{ find string }{{`"$x"`}, {`${RBSLOT1Z}`}} {
		off := strings.Index(ct.Text, c.find)
		got := ct.SourceOffset(off)
		want := strings.Index(src, c.find)
		if c.find == `${RBSLOT1Z}` {
			want = strings.LastIndex(src, "${{")
		}
		if got != want {
			t.Errorf("%s at %d maps to %d, want %d", c.find, off, got, want)
		}
	}
	if got := ct.SourceOffset(len(ct.Text)); got != len(src) {
		t.Errorf("the end maps to %d, want %d", got, len(src))
	}
	if got := ct.Unmark("RBSLOT1Z is referenced, ${RBSLOT0Z} too"); got != "${{ }} is referenced, ${{ }} too" {
		t.Errorf("Unmark: %q", got)
	}
}

// TestCheckTextBroken: a template whose value could not be placed has
// no text to check: the refusal says what is wrong already.
func TestCheckTextBroken(t *testing.T) {
	tp, errs := bind(t, "echo `${{ params.v }}`", Shell)
	if len(errs) == 0 {
		t.Fatal("not refused")
	}
	if _, ok := tp.CheckText(); ok {
		t.Error("a refused template has a text to check")
	}
	tp, perrs := ParseTemplate("echo ${{ nope }}", testScope())
	if len(perrs) == 0 {
		t.Fatal("no error")
	}
	if _, ok := tp.CheckText(); ok {
		t.Error("a template whose expression does not compile has a text to check")
	}
}
