package tmpl

import (
	"path"
	"regexp"
	"strings"

	"mvdan.cc/sh/v3/syntax"

	"github.com/runbook-dev/runbook/internal/diag"
)

// A value in a command is accepted only where runbook can prove that the
// shell and the program keep it data: an argument of a command whose name
// is written in the command and that is known not to run its arguments,
// or its standard input, as code (shellData). Anything else is refused:
// a list of the commands that do run code would always miss one (a
// quoted "eval", $S -c, flock -c, xargs sh -c, a pipe into sh...).
//
// What the value reaches further is followed too: the output of a command
// that holds it (a pipe, $(...)), and a variable assigned from it, must
// reach only such positions.

// shellCmd says how a known command reads its arguments.
type shellCmd struct {
	// wrapper: the command runs its operands as another command (sudo,
	// env, timeout); skip are its options, whose operands are data, and
	// operands the number of operands before the command (timeout's
	// duration). refuse are options that make it run a shell.
	wrapper  bool
	operands int
	refuse   string
	// args are the short options that take an operand, long those that
	// do (written without their dashes).
	args string
	long []string
	// code are the short options whose operand is code or a name (psql
	// -c, printf -v, pg_ctl -o), longCode the long ones.
	code     string
	longCode []string
	// data are the options among args and long whose operand is known to
	// stay data (psql -h, sudo -u). The operand of any other option is
	// refused as unproven: it may name a program the command runs, or
	// a file it writes or reads as code (psql -o '|cmd', pg_ctl -D).
	data     string
	longData []string
	// passthrough: the operands after the third (version, cluster,
	// action) are another program's options (pg_ctlcluster passes them
	// to pg_ctl).
	passthrough bool
	// stdinCode: the program runs its standard input as code (psql runs
	// SQL).
	stdinCode bool
	// firstOpts: options are read only before the first operand
	// (printf, the shell's builtins); GNU programs read them anywhere.
	firstOpts bool
	// varOut are the options that send the output to a variable, which
	// runbook does not follow (printf -v).
	varOut string
	// script: the first operand is a program (sed, awk), unless an
	// option among code gave it.
	script bool
	// test: the arguments are test(1)'s expression.
	test bool
	// assigns: NAME=VALUE operands are assignments (env).
	assigns bool
}

// shellData are the commands a value may be an argument of. A command
// not listed here, and a shell function, is refused: whoever needs one
// passes the value with env: and uses "$NAME", answering for it.
var shellData = map[string]shellCmd{
	// Wrappers. An operand of their options is data only where listed
	// (sudo -R, a root directory, chooses the program that runs).
	"sudo":    {wrapper: true, args: "ugCDhprtUTRac", long: []string{"user", "group", "close-from", "chdir", "host", "prompt", "role", "type", "other-user", "command-timeout", "chroot", "auth-type", "login-class"}, refuse: "sieEl", data: "ugCDhprtUTac", longData: []string{"user", "group", "close-from", "chdir", "host", "prompt", "role", "type", "other-user", "command-timeout", "auth-type", "login-class"}},
	"runuser": {wrapper: true, args: "ugG", long: []string{"user", "group", "supp-group"}, refuse: "clsfmpP", data: "ugG", longData: []string{"user", "group", "supp-group"}},
	"env":     {wrapper: true, args: "uC", long: []string{"unset", "chdir"}, refuse: "S", assigns: true, data: "uC", longData: []string{"unset", "chdir"}},
	"timeout": {wrapper: true, args: "sk", long: []string{"signal", "kill-after"}, operands: 1, data: "sk", longData: []string{"signal", "kill-after"}},
	"nice":    {wrapper: true, args: "n", long: []string{"adjustment"}, data: "n", longData: []string{"adjustment"}},
	"nohup":   {wrapper: true},
	"setsid":  {wrapper: true},
	"ionice":  {wrapper: true, args: "cnp", long: []string{"class", "classdata", "pid"}, data: "cnp", longData: []string{"class", "classdata", "pid"}},
	"stdbuf":  {wrapper: true, args: "ioe", long: []string{"input", "output", "error"}, data: "ioe", longData: []string{"input", "output", "error"}},
	"command": {wrapper: true, refuse: "vV"},
	"exec":    {wrapper: true, args: "a", data: "a"},
	"time":    {wrapper: true},

	// The shell's builtins that take data.
	"echo":   {firstOpts: true},
	"printf": {firstOpts: true, code: "v", varOut: "v"},
	"test":   {test: true},
	"[":      {test: true},
	":":      {}, "true": {}, "false": {}, "cd": {}, "exit": {}, "return": {}, "kill": {}, "umask": {}, "wait": {},

	// Programs. (nc is not one: some builds run a program given by -e or -c.)
	"cat": {}, "tac": {}, "head": {}, "tail": {}, "wc": {}, "uniq": {}, "tr": {}, "cut": {}, "paste": {},
	"grep": {}, "egrep": {}, "fgrep": {}, "diff": {}, "cmp": {}, "comm": {}, "ls": {}, "stat": {},
	"readlink": {}, "realpath": {}, "basename": {}, "dirname": {}, "date": {}, "sleep": {}, "id": {},
	"whoami": {}, "hostname": {}, "getent": {}, "du": {}, "df": {}, "mkdir": {}, "rmdir": {}, "rm": {},
	"cp": {}, "mv": {}, "ln": {}, "chmod": {}, "chown": {}, "chgrp": {}, "touch": {}, "tee": {},
	"base64": {}, "sha256sum": {}, "md5sum": {}, "cksum": {}, "mktemp": {}, "pgrep": {}, "ps": {},
	"ss": {}, "ping": {}, "systemctl": {}, "journalctl": {}, "sync": {}, "truncate": {},
	"sort":           {args: "kotST", long: []string{"key", "output", "field-separator", "buffer-size", "temporary-directory", "files0-from", "random-source"}, longCode: []string{"compress-program"}, data: "ktS", longData: []string{"key", "field-separator", "buffer-size"}},
	"systemd-escape": {}, "sha1sum": {}, "xxd": {}, "od": {}, "expr": {},
	// pg_ctlcluster passes -o to postgres and what follows -- to pg_ctl.
	"pg_ctlcluster":  {args: "m", long: []string{"mode"}, code: "o", longCode: []string{"options"}, data: "m", longData: []string{"mode"}, passthrough: true},
	"sed":            {args: "eflL", long: []string{"expression", "file", "line-length"}, code: "ef", longCode: []string{"expression", "file"}, script: true, data: "lL", longData: []string{"line-length"}},
	"awk":            {args: "fvF", long: []string{"file", "assign", "field-separator"}, code: "f", longCode: []string{"file"}, script: true, data: "vF", longData: []string{"assign", "field-separator"}},
	"pg_controldata": {}, "pg_isready": {}, "pg_waldump": {}, "pg_archivecleanup": {}, "pg_lsclusters": {},
	"pg_basebackup": {}, "pg_config": {},
	// initdb runs the SQL files of the share directory -L names; pg_rewind
	// runs the restore_command of the configuration in -D or
	// --config-file (with -c).
	"initdb":    {args: "DEULX", long: []string{"pgdata", "encoding", "username", "waldir", "locale", "lc-collate", "lc-ctype", "auth", "auth-host", "auth-local", "pwfile", "text-search-config", "wal-segsize"}, code: "L", data: "DEUX", longData: []string{"pgdata", "encoding", "username", "waldir", "locale", "lc-collate", "lc-ctype", "auth", "auth-host", "auth-local", "text-search-config", "wal-segsize"}},
	"pg_rewind": {args: "D", long: []string{"target-pgdata", "source-pgdata", "source-server", "config-file"}, longCode: []string{"config-file", "target-pgdata"}, code: "D", longData: []string{"source-server", "source-pgdata"}},
	// pg_ctl writes -D, -l and -p into the command line it gives /bin/sh
	// to start the server (pg_ctl.c, start_postmaster), and in every mode
	// -D into the one that asks postgres -C for a configuration-only
	// directory's data_directory (adjust_data_dir); -p names the program
	// it runs: code, as -o is.
	"pg_ctl": {args: "mtUNe", long: []string{"mode", "timeout"}, code: "DlopP", longCode: []string{"options", "pgdata", "log"}, data: "mt", longData: []string{"mode", "timeout"}},
	// psql runs -c and -f as SQL, pipes -o '|cmd' to a shell, writes -L,
	// and reads a variable of -v used as :name (unquoted) as more input,
	// backslash commands included (\! runs a shell).
	"psql": {args: "dhLpPRTUvF", long: []string{"dbname", "host", "log-file", "port", "pset", "record-separator", "table-attr", "username", "set", "variable", "field-separator"}, code: "cfo", longCode: []string{"command", "file", "output"}, stdinCode: true, data: "dhpRTUF", longData: []string{"dbname", "host", "port", "record-separator", "table-attr", "username", "field-separator"}},
}

