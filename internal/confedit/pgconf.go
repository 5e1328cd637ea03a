package confedit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// PGEntry is one assignment PostgreSQL reads from its configuration
// files, as pg_file_settings lists it.
type PGEntry struct {
	// Name is the setting's name as written; PostgreSQL compares names
	// without regard to case.
	Name string
	// Value is the value as PostgreSQL reads it: unquoted, escapes undone.
	Value string
	File  string
	Line  int
	// Seq is the entry's place in the order PostgreSQL reads them (from 1):
	// of two entries for one setting, the later one takes effect.
	Seq int
}

// Where is FILE:LINE.
func (e *PGEntry) Where() string { return fmt.Sprintf("%s:%d", e.File, e.Line) }

// PGConf is what PostgreSQL reads from its configuration: the main file,
// the files it includes (include, include_if_exists, include_dir) where
// the directives stand, then postgresql.auto.conf (ALTER SYSTEM), in that
// order.
type PGConf struct {
	Entries []PGEntry
	// Files are the files read, in order.
	Files []string
	// Errors are what PostgreSQL would refuse: a syntax error, a missing
	// file named by include, includes nested too deep. With any of them,
	// PostgreSQL does not start, and a reload changes nothing.
	Errors []string
}

// Effective returns the entry of a setting that takes effect (the last
// one read), or nil when no file sets it.
func (c *PGConf) Effective(name string) *PGEntry {
	for i := len(c.Entries) - 1; i >= 0; i-- {
		if strings.EqualFold(c.Entries[i].Name, name) {
			return &c.Entries[i]
		}
	}
	return nil
}

// All returns every entry of a setting, in the order read.
func (c *PGConf) All(name string) []PGEntry {
	var out []PGEntry
	for _, e := range c.Entries {
		if strings.EqualFold(e.Name, name) {
			out = append(out, e)
		}
	}
	return out
}

// PGFiles reads the files of a host for ReadPGConf.
type PGFiles interface {
	// ReadFile returns a file's content; a missing file gives an error
	// matching fs.ErrNotExist.
	ReadFile(ctx context.Context, path string) ([]byte, error)
	// ConfFiles returns the names of the regular files (links followed)
	// in dir whose names end in .conf and do not start with a dot.
	ConfFiles(ctx context.Context, dir string) ([]string, error)
}

// maxDepth is PostgreSQL's limit on nested includes (CONF_FILE_MAX_DEPTH).
const maxDepth = 10

// ReadPGConf reads a PostgreSQL configuration as the server does when it
// starts or reloads: configFile and what it includes, then autoConf (the
// data directory's postgresql.auto.conf; a missing one is no error).
// Relative include paths are relative to the including file's directory.
// An error is returned only when a file could not be read for another
// reason than its absence; what PostgreSQL itself would refuse is listed
// in Errors.
func ReadPGConf(ctx context.Context, files PGFiles, configFile, autoConf string) (*PGConf, error) {
	r := &pgReader{ctx: ctx, files: files, conf: &PGConf{}}
	if err := r.file(configFile, true, 0); err != nil {
		return nil, err
	}
	if autoConf != "" {
		if err := r.file(autoConf, false, 0); err != nil {
			return nil, err
		}
	}
	return r.conf, nil
}

type pgReader struct {
	ctx   context.Context
	files PGFiles
	conf  *PGConf
}

func (r *pgReader) errorf(format string, args ...any) {
	r.conf.Errors = append(r.conf.Errors, fmt.Sprintf(format, args...))
}

