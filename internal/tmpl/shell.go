package tmpl

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"

	"mvdan.cc/sh/v3/syntax"

	"github.com/runbook-dev/runbook/internal/diag"
)

// Shell is the language of command lines, run by a POSIX shell (/bin/sh,
// which is dash on Debian and bash on RHEL). Each ${{ }} is quoted for
// the place it lands in:
//
//   - a bare word: as it is when it has no character a shell treats
//     specially, single-quoted as one word otherwise (echo ${{ x }});
//   - inside double quotes: $, `, " and \ escaped ("value ${{ x }}");
//   - inside single quotes: each quote closed, escaped and reopened
//     ('value ${{ x }}');
//   - in a here-document: $, ` and \ escaped when its delimiter is
//     unquoted, nothing when it is quoted; a value may not make a line
//     that ends the here-document.
//
// Anywhere else (comments, backquotes, ${...}, arithmetic, $'...', names,
// the script of sh -c or eval) the playbook is refused when it loads,
// since no quoting makes a value safe there. The command is parsed with
// mvdan.cc/sh, a complete parser of POSIX shell and bash.
var Shell Lang = shellLang{}

type shellLang struct{}

// shellParsers reuses parsers, which are not safe for concurrent use.
var shellParsers = sync.Pool{New: func() any {
	return syntax.NewParser(syntax.KeepComments(true), syntax.Variant(syntax.LangBash))
}}