// shellCodeRunners run an argument, or their input, as shell code: a
// value there is refused as shell-interpolation, not only unproven.
var shellCodeRunners = map[string]bool{
	"eval": true, "trap": true, "let": true, "alias": true, "source": true, ".": true,
	"sh": true, "bash": true, "dash": true, "ksh": true, "mksh": true, "zsh": true, "busybox": true,
	"su": true, "flock": true, "watch": true, "xargs": true, "find": true,
	"declare": true, "typeset": true, "local": true, "readonly": true, "export": true, "read": true,
	"mapfile": true, "readarray": true, "ssh": true, "perl": true, "python3": true, "python": true,
}

// shellEnvFix is the fix of a value in code; shellFix that of a value in
// a place runbook cannot prove is data, which the author may vouch for.
const (
	shellEnvFix = "pass the value with env: (env: {NAME: \"${{ ... }}\"}) and write \"$NAME\" in the command"
	shellFix    = shellEnvFix + "; or, when you know the program keeps it data, state it with # runbook:ignore " + diag.RuleShellDataPosition + " on the line above"
)

// shellRefusal is why a position is not plain data, and under which rule.
type shellRefusal struct {
	rule, msg string
}

// shellFlow proves that what a value becomes in a parsed command stays
// data. vars are the variables assigned from values, found as it goes.
type shellFlow struct {
	m    *markedText
	vars map[string]bool
	// decl are the names given attributes anywhere in the command
	// (declare -i, local -n): an assignment to them is not plain.
	decl map[string]bool
	// checked are the uses of variables proven already.
	checked map[int]bool
}

var lowerName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// wordIndex returns the index in stack of the outermost Word holding
// stack[i] within the same word (through quotes and ${...}), or -1.
func wordIndex(stack []syntax.Node, i int) int {
	w := -1
	for ; i >= 0; i-- {
		switch stack[i].(type) {
		case *syntax.Word:
			w = i
		case *syntax.DblQuoted, *syntax.ParamExp, *syntax.Lit, *syntax.SglQuoted:
		default:
			return w
		}
	}
	return w
}