func (r *pgReader) file(p string, strict bool, depth int) error {
	if depth > maxDepth {
		r.errorf("could not open configuration file %q: maximum nesting depth exceeded", p)
		return nil
	}
	b, err := r.files.ReadFile(r.ctx, p)
	if errors.Is(err, fs.ErrNotExist) {
		if strict {
			r.errorf("could not open configuration file %q: it does not exist", p)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	r.conf.Files = append(r.conf.Files, p)
	for _, a := range parsePG(string(b)) {
		if a.err != "" {
			r.errorf("%s:%d: %s", p, a.line, a.err)
			continue
		}
		switch strings.ToLower(a.name) {
		case "include":
			err = r.file(absConf(a.value, p), true, depth+1)
		case "include_if_exists":
			err = r.file(absConf(a.value, p), false, depth+1)
		case "include_dir":
			err = r.dir(absConf(a.value, p), depth+1)
		default:
			r.conf.Entries = append(r.conf.Entries, PGEntry{Name: a.name, Value: a.value, File: p, Line: a.line, Seq: len(r.conf.Entries) + 1})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *pgReader) dir(d string, depth int) error {
	names, err := r.files.ConfFiles(r.ctx, d)
	if errors.Is(err, fs.ErrNotExist) {
		r.errorf("could not open configuration directory %q: it does not exist", d)
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", d, err)
	}
	// PostgreSQL sorts by strcmp: byte order, whatever the locale.
	sort.Strings(names)
	for _, n := range names {
		if len(n) < 6 || n[0] == '.' || !strings.HasSuffix(n, ".conf") {
			continue
		}
		if err := r.file(path.Join(d, n), true, depth); err != nil {
			return err
		}
	}
	return nil
}

// absConf resolves an include path as PostgreSQL does: relative to the
// directory of the file that names it.
func absConf(p, from string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join(path.Dir(from), p)
}

type pgAssignment struct {
	name, value string
	line        int
	err         string
}

type pgToken int

const (
	tokEOF pgToken = iota
	tokEOL
	tokID
	tokQualifiedID
	tokString
	tokUnquoted
	tokInteger
	tokReal
	tokEquals
	tokError
)

// parsePG splits a configuration file into assignments with the rules of
// PostgreSQL's lexer (guc-file.l): name [=] value per line, # comments,
// values quoted with '...' (a doubled quote and backslash escapes) or
// bare.
func parsePG(text string) []pgAssignment {
	lx := &pgLexer{s: text, line: 1}
	var out []pgAssignment
	for {
		tok, _ := lx.next()
		if tok == tokEOF {
			return out
		}
		if tok == tokEOL {
			continue
		}
		line := lx.tokLine
		fail := func(msg string) {
			out = append(out, pgAssignment{line: line, err: msg})
			for tok != tokEOL && tok != tokEOF {
				tok, _ = lx.next()
			}
		}
		if tok != tokID && tok != tokQualifiedID {
			fail("syntax error: a line starts with a setting's name")
			if tok == tokEOF {
				return out
			}
			continue
		}
		name := lx.text
		tok, _ = lx.next()
		if tok == tokEquals {
			tok, _ = lx.next()
		}
		var value string
		switch tok {
		case tokString:
			value = unescapePG(lx.text)
		case tokID, tokUnquoted, tokInteger, tokReal:
			value = lx.text
		default:
			fail(fmt.Sprintf("syntax error in the value of %s", name))
			if tok == tokEOF {
				return out
			}
			continue
		}
		tok, _ = lx.next()
		if tok != tokEOL && tok != tokEOF {
			fail(fmt.Sprintf("syntax error after the value of %s", name))
			if tok == tokEOF {
				return out
			}
			continue
		}
		out = append(out, pgAssignment{name: name, value: value, line: line})
		if tok == tokEOF {
			return out
		}
	}
}

type pgLexer struct {
	s       string
	i       int
	line    int
	tokLine int
	text    string
}

func isLetter(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isLetterOrDigit(c byte) bool { return isLetter(c) || isDigit(c) }

// next returns the next token, with the longest match winning and, of two
// matches of one length, the rule listed first in guc-file.l.
func (lx *pgLexer) next() (pgToken, string) {
	for lx.i < len(lx.s) {
		c := lx.s[lx.i]
		if c == ' ' || c == '\t' || c == '\r' {
			lx.i++
			continue
		}
		if c == '#' {
			for lx.i < len(lx.s) && lx.s[lx.i] != '\n' {
				lx.i++
			}
			continue
		}
		break
	}
	lx.tokLine = lx.line
	if lx.i >= len(lx.s) {
		lx.text = ""
		return tokEOF, ""
	}
	rest := lx.s[lx.i:]
	if rest[0] == '\n' {
		lx.i++
		lx.line++
		lx.text = "\n"
		return tokEOL, lx.text
	}
	best, bestTok := 0, tokError
	try := func(n int, t pgToken) {
		if n > best {
			best, bestTok = n, t
		}
	}
	try(matchID(rest), tokID)
	try(matchQualifiedID(rest), tokQualifiedID)
	try(matchString(rest), tokString)
	try(matchUnquoted(rest), tokUnquoted)
	try(matchInteger(rest), tokInteger)
	try(matchReal(rest), tokReal)
	if rest[0] == '=' {
		try(1, tokEquals)
	}
	if best == 0 {
		best = 1
	}
	lx.text = rest[:best]
	lx.i += best
	return bestTok, lx.text
}

func matchID(s string) int {
	if s == "" || !isLetter(s[0]) {
		return 0
	}
	n := 1
	for n < len(s) && isLetterOrDigit(s[n]) {
		n++
	}
	return n
}

func matchQualifiedID(s string) int {
	n := matchID(s)
	if n == 0 || n >= len(s) || s[n] != '.' {
		return 0
	}
	m := matchID(s[n+1:])
	if m == 0 {
		return 0
	}
	return n + 1 + m
}

func matchUnquoted(s string) int {
	if s == "" || !isLetter(s[0]) {
		return 0
	}
	n := 1
	for n < len(s) && (isLetterOrDigit(s[n]) || strings.IndexByte("-._:/", s[n]) >= 0) {
		n++
	}
	return n
}

func matchString(s string) int {
	if s == "" || s[0] != '\'' {
		return 0
	}
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\n':
			return 0
		case '\\':
			if i+1 >= len(s) || s[i+1] == '\n' {
				// "\\." matches any character but a newline in flex.
				return 0
			}
			i++
		case '\'':
			if i+1 < len(s) && s[i+1] == '\'' {
				i++
				continue
			}
			return i + 1
		}
	}
	return 0
}

func matchInteger(s string) int {
	n := 0
	if n < len(s) && (s[n] == '-' || s[n] == '+') {
		n++
	}
	start := n
	if strings.HasPrefix(s[n:], "0x") && n+2 < len(s) && isHex(s[n+2]) {
		n += 2
		for n < len(s) && isHex(s[n]) {
			n++
		}
	} else {
		for n < len(s) && isDigit(s[n]) {
			n++
		}
		if n == start {
			return 0
		}
	}
	for n < len(s) && (s[n] >= 'a' && s[n] <= 'z' || s[n] >= 'A' && s[n] <= 'Z') {
		n++
	}
	return n
}

func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func matchReal(s string) int {
	n := 0
	if n < len(s) && (s[n] == '-' || s[n] == '+') {
		n++
	}
	for n < len(s) && isDigit(s[n]) {
		n++
	}
	if n >= len(s) || s[n] != '.' {
		return 0
	}
	n++
	for n < len(s) && isDigit(s[n]) {
		n++
	}
	if n < len(s) && (s[n] == 'e' || s[n] == 'E') {
		m := n + 1
		if m < len(s) && (s[m] == '-' || s[m] == '+') {
			m++
		}
		if m < len(s) && isDigit(s[m]) {
			for m < len(s) && isDigit(s[m]) {
				m++
			}
			n = m
		}
	}
	return n
}

// unescapePG undoes the quoting of a '...' value as PostgreSQL's
// DeescapeQuotedString does: a doubled quote is one, and a backslash
// escapes the character after it (\n, \t, \b, \f, \r, octal \ooo; any
// other as itself).
func unescapePG(q string) string {
	s := q[1 : len(q)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '0', '1', '2', '3', '4', '5', '6', '7':
				j := i
				for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
					j++
				}
				v, _ := strconv.ParseUint(s[i:j], 8, 16)
				b.WriteByte(byte(v))
				i = j - 1
			default:
				b.WriteByte(s[i])
			}
		case c == '\'' && i+1 < len(s) && s[i+1] == '\'':
			b.WriteByte('\'')
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