func (shellLang) bind(t *Template) []*TemplateError {
	m := t.withMarkers()
	if len(m.exprs) == 0 {
		return nil
	}
	// A template with no shell syntax in its text needs no parser: every
	// value in it is a bare word. Most commands are like that.
	if plainShell(t) {
		for k, pi := range m.exprs {
			t.parts[pi].slot = &shellSlot{kind: shBare, wordStart: m.wordStart(k)}
		}
		return t.checkShellMarks(m)
	}
	p := shellParsers.Get().(*syntax.Parser)
	defer shellParsers.Put(p)
	f, err := p.Parse(strings.NewReader(m.text), "")
	if err != nil {
		off := 0
		var pe syntax.ParseError
		if errors.As(err, &pe) {
			off = m.sourceOffset(int(pe.Pos.Offset()))
		}
		return []*TemplateError{{Offset: off, Error: &Error{Rule: diag.RuleShellInterpolation, Msg: fmt.Sprintf(
			"runbook cannot parse this command as shell (%s), so it cannot tell how to quote its ${{ }}: fix the syntax, or pass the values with env:", m.unmark(shellParseMsg(err)))}}}
	}
	found := make([]bool, len(m.exprs))
	var errs []*TemplateError
	refuse := func(k int, rule, format string, args ...any) {
		errs = append(errs, &TemplateError{Offset: m.exprOffset(k), Error: &Error{Rule: rule, Msg: fmt.Sprintf(format, args...)}})
	}
	var values, uses []shellPlace // uses: $name, ${name...}
	var arith []*syntax.Lit
	// hidden is a bash form through which output reaches a command that
	// no pipe or word of the command shows: a value's way cannot be
	// followed in a command that has one.
	hidden := ""
	flow := &shellFlow{m: m, vars: map[string]bool{}, decl: map[string]bool{}}
	var stack []syntax.Node
	syntax.Walk(f, func(n syntax.Node) bool {
		if n == nil {
			stack = stack[:len(stack)-1]
			return true
		}
		var text string
		switch n := n.(type) {
		case *syntax.Lit:
			text = n.Value
			if inArith(stack) {
				arith = append(arith, n)
			}
		case *syntax.SglQuoted:
			text = n.Value
		case *syntax.Comment:
			text = n.Text
		case *syntax.ParamExp:
			if n.Param != nil {
				uses = append(uses, shellPlace{stack: append(append([]syntax.Node{}, stack...), n)})
			}
		case *syntax.ProcSubst:
			if n.Op == syntax.CmdOut {
				hidden = "a process substitution >(...)"
			}
		case *syntax.CoprocClause:
			hidden = "a coprocess (coproc)"
		case *syntax.DeclClause:
			for _, a := range n.Args {
				if a.Name != nil {
					flow.decl[a.Name.Value] = true
				}
				if a.Naked && a.Value != nil {
					if s, ok := litWord(m, a.Value); ok {
						flow.decl[s] = true
					}
				}
			}
		}
		for _, k := range m.find(text) {
			if found[k] {
				continue
			}
			found[k] = true
			s, why := shellContext(stack, n, m, k)
			if why != "" {
				refuse(k, diag.RuleShellInterpolation, "%s", why)
				continue
			}
			t.parts[m.exprs[k]].slot = s
			st := append(append([]syntax.Node{}, stack...), n)
			w := wordIndex(st, len(st)-1)
			first := w >= 0 && wordStartsWith(st, w, len(st)-1) && strings.HasPrefix(text, m.marker(k))
			values = append(values, shellPlace{k: k, stack: st, valueFirst: first})
		}
		stack = append(stack, n)
		return true
	})
	// Where each value goes: its word, what its command's output reaches,
	// and the uses of the variables assigned from it.
	for _, v := range values {
		if e := t.parts[m.exprs[v.k]].expr; e.callsRaw && !e.rawInput {
			// raw() of constants: the author's own code.
			continue
		}
		if hidden != "" {
			refuse(v.k, diag.RuleShellDataPosition, "${{ }} in a command with %s, whose input comes from a write that no pipe or word shows, so runbook cannot follow where the value goes: %s", hidden, shellFix)
			continue
		}
		before := len(flow.vars)
		if r := flow.checkWord(v.stack, wordIndex(v.stack, len(v.stack)-1), v.valueFirst); r != nil {
			refuse(v.k, r.rule, "%s", r.msg)
			continue
		}
		if len(flow.vars) == before {
			continue
		}
		if r := flow.checkVarUses(uses, arith); r != nil {
			refuse(v.k, r.rule, "%s", r.msg)
		}
	}
	for k := range m.exprs {
		if !found[k] {
			refuse(k, diag.RuleShellInterpolation, "${{ }} in a place of the command that runbook cannot quote a value for: make it a word of its own, or pass the value with env:")
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return t.checkShellMarks(m)
}

// checkShellMarks refuses the functions that make no sense, or are unsafe,
// in a command line.
func (t *Template) checkShellMarks(m *markedText) []*TemplateError {
	var errs []*TemplateError
	for k, pi := range m.exprs {
		e := t.parts[pi].expr
		switch {
		case e.callsLiteral:
			errs = append(errs, &TemplateError{Offset: m.exprOffset(k), Error: &Error{Rule: diag.RuleShellInterpolation,
				Msg: "literal() makes an SQL string literal; a value in a command is quoted for the shell already: write ${{ x }} without literal()"}})
		case e.rawInput:
			errs = append(errs, &TemplateError{Offset: m.exprOffset(k), Error: &Error{Rule: diag.RuleUnsafeRaw,
				Msg: "raw() inserts its value unquoted, as shell code, and this value comes from outside the playbook (params, inventory, results), so whoever sets it runs commands: drop raw() to have it quoted as one word, or pass it with env: and use \"$NAME\""}})
		}
	}
	return errs
}

// plainShell reports whether the text around a template's expressions
// has no shell syntax that changes how a word is read (no quotes,
// expansions, escapes, comments, pipes, assignments, line breaks, and no
// redirection but to a file), and every value is an argument of a command written
// before it that keeps all its arguments data (cat, ls, pg_controldata:
// no option of theirs runs code).
func plainShell(t *Template) bool {
	var b strings.Builder
	for _, p := range t.parts {
		if p.expr != nil {
			b.WriteByte(0)
			continue
		}
		for j := 0; j < len(p.lit); j++ {
			c := p.lit[j]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(" \t_./:,@%+-;&>", c) >= 0) {
				return false
			}
		}
		if strings.Contains(p.lit, ">&") {
			// A file descriptor, not a file name.
			return false
		}
		b.WriteString(p.lit)
	}
	for _, cmd := range strings.FieldsFunc(b.String(), func(r rune) bool { return r == ';' || r == '&' }) {
		f := strings.Fields(cmd)
		if len(f) == 0 || !strings.Contains(cmd, "\x00") {
			continue
		}
		if strings.Contains(f[0], "\x00") {
			return false
		}
		spec, known := shellData[path.Base(f[0])]
		if !known || spec.wrapper || spec.test || spec.code != "" || len(spec.longCode) > 0 {
			return false
		}
	}
	return true
}

// shellWordKind is the quoting context of a value.
type shellWordKind int

const (
	shBare shellWordKind = iota
	shDouble
	shSingle
	shHeredoc       // an unquoted here-document body: $, ` and \ are special
	shHeredocQuoted // a quoted one: nothing is
)

// shellSlot quotes a value for its shell context.
type shellSlot struct {
	kind shellWordKind
	// wordStart is set for a bare value that starts a word, where a plain
	// `if` would be read as a reserved word.
	wordStart bool
	// ends are the end lines of the here-documents the value lies in.
	ends []heredocEnd
}

// heredocEnd is the line that ends a here-document; with dash set (<<-),
// leading tabs are stripped first.
type heredocEnd struct {
	word string
	dash bool
}

func (s *shellSlot) quote(v any) (string, error) {
	if _, ok := v.(SQLString); ok {
		return "", errors.New("literal() makes an SQL string literal, not a shell word")
	}
	if r, ok := v.(Raw); ok {
		return Format(r.Value), nil
	}
	str := Format(v)
	if strings.IndexByte(str, 0) >= 0 {
		return "", errors.New("the value holds a NUL byte, which no command argument can carry")
	}
	switch s.kind {
	case shDouble:
		return dqEscaper.Replace(str), nil
	case shSingle:
		return strings.ReplaceAll(str, "'", `'\''`), nil
	case shHeredoc:
		return heredocEscaper.Replace(str), nil
	case shHeredocQuoted:
		return str, nil
	}
	if s.wordStart && reservedWords[str] {
		return "'" + str + "'", nil
	}
	return ShellQuote(str), nil
}

func (s *shellSlot) checkSpan(out string, start, end int) error {
	if len(s.ends) == 0 {
		return nil
	}
	// Every line the value touches, whole.
	from := strings.LastIndexByte(out[:start], '\n') + 1
	to := len(out)
	if i := strings.IndexByte(out[end:], '\n'); i >= 0 {
		to = end + i
	}
	for _, line := range strings.Split(out[from:to], "\n") {
		for _, e := range s.ends {
			l := line
			if e.dash {
				l = strings.TrimLeft(l, "\t")
			}
			if endsHeredoc(l, e.word) {
				return fmt.Errorf("a line of the value, with the text around it, would end the here-document early: it starts with the end word %q (bash also ends a here-document inside $(...) at a line such as %q)", e.word, e.word+")")
			}
			if dashDropsByte(l, e.word) {
				return fmt.Errorf("a line of the value, with the text around it, starts like the here-document's end %q and goes on with a non-ASCII byte, which dash (/bin/sh on Debian) drops there: the command would not get the value as it is", e.word)
			}
		}
	}
	return nil
}

// endsHeredoc reports whether a shell may take line as the end of a
// here-document ending at word: the line is the word, or starts with it
// followed by something that is not part of a word (bash ends a
// here-document inside $(...) at "EOF)").
func endsHeredoc(line, word string) bool {
	if !strings.HasPrefix(line, word) {
		return false
	}
	if len(line) == len(word) {
		return true
	}
	c := line[len(word)]
	return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c >= 0x80)
}