// checkWord proves that the word stack[w], which holds a value (first
// when valueFirst, so that it may start with a -), is data, and that
// everything its command's output reaches is.
func (f *shellFlow) checkWord(stack []syntax.Node, w int, valueFirst bool) *shellRefusal {
	for {
		if w < 1 {
			return &shellRefusal{diag.RuleShellDataPosition, "${{ }} in a place of the command that runbook cannot prove is data: " + shellFix}
		}
		word := stack[w].(*syntax.Word)
		stmt := -1
		switch p := stack[w-1].(type) {
		case *syntax.CallExpr:
			if r := f.checkArg(p, word, valueFirst); r != nil {
				return r
			}
			stmt = w - 2
		case *syntax.Assign:
			if r := f.checkAssign(stack, w-1, p); r != nil {
				return r
			}
			return nil
		case *syntax.WordIter:
			if !lowerName.MatchString(p.Name.Value) || f.decl[p.Name.Value] {
				return &shellRefusal{diag.RuleShellDataPosition, "${{ }} in the list of a for loop whose variable is not a plain lower-case name of the command: " + shellFix}
			}
			f.vars[p.Name.Value] = true
			return nil
		case *syntax.CaseClause, *syntax.CaseItem:
			return nil
		case *syntax.TestClause, *syntax.BinaryTest, *syntax.UnaryTest:
			// [[ ]]: the arithmetic and -v forms are refused already.
			return nil
		case *syntax.Redirect:
			switch {
			case p.Op == syntax.DplIn || p.Op == syntax.DplOut:
				return &shellRefusal{diag.RuleShellDataPosition, "${{ }} as the file descriptor of a redirection: write the descriptor in the command"}
			case p.Hdoc == word || p.Op == syntax.WordHdoc || p.Op == syntax.RdrIn || p.Op == syntax.RdrInOut:
				// The input of the statement's command: a here-document, or
				// a file it reads (a name, or the output of <(...)), which
				// then reaches what the command prints.
				how := "a here-document"
				if p.Hdoc != word && p.Op != syntax.WordHdoc {
					how = "the file a redirection reads"
				}
				stmt = w - 2
				if r := f.checkStmtInput(stack, stmt, p, how); r != nil {
					return r
				}
			default:
				// The name of a file written.
				return nil
			}
		default:
			return &shellRefusal{diag.RuleShellDataPosition, "${{ }} in a place of the command that runbook cannot prove is data: " + shellFix}
		}
		// The command's output: every command a pipe feeds it to must
		// take its input as data, and a $(...) holding it is a word
		// that must be data in turn.
		next := -1
		for i := stmt; i >= 1; i-- {
			switch p := stack[i-1].(type) {
			case *syntax.BinaryCmd:
				if (p.Op == syntax.Pipe || p.Op == syntax.PipeAll) && stack[i] == p.X {
					if r := f.checkPipeInto(p.Y); r != nil {
						return r
					}
				}
			case *syntax.CmdSubst, *syntax.ProcSubst:
				next = i - 1
			}
			if next >= 0 {
				break
			}
		}
		if next < 0 {
			return nil
		}
		w = wordIndex(stack, next-1)
		valueFirst = w >= 0 && len(stack[w].(*syntax.Word).Parts) > 0 && wordStartsWith(stack, w, next)
		if _, isCmd := stack[next].(*syntax.CmdSubst); isCmd && w >= 1 {
			if r := unquotedArg(stack, w, next, "$(...) holding it"); r != nil {
				return r
			}
		}
	}
}

// unquotedArg refuses stack[at], inside the word stack[w], when it is not
// in double quotes and the word is an argument of a command (not its
// name): the shell splits what it expands to into more arguments, options
// among them, and expands patterns in them. what names stack[at].
func unquotedArg(stack []syntax.Node, w, at int, what string) *shellRefusal {
	call, ok := stack[w-1].(*syntax.CallExpr)
	if !ok || len(call.Args) == 0 || call.Args[0] == stack[w] {
		return nil
	}
	for i := w + 1; i < at; i++ {
		if _, ok := stack[i].(*syntax.DblQuoted); ok {
			return nil
		}
	}
	return &shellRefusal{diag.RuleShellInterpolation, "${{ }} reaches a " + what + " that is unquoted in an argument, where the shell splits what it expands to into more arguments (options among them) and expands patterns: put it in double quotes (\"$(...)\")"}
}

// wordStartsWith reports whether the word stack[w] starts with stack[n].
func wordStartsWith(stack []syntax.Node, w, n int) bool {
	for i := w; i < n; i++ {
		var first syntax.Node
		switch p := stack[i].(type) {
		case *syntax.Word:
			if len(p.Parts) > 0 {
				first = p.Parts[0]
			}
		case *syntax.DblQuoted:
			if len(p.Parts) > 0 {
				first = p.Parts[0]
			}
		default:
			return false
		}
		if first != stack[i+1] {
			return false
		}
	}
	return true
}

// checkStmtInput proves that the command of the statement stack[stmt]
// reads the input of redirection p (how says what it is) as data: the
// standard input of a simple command.
func (f *shellFlow) checkStmtInput(stack []syntax.Node, stmt int, p *syntax.Redirect, how string) *shellRefusal {
	s, ok := stack[stmt].(*syntax.Stmt)
	if p.N != nil && p.N.Value != "0" || !ok {
		return &shellRefusal{diag.RuleShellDataPosition, "${{ }} in " + how + " that is not the standard input of a command, which runbook cannot follow: " + shellFix}
	}
	c, ok := s.Cmd.(*syntax.CallExpr)
	if !ok {
		return &shellRefusal{diag.RuleShellDataPosition, "${{ }} in " + how + " read by a compound command (a loop, a block), which runbook cannot follow: " + shellFix}
	}
	return f.checkInput(c, how)
}

// checkPipeInto proves that every command of a pipeline reads its input
// as data.
func (f *shellFlow) checkPipeInto(s *syntax.Stmt) *shellRefusal {
	switch c := s.Cmd.(type) {
	case *syntax.BinaryCmd:
		if c.Op == syntax.Pipe || c.Op == syntax.PipeAll {
			if r := f.checkPipeInto(c.X); r != nil {
				return r
			}
			return f.checkPipeInto(c.Y)
		}
	case *syntax.CallExpr:
		return f.checkInput(c, "a pipe")
	}
	return &shellRefusal{diag.RuleShellDataPosition, "${{ }} in the output of a command piped into a compound command (a loop, a block), which runbook cannot follow: " + shellFix}
}

// checkInput proves that call reads its standard input as data.
func (f *shellFlow) checkInput(call *syntax.CallExpr, how string) *shellRefusal {
	idx, spec, r := f.resolve(call)
	if r != nil {
		return r
	}
	if idx < 0 {
		if len(call.Args) > 0 {
			// exec <<EOF with no program: the standard input of the shell,
			// so of every command after it.
			return &shellRefusal{diag.RuleShellDataPosition, "${{ }} reaches, through " + how + ", the input of " + litValue(f.m, call.Args[0]) + " without a program, which becomes the input of every command after it: give the input to the command that reads it; " + shellFix}
		}
		return nil
	}
	if spec.stdinCode {
		return &shellRefusal{diag.RuleShellInterpolation, "${{ }} reaches, through " + how + ", the input of " + litValue(f.m, call.Args[idx]) + ", which runs its input as code: " + shellEnvFix}
	}
	return nil
}

// resolve finds the program a call runs, through wrappers: its index in
// call.Args (-1 for a call of assignments only) and how it reads its
// arguments, or why it cannot be known.
func (f *shellFlow) resolve(call *syntax.CallExpr) (int, shellCmd, *shellRefusal) {
	i := 0
	for i < len(call.Args) {
		name, ok := commandName(f.m, call.Args[i])
		if !ok {
			return 0, shellCmd{}, &shellRefusal{diag.RuleShellDataPosition, "${{ }} reaches a command whose name is not written in the command, so runbook cannot tell what it does with its arguments: write the command's name; " + shellFix}
		}
		if shellCodeRunners[name] {
			return 0, shellCmd{}, &shellRefusal{diag.RuleShellInterpolation, "${{ }} reaches " + name + ", which runs its arguments or its input as shell code (or as a name bash evaluates): the value would be parsed as commands; pass it with env: and use \"$NAME\" in the script"}
		}
		spec, known := shellData[name]
		if !known {
			return 0, shellCmd{}, &shellRefusal{diag.RuleShellDataPosition, "${{ }} reaches " + name + ", a command runbook does not know keeps its arguments and input as data: " + shellFix}
		}
		if !spec.wrapper {
			return i, spec, nil
		}
		j := i + 1
		for j < len(call.Args) {
			a, lit := litWord(f.m, call.Args[j])
			if spec.assigns && strings.Contains(a, "=") && !strings.HasPrefix(a, "-") {
				j++
				continue
			}
			if !lit || !strings.HasPrefix(a, "-") || a == "-" {
				break
			}
			j++
			if a == "--" {
				break
			}
			if r := optRefused(name, spec, a); r != nil {
				return 0, shellCmd{}, r
			}
			if takesOperand(spec, a) {
				j++
			}
		}
		j += spec.operands
		if j >= len(call.Args) {
			return -1, shellCmd{}, nil
		}
		i = j
	}
	return -1, shellCmd{}, nil
}

func optRefused(name string, spec shellCmd, a string) *shellRefusal {
	if strings.HasPrefix(a, "--") {
		l, _, _ := strings.Cut(a[2:], "=")
		for _, bad := range []string{"shell", "login", "edit", "command", "split-string", "session-command"} {
			// getopt_long takes an unambiguous prefix: --comm is --command.
			if l != "" && strings.HasPrefix(bad, l) {
				return &shellRefusal{diag.RuleShellInterpolation, "${{ }} reaches " + name + " " + a + ", which runs a shell: pass the value with env: and use \"$NAME\""}
			}
		}
		return nil
	}
	for _, c := range a[1:] {
		if strings.ContainsRune(spec.args, c) {
			return nil
		}
		if strings.ContainsRune(spec.refuse, c) {
			return &shellRefusal{diag.RuleShellInterpolation, "${{ }} reaches " + name + " " + a + ", which runs a shell or prints instead of running: pass the value with env: and use \"$NAME\""}
		}
	}
	return nil
}

// optKind is what a program does with an option's operand.
type optKind int

const (
	optFlag    optKind = iota // the option takes no operand (or runbook does not know it)
	optData                   // the operand stays data
	optOther                  // the operand may be a file the program writes or a program it runs
	optCode                   // the operand is code, or a name the program evaluates
	optUnknown                // a long option the program is not known to have, given an operand with =
)

// longOption resolves a long option's name (without its dashes) as
// getopt_long does: the name itself, or the one option it is an
// unambiguous prefix of (--comm is --command). ok is false for a name
// that is neither among the options that take an operand.
func (c shellCmd) longOption(l string) (string, bool) {
	all := append(append([]string{}, c.long...), c.longCode...)
	for _, o := range all {
		if o == l {
			return o, true
		}
	}
	found := ""
	for _, o := range all {
		if l != "" && strings.HasPrefix(o, l) {
			if found != "" {
				// Ambiguous: the program refuses it, or (when one of them
				// is code) runbook must assume the worst.
				for _, c := range c.longCode {
					if c == o || c == found {
						return c, true
					}
				}
				return "", false
			}
			found = o
		}
	}
	return found, found != ""
}