// dashDropsByte reports whether dash would lose a byte of a here-document
// line: when a line starts with part of the end word and the next byte is
// not ASCII, dash 0.5.12 drops that byte.
func dashDropsByte(line, word string) bool {
	n := 0
	for n < len(line) && n < len(word) && line[n] == word[n] {
		n++
	}
	return n > 0 && n < len(line) && line[n] >= 0x80
}

var (
	dqEscaper      = strings.NewReplacer(`\`, `\\`, `$`, `\$`, "`", "\\`", `"`, `\"`)
	heredocEscaper = strings.NewReplacer(`\`, `\\`, `$`, `\$`, "`", "\\`")
)

// reservedWords are the words a shell reads as syntax where a command
// starts, unless quoted.
var reservedWords = map[string]bool{
	"if": true, "then": true, "else": true, "elif": true, "fi": true, "case": true, "esac": true,
	"for": true, "while": true, "until": true, "do": true, "done": true, "in": true,
	"function": true, "select": true, "time": true, "coproc": true,
}

// ShellQuote quotes s as one word for a POSIX shell: as it is when it is
// made of characters no shell treats specially, in single quotes
// otherwise. = counts as special: joined to a name before it, an unquoted
// = at the start of a command would make an assignment (PATH=...).
func ShellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+:,./-_", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellContext decides how the value of marker k, found in leaf (a Lit,
// a SglQuoted or a Comment) under the nodes of stack, is quoted, or why
// it cannot be.
func shellContext(stack []syntax.Node, leaf syntax.Node, m *markedText, k int) (*shellSlot, string) {
	s := &shellSlot{kind: shBare}
	w := len(stack) - 1 // the index of the Word holding the value
	switch leaf := leaf.(type) {
	case *syntax.Comment:
		return nil, "${{ }} in a shell comment: a newline in the value would end the comment and run the rest as commands; move it out of the comment"
	case *syntax.SglQuoted:
		if leaf.Dollar {
			return nil, "${{ }} inside $'...', whose backslash escapes runbook does not quote for: use '...' or \"...\""
		}
		s.kind = shSingle
	case *syntax.Lit:
		switch parent := stack[w].(type) {
		case *syntax.Word:
			s.wordStart = len(parent.Parts) > 0 && parent.Parts[0] == leaf && strings.HasPrefix(leaf.Value, m.marker(k))
		case *syntax.DblQuoted:
			if parent.Dollar {
				return nil, "${{ }} inside $\"...\" (a translated string): use \"...\""
			}
			s.kind = shDouble
			w--
		default:
			return nil, "${{ }} where the shell expects a name (of a variable, a function or a parameter), not a value: write the name in the command; " + shellWhere(stack[w])
		}
		if m.afterBackslash(k) {
			return nil, "${{ }} right after a backslash, which would undo the quoting of the value: remove the backslash"
		}
	}
	if w < 1 {
		return nil, "${{ }} in a place of the command that runbook cannot quote a value for"
	}
	word, ok := stack[w].(*syntax.Word)
	if !ok {
		return nil, "${{ }} in a place of the command that runbook cannot quote a value for"
	}
	// The node that holds the word decides whether the word is a value.
	switch p := stack[w-1].(type) {
	case *syntax.CallExpr, *syntax.CaseClause, *syntax.CaseItem, *syntax.WordIter, *syntax.TestClause:
	case *syntax.Assign:
		if p.Value != word {
			return nil, "${{ }} in the name or index of an assignment: write the name in the command"
		}
	case *syntax.ArrayElem:
		if p.Value != word {
			return nil, "${{ }} in an array index, which bash evaluates as arithmetic code"
		}
	case *syntax.Redirect:
		switch {
		case p.Hdoc == word:
			if s.kind != shBare {
				return nil, "${{ }} in a place of a here-document that runbook cannot quote a value for"
			}
			s.kind = shHeredoc
			if heredocQuoted(p.Word) {
				s.kind = shHeredocQuoted
			}
		case p.Op == syntax.Hdoc || p.Op == syntax.DashHdoc:
			return nil, "${{ }} in the delimiter of a here-document: write the delimiter in the command"
		}
	case *syntax.BinaryTest:
		if arithTest(p.Op) {
			return nil, "${{ }} in an arithmetic comparison of [[ ]], which bash evaluates as code: compare with = or compute the number in the expression"
		}
	case *syntax.UnaryTest:
		if p.Op == syntax.TsVarSet || p.Op == syntax.TsRefVar {
			return nil, "${{ }} as the name tested by [[ -v ]], which bash evaluates as code"
		}
	default:
		return nil, shellWhereMsg(p)
	}
	// What encloses it further out: quoting parsed twice, code run from a
	// string, here-documents it must not end.
	for i := w - 1; i >= 0; i-- {
		child := stack[i+1]
		switch p := stack[i].(type) {
		case *syntax.CmdSubst:
			if p.Backquotes {
				return nil, "${{ }} inside backquotes, where the shell parses quoting twice: use $(...) instead"
			}
		case *syntax.ParamExp, *syntax.ArithmExp, *syntax.ArithmCmd, *syntax.LetClause:
			return nil, shellWhereMsg(p)
		case *syntax.BinaryTest:
			if arithTest(p.Op) {
				return nil, "${{ }} in an arithmetic comparison of [[ ]], which bash evaluates as code: compare with = or compute the number in the expression"
			}
		case *syntax.Redirect:
			if p.Hdoc == child {
				s.ends = append(s.ends, heredocEnd{word: heredocWord(p.Word), dash: p.Op == syntax.DashHdoc})
			}
		}
	}
	return s, ""
}

func arithTest(op syntax.BinTestOperator) bool {
	switch op {
	case syntax.TsEql, syntax.TsNeq, syntax.TsLeq, syntax.TsGeq, syntax.TsLss, syntax.TsGtr:
		return true
	}
	return false
}

// heredocQuoted reports whether a here-document's delimiter is quoted,
// which makes its body literal.
func heredocQuoted(w *syntax.Word) bool {
	for _, p := range w.Parts {
		switch p := p.(type) {
		case *syntax.Lit:
			if strings.Contains(p.Value, `\`) {
				return true
			}
		default:
			return true
		}
	}
	return false
}

// writeUnescaped writes the text of a literal word part with its
// backslashes removed, each keeping the character it escapes.
func writeUnescaped(b *strings.Builder, v string) {
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
}

// heredocWord is the line that ends a here-document: its delimiter with
// the quotes removed.
func heredocWord(w *syntax.Word) string {
	var b strings.Builder
	eachWordPart(w.Parts, func(p syntax.WordPart) bool {
		switch p := p.(type) {
		case *syntax.Lit:
			writeUnescaped(&b, p.Value)
		case *syntax.SglQuoted:
			b.WriteString(p.Value)
		}
		return true
	})
	return b.String()
}

// shellWhere names a node that holds a value runbook refuses to quote.
func shellWhere(n syntax.Node) string {
	switch n.(type) {
	case *syntax.ParamExp:
		return "here it is part of a ${...} expansion"
	case *syntax.Assign:
		return "here it is the name of an assignment"
	case *syntax.FuncDecl:
		return "here it is the name of a function"
	case *syntax.Redirect:
		return "here it is the file descriptor of a redirection"
	}
	return "here it is not a word of its own"
}

func shellWhereMsg(n syntax.Node) string {
	switch n.(type) {
	case *syntax.ParamExp:
		return "${{ }} inside ${...}, where quoting does not apply as in a word: pass the value with env: and use \"$NAME\", or move it out of the expansion"
	case *syntax.ArithmExp, *syntax.ArithmCmd, *syntax.LetClause, *syntax.BinaryArithm, *syntax.UnaryArithm, *syntax.ParenArithm:
		return "${{ }} in shell arithmetic, which evaluates its text as code: compute the number in the expression (${{ params.n + 1 }}) and use it as a word"
	}
	return "${{ }} in a place of the command that runbook cannot quote a value for: make it a word of its own, or pass the value with env:"
}

func shellParseMsg(err error) string {
	var pe syntax.ParseError
	if errors.As(err, &pe) {
		return pe.Text
	}
	return err.Error()
}