// optionOf reads the literal option a: what the program does with its
// operand, and whether the operand is in a itself (-ofile,
// --output=file). For a cluster of short options, the first letter that
// takes an operand decides; the rest of the cluster is its operand.
func (c shellCmd) optionOf(a string) (kind optKind, inline bool) {
	if strings.HasPrefix(a, "--") {
		l, _, eq := strings.Cut(a[2:], "=")
		full, ok := c.longOption(l)
		switch {
		case !ok && eq:
			return optUnknown, true
		case !ok:
			return optFlag, false
		}
		switch {
		case contains(c.longCode, full):
			return optCode, eq
		case contains(c.longData, full):
			return optData, eq
		}
		return optOther, eq
	}
	for k, ch := range a[1:] {
		if !strings.ContainsRune(c.args+c.code, ch) {
			continue
		}
		inline = k < len(a)-2
		switch {
		case strings.ContainsRune(c.code, ch):
			return optCode, inline
		case strings.ContainsRune(c.data, ch):
			return optData, inline
		}
		return optOther, inline
	}
	return optFlag, false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// takesOperand reports whether the literal option a is followed by an
// operand (the last letter of a cluster takes one, or a long option
// without =).
func takesOperand(spec shellCmd, a string) bool {
	kind, inline := spec.optionOf(a)
	return kind != optFlag && kind != optUnknown && !inline
}

// operandRefused says why the operand of option opt of program name,
// which does kind with it, is not data; nil when it is.
func operandRefused(name, opt string, kind optKind) *shellRefusal {
	switch kind {
	case optCode:
		return &shellRefusal{diag.RuleShellInterpolation, "${{ }} in the operand of " + name + " " + opt + ", which " + name + " runs as code or reads as a name: pass the value with env: and use the program's own parameters"}
	case optOther:
		return &shellRefusal{diag.RuleShellDataPosition, "${{ }} in the operand of " + name + " " + opt + ", which runbook does not know keeps it data (it may name a program that runs, or a file written or read as code): " + shellFix}
	case optUnknown:
		return &shellRefusal{diag.RuleShellDataPosition, "${{ }} in the operand of " + name + " " + opt + ", an option runbook does not know " + name + " has: write the option's full name, or " + shellFix}
	}
	return nil
}

// checkArg proves that word, an argument of call, is data for the
// program call runs.
func (f *shellFlow) checkArg(call *syntax.CallExpr, word *syntax.Word, valueFirst bool) *shellRefusal {
	k := -1
	for i, a := range call.Args {
		if a == word {
			k = i
		}
	}
	idx, spec, r := f.resolveUpTo(call, k)
	if r != nil {
		return r
	}
	if idx < 0 || k < idx {
		// An operand of a wrapper's option (sudo -u USER), checked by
		// resolveUpTo.
		return nil
	}
	name := litValue(f.m, call.Args[idx])
	if k == idx {
		// The directory of the program (${{ vars.bin }}/pg_ctl): its name
		// is written, and known.
		return nil
	}
	// Options, up to --.
	optsEnd := len(call.Args)
	for i := idx + 1; i < len(call.Args); i++ {
		a, lit := litWord(f.m, call.Args[i])
		if lit && a == "--" {
			optsEnd = i
			break
		}
		if spec.firstOpts && !(lit && strings.HasPrefix(a, "-")) {
			optsEnd = i
			break
		}
	}
	if spec.test {
		return checkTestArg(f.m, call, idx, k, valueFirst)
	}
	for i := idx + 1; i < optsEnd && spec.varOut != ""; i++ {
		if a, lit := litWord(f.m, call.Args[i]); lit && strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && strings.ContainsAny(a, spec.varOut) {
			return &shellRefusal{diag.RuleShellInterpolation, "${{ }} in " + name + " " + a + ", which writes into a shell variable that runbook does not follow (bash evaluates an index in its name): print the value, or " + shellEnvFix}
		}
	}
	if spec.passthrough && operandIndex(f.m, call, idx, spec, k) >= 3 {
		return &shellRefusal{diag.RuleShellInterpolation, "${{ }} after the action of " + name + ", which passes what follows to pg_ctl as its options (whose -o runs code): pass the value with env: and use \"$NAME\", or set it in the configuration"}
	}
	if k > optsEnd {
		return nil
	}
	prefix := litPrefix(f.m, word)
	if spec.script && k == firstOperand(f.m, call, idx, spec) && !hasCodeOpt(f.m, call, idx, optsEnd, spec) {
		return &shellRefusal{diag.RuleShellInterpolation, "${{ }} in the program of " + name + ", which runs it as code (sed's e and w commands, awk's system()): pass the value with env: and read it in the program (ENVIRON[\"NAME\"] in awk)"}
	}
	if k == optsEnd && spec.firstOpts && valueFirst && spec.code != "" {
		return &shellRefusal{diag.RuleShellInterpolation, "${{ }} starts the first operand of " + name + ", where a value starting with - would be read as an option that takes a name or code (" + name + " -" + spec.code + "): put text before it (\"%s\"), or write -- before it"}
	}
	if k == optsEnd {
		return nil
	}
	// In an option's own word: its operand (-o${{ }}, --output=${{ }}),
	// or its name or letters, which the value would choose.
	if strings.HasPrefix(prefix, "-") {
		kind, inline := spec.optionOf(prefix)
		if strings.HasPrefix(prefix, "--") && !strings.Contains(prefix, "=") || !strings.HasPrefix(prefix, "--") && !inline && kind == optFlag {
			return &shellRefusal{diag.RuleShellInterpolation, "${{ }} in the name or letters of an option of " + name + " (" + prefix + "...), which the value would choose: write the option in the command and give the value as its operand"}
		}
		if kind == optFlag && !strings.HasPrefix(prefix, "--") {
			kind = optOther
		}
		if kind == optUnknown && spec.allData() {
			// Every option runbook knows of the program keeps its operand
			// data (journalctl --unit=, pg_isready --host=).
			return nil
		}
		return operandRefused(name, prefix, kind)
	}
	if k > idx+1 {
		if prev, lit := litWord(f.m, call.Args[k-1]); lit && strings.HasPrefix(prev, "-") && prev != "-" {
			kind, inline := spec.optionOf(prev)
			if !inline && kind != optFlag {
				return operandRefused(name, prev, kind)
			}
			if kind == optFlag && strings.HasPrefix(prev, "--") && !strings.Contains(prev, "=") && !spec.allData() {
				// An option runbook does not know may take the value as
				// its operand.
				return operandRefused(name, prev, optUnknown)
			}
		}
	}
	if valueFirst && !spec.allData() {
		return &shellRefusal{diag.RuleShellInterpolation, "${{ }} starts an argument of " + name + " before any --, where a value starting with - would be read as an option, and " + name + " has options that run code or write files: write -- before it, or put text before it"}
	}
	return nil
}

// allData reports whether every option of the program known to take an
// operand keeps it data: a value read as one of its options does no harm
// runbook knows of.
func (c shellCmd) allData() bool {
	if c.code != "" || len(c.longCode) > 0 {
		return false
	}
	for _, ch := range c.args {
		if !strings.ContainsRune(c.data, ch) {
			return false
		}
	}
	for _, l := range c.long {
		if !contains(c.longData, l) {
			return false
		}
	}
	return true
}

// operandIndex returns which operand of call (whose program is at idx)
// the argument k is: 0 for the first that is no option, no option's
// operand and not the -- that ends the options; -1 when k is an option's
// operand.
func operandIndex(m *markedText, call *syntax.CallExpr, idx int, spec shellCmd, k int) int {
	n, opts := 0, true
	for i := idx + 1; i < k; i++ {
		a, lit := litWord(m, call.Args[i])
		switch {
		case opts && lit && a == "--":
			opts = false
			continue
		case opts && lit && strings.HasPrefix(a, "-") && a != "-":
			if takesOperand(spec, a) {
				if i+1 == k {
					return -1 // the operand of an option
				}
				i++
			}
			continue
		}
		n++
	}
	return n
}

// firstOperand returns the index of the first argument of call (whose
// program is at idx) that is not an option or an option's operand.
func firstOperand(m *markedText, call *syntax.CallExpr, idx int, spec shellCmd) int {
	for i := idx + 1; i < len(call.Args); i++ {
		a, lit := litWord(m, call.Args[i])
		if !lit || !strings.HasPrefix(a, "-") || a == "-" {
			return i
		}
		if a == "--" {
			return i + 1
		}
		if takesOperand(spec, a) {
			i++
		}
	}
	return len(call.Args)
}

// hasCodeOpt reports whether a program's code was given by an option
// (sed -e, awk -f), so that its first operand is an input file.
func hasCodeOpt(m *markedText, call *syntax.CallExpr, idx, end int, spec shellCmd) bool {
	for i := idx + 1; i < end; i++ {
		a, lit := litWord(m, call.Args[i])
		if !lit || !strings.HasPrefix(a, "-") {
			continue
		}
		if strings.HasPrefix(a, "--") {
			l, _, _ := strings.Cut(a[2:], "=")
			for _, c := range spec.longCode {
				if l == c {
					return true
				}
			}
			continue
		}
		if strings.ContainsAny(a[1:], spec.code) {
			return true
		}
	}
	return false
}

// resolveUpTo is resolve that also proves an argument before the program
// (k, an operand of a wrapper) is one of its options' operands or
// operands, not an assignment or an option itself.
func (f *shellFlow) resolveUpTo(call *syntax.CallExpr, k int) (int, shellCmd, *shellRefusal) {
	idx, spec, r := f.resolve(call)
	if r != nil || k < 0 || idx >= 0 && k >= idx {
		return idx, spec, r
	}
	// k lies among the wrappers' arguments: an operand of a wrapper's
	// option that keeps it data (sudo -u), or timeout's duration.
	a := call.Args[k]
	prefix := litPrefix(f.m, a)
	wname, wspec := wrapperBefore(f.m, call, k)
	refused := &shellRefusal{diag.RuleShellDataPosition, "${{ }} in an assignment or an option of a command that runs another (env NAME=..., sudo ...): a variable such as PATH or LD_PRELOAD chooses what runs; " + shellFix}
	switch {
	case strings.HasPrefix(prefix, "-"):
		kind, inline := wspec.optionOf(prefix)
		if !inline {
			return 0, shellCmd{}, refused
		}
		if r := operandRefused(wname, prefix, kind); r != nil || kind != optData {
			if r == nil {
				r = refused
			}
			return 0, shellCmd{}, r
		}
	case prefix != "" || k == 0:
		return 0, shellCmd{}, refused
	default:
		prev, lit := litWord(f.m, call.Args[k-1])
		if !lit || !strings.HasPrefix(prev, "-") {
			// timeout's duration.
			if n, _ := commandName(f.m, call.Args[k-1]); shellData[n].operands == 0 {
				return 0, shellCmd{}, refused
			}
			break
		}
		kind, inline := wspec.optionOf(prev)
		if inline || kind == optFlag {
			return 0, shellCmd{}, refused
		}
		if r := operandRefused(wname, prev, kind); r != nil {
			return 0, shellCmd{}, r
		}
	}
	return idx, spec, nil
}

// wrapperBefore returns the wrapper (sudo, env, timeout) whose arguments
// include call.Args[k]: the nearest one before it.
func wrapperBefore(m *markedText, call *syntax.CallExpr, k int) (string, shellCmd) {
	for i := k - 1; i >= 0; i-- {
		n, ok := commandName(m, call.Args[i])
		if s, known := shellData[n]; ok && known && s.wrapper {
			return n, s
		}
	}
	return "", shellCmd{}
}

// checkTestArg proves a value of test(1) or [ is an operand: next to an
// operator written in the command, and not the name of -v or -R (which
// bash evaluates).
func checkTestArg(m *markedText, call *syntax.CallExpr, idx, k int, valueFirst bool) *shellRefusal {
	lit := func(i int) string {
		if i <= idx || i >= len(call.Args) {
			return ""
		}
		s, ok := litWord(m, call.Args[i])
		if !ok {
			return ""
		}
		return s
	}
	prev, next := lit(k-1), lit(k+1)
	if prev == "-v" || prev == "-R" {
		return &shellRefusal{diag.RuleShellInterpolation, "${{ }} as the name tested by -v or -R, which bash evaluates as code (an array index): test the value with -n instead"}
	}
	if !valueFirst || testOps[prev] || testBinary[next] {
		return nil
	}
	return &shellRefusal{diag.RuleShellDataPosition, "${{ }} as an argument of test or [ that is not next to an operator written in the command, so a value such as -v or ! would be read as an operator: write the operator (-n \"${{ }}\", \"${{ }}\" = x)"}
}

var testBinary = map[string]bool{
	"=": true, "==": true, "!=": true, "-eq": true, "-ne": true, "-lt": true, "-le": true, "-gt": true, "-ge": true,
	"-nt": true, "-ot": true, "-ef": true, "<": true, ">": true,
}

var testOps = func() map[string]bool {
	m := map[string]bool{}
	for k := range testBinary {
		m[k] = true
	}
	for _, u := range strings.Fields("-n -z -e -f -d -r -w -x -s -L -h -b -c -p -S -g -u -k -O -G -N -t") {
		m[u] = true
	}
	return m
}()

// checkAssign proves an assignment from a value plain: a lower-case name
// (the shell's special variables, PATH, IFS, PS4, are upper-case) that
// nothing declares with attributes, standing alone (not NAME=v cmd,
// which puts it in the program's environment), and whose every use is
// data in turn.
func (f *shellFlow) checkAssign(stack []syntax.Node, i int, a *syntax.Assign) *shellRefusal {
	call, ok := stack[i-1].(*syntax.CallExpr)
	switch {
	case a.Name == nil || a.Index != nil || a.Array != nil:
		return &shellRefusal{diag.RuleShellInterpolation, "${{ }} in an array assignment, whose index bash evaluates as code: " + shellEnvFix}
	case !ok:
		return &shellRefusal{diag.RuleShellInterpolation, "${{ }} in the assignment of a declaration (declare, local, export, readonly), which bash may evaluate as arithmetic or a name: " + shellEnvFix}
	case len(call.Args) > 0:
		return &shellRefusal{diag.RuleShellDataPosition, "${{ }} in an assignment to the environment of a command (NAME=${{ }} cmd), where a variable such as PATH or LD_PRELOAD chooses what runs: " + shellFix}
	case !lowerName.MatchString(a.Name.Value) || f.decl[a.Name.Value]:
		return &shellRefusal{diag.RuleShellDataPosition, "${{ }} assigned to " + a.Name.Value + ", which is not a plain lower-case variable of the command (the shell's own variables, PATH, IFS, PS4, are upper-case, and one declared with attributes is evaluated): use a lower-case name, or " + shellFix}
	}
	f.vars[a.Name.Value] = true
	return nil
}

// commandName returns the name of the program a word runs: the word
// itself when it is written in the command, or its last path element
// when only that is (${{ vars.bin }}/pg_ctl).
func commandName(m *markedText, w *syntax.Word) (string, bool) {
	if s, ok := litWord(m, w); ok {
		return path.Base(s), s != ""
	}
	var last syntax.WordPart = w.Parts[len(w.Parts)-1]
	if dq, ok := last.(*syntax.DblQuoted); ok && len(dq.Parts) > 0 {
		last = dq.Parts[len(dq.Parts)-1]
	}
	l, ok := last.(*syntax.Lit)
	if !ok {
		return "", false
	}
	v := l.Value
	if ks := m.find(v); len(ks) > 0 {
		mk := m.marker(ks[len(ks)-1])
		v = v[strings.LastIndex(v, mk)+len(mk):]
	}
	i := strings.LastIndexByte(v, '/')
	if i < 0 || i == len(v)-1 {
		return "", false
	}
	return v[i+1:], true
}

// litWord returns a word with its quotes removed when it has no
// expansion and no value in it.
func litWord(m *markedText, w *syntax.Word) (string, bool) {
	var b strings.Builder
	ok := eachWordPart(w.Parts, func(p syntax.WordPart) bool {
		switch p := p.(type) {
		case *syntax.Lit:
			if len(m.find(p.Value)) > 0 {
				return false
			}
			writeUnescaped(&b, p.Value)
		case *syntax.SglQuoted:
			if p.Dollar || len(m.find(p.Value)) > 0 {
				return false
			}
			b.WriteString(p.Value)
		case *syntax.DblQuoted:
			return !p.Dollar
		default:
			return false
		}
		return true
	})
	if !ok {
		return "", false
	}
	return b.String(), true
}

// eachWordPart hands visit the parts of a word in order, and the parts
// inside double quotes after the quotes themselves; it stops where visit
// returns false, and says whether it went through every part.
func eachWordPart(parts []syntax.WordPart, visit func(syntax.WordPart) bool) bool {
	for _, p := range parts {
		if !visit(p) {
			return false
		}
		if dq, ok := p.(*syntax.DblQuoted); ok && !eachWordPart(dq.Parts, visit) {
			return false
		}
	}
	return true
}

// litValue is the word as runbook shows it in a message.
func litValue(m *markedText, w *syntax.Word) string {
	if s, ok := litWord(m, w); ok {
		return s
	}
	n, _ := commandName(m, w)
	return n
}

// litPrefix is the literal text a word starts with, up to its first
// value or expansion.
func litPrefix(m *markedText, w *syntax.Word) string {
	var b strings.Builder
	eachWordPart(w.Parts, func(p syntax.WordPart) bool {
		switch p := p.(type) {
		case *syntax.Lit:
			v := p.Value
			if ks := m.find(v); len(ks) > 0 {
				b.WriteString(v[:strings.Index(v, m.marker(ks[0]))])
				return false
			}
			b.WriteString(v)
		case *syntax.SglQuoted:
			b.WriteString(p.Value)
		case *syntax.DblQuoted:
		default:
			return false
		}
		return true
	})
	return b.String()
}

// shellPlace is a value, or the use of a variable, where the parser
// found it: the nodes from the command down to it.
type shellPlace struct {
	k          int
	stack      []syntax.Node
	valueFirst bool
}

// checkVarUses proves that every use of a variable assigned from a value
// is data, following the variables assigned from those uses in turn.
func (f *shellFlow) checkVarUses(uses []shellPlace, arith []*syntax.Lit) *shellRefusal {
	if f.checked == nil {
		f.checked = map[int]bool{}
	}
	for changed := true; changed; {
		changed = false
		for i, u := range uses {
			pe := u.stack[len(u.stack)-1].(*syntax.ParamExp)
			name := pe.Param.Value
			if f.checked[i] || !f.vars[name] {
				continue
			}
			f.checked[i] = true
			changed = true
			if pe.Excl || pe.Index != nil || pe.Slice != nil {
				return &shellRefusal{diag.RuleShellInterpolation, "${{ }} is assigned to " + name + ", which the command expands as ${!" + name + "}, an index or a slice: bash evaluates the value as a name or arithmetic there; " + shellEnvFix}
			}
			if pe.Exp != nil && pe.Exp.Op == syntax.OtherParamOps {
				return &shellRefusal{diag.RuleShellInterpolation, "${{ }} is assigned to " + name + ", which the command expands with ${" + name + "@...}: bash runs what ${" + name + "@P} finds in the value as a prompt (command substitutions included); " + shellEnvFix}
			}
			if inArith(u.stack) {
				return &shellRefusal{diag.RuleShellInterpolation, "${{ }} is assigned to " + name + ", which the command reads in arithmetic ([[ $" + name + " -eq ... ]], $(( ))), where bash evaluates its value as code: compare with = or compute the number in the expression, or " + shellEnvFix}
			}
			if r := varPlaceRefused(u.stack, name); r != nil {
				return r
			}
			before := len(f.vars)
			w := wordIndex(u.stack, len(u.stack)-1)
			first := w >= 0 && wordStartsWith(u.stack, w, len(u.stack)-1)
			if r := f.checkWord(u.stack, w, first); r != nil {
				r.msg = "${{ }} is assigned to " + name + ", and $" + name + " goes where it must not: " + strings.TrimPrefix(r.msg, "${{ }} ")
				return r
			}
			if len(f.vars) > before {
				changed = true
			}
		}
	}
	for _, l := range arith {
		if f.vars[l.Value] {
			return &shellRefusal{diag.RuleShellInterpolation, "${{ }} is assigned to " + l.Value + ", which the command reads in arithmetic, where bash evaluates its value as code: compute the number in the expression, or " + shellEnvFix}
		}
	}
	return nil
}

// varPlaceRefused says why a use of variable name, assigned from a value,
// is not data where it stands: unquoted in an argument, where the shell
// splits it into more arguments (options among them) and expands
// patterns; the name tested by [[ -v ]] or [[ -R ]], which bash
// evaluates (an array index runs code). Nil when it is.
func varPlaceRefused(stack []syntax.Node, name string) *shellRefusal {
	w := wordIndex(stack, len(stack)-1)
	if w < 1 {
		return nil
	}
	quoted := false
	for i := w + 1; i < len(stack); i++ {
		if _, ok := stack[i].(*syntax.DblQuoted); ok {
			quoted = true
		}
	}
	switch p := stack[w-1].(type) {
	case *syntax.CallExpr:
		// As the command's name it is refused anyway, with its own reason.
		if !quoted && len(p.Args) > 0 && p.Args[0] != stack[w] {
			return &shellRefusal{diag.RuleShellInterpolation, "${{ }} is assigned to " + name + ", and $" + name + " is used unquoted in an argument, where the shell splits the value into more arguments (options among them) and expands patterns: write \"$" + name + "\""}
		}
	case *syntax.UnaryTest:
		if p.Op == syntax.TsVarSet || p.Op == syntax.TsRefVar {
			return &shellRefusal{diag.RuleShellInterpolation, "${{ }} is assigned to " + name + ", and $" + name + " is the name tested by [[ -v ]] or [[ -R ]], which bash evaluates as code (an array index): test it with -n instead"}
		}
	}
	return nil
}

// inArith reports whether the node under stack is in arithmetic (or an
// array index), where bash evaluates a variable's value as an expression.
func inArith(stack []syntax.Node) bool {
	for i := len(stack) - 1; i >= 0; i-- {
		switch p := stack[i].(type) {
		case *syntax.ArithmExp, *syntax.ArithmCmd, *syntax.LetClause, *syntax.BinaryArithm, *syntax.UnaryArithm, *syntax.ParenArithm:
			return true
		case *syntax.BinaryTest:
			if arithTest(p.Op) {
				return true
			}
		case *syntax.ParamExp:
			if i+1 < len(stack) && (p.Index != nil && stack[i+1] == p.Index || p.Slice != nil && (stack[i+1] == p.Slice.Offset || stack[i+1] == p.Slice.Length)) {
				return true
			}
		case *syntax.Assign:
			if i+1 < len(stack) && p.Index != nil && stack[i+1] == p.Index {
				return true
			}
		case *syntax.Stmt:
			return false
		}
	}
	return false
}
