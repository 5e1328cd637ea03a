package confedit

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// iniLine is one line of an ini file as Python's configparser reads it with
// its defaults (delimiters = and :, whole-line comments starting with # or
// ;, no inline comments, blank lines kept inside multi-line values, strict):
// the reader of the orchestrator's database.cfg.
type iniLine struct {
	kind iniKind
	// section is the section a line belongs to (for a header: its name).
	section string
	// key is the option's name as written, keyForm as configparser keeps
	// it (lower case); value is the value of an option line, stripped.
	key, keyForm, value string
	// delim is what the option line has between the key and the value,
	// spaces included ("=", " : ").
	delim string
	// indent is the option line's leading white space.
	indent string
	// option is, for a continuation line, the index of its option line.
	option int
}

type iniKind int

const (
	iniBlank iniKind = iota
	iniComment
	iniSection
	iniOption
	iniContinuation
	iniBad
)

// IniReader is the program whose reading of an ini file the editor
// follows: keys are found, and duplicates refused, as it compares them.
type IniReader int

const (
	// ConfigParser is Python's configparser (RawConfigParser, strict): a
	// key's case is ignored (optionxform lower-cases it).
	ConfigParser IniReader = iota
	// Inmanta is the Inmanta server's reader (inmanta-core's config.py:
	// LenientConfigParser, whose optionxform replaces "_" by "-" before
	// lower-casing): db_host, db-host and DB_Host are one key.
	Inmanta
)

// ParseIniReader reads a reader's name: "configparser" or "inmanta".
func ParseIniReader(s string) (IniReader, error) {
	switch s {
	case "", "configparser":
		return ConfigParser, nil
	case "inmanta":
		return Inmanta, nil
	}
	return 0, fmt.Errorf("%q is not an ini reader runbook knows: configparser (Python's) or inmanta (the Inmanta server's, where _ and - in a key are the same)", s)
}

func (r IniReader) String() string {
	if r == Inmanta {
		return "the Inmanta server's reader (where _ and - in a key are the same)"
	}
	return "Python's configparser"
}

// KeyForm is the form of a key the reader compares: two keys of one form
// are one key for it.
func (r IniReader) KeyForm(k string) string {
	if r == Inmanta {
		k = strings.ReplaceAll(k, "_", "-")
	}
	return strings.ToLower(k)
}

// iniFile is an ini file split into lines that configparser would read.
type iniFile struct {
	lines  []string
	parsed []iniLine
}

// parseIni reads text the way configparser.RawConfigParser._read does, and
// returns an error naming the line configparser would reject (strict mode:
// a duplicate section or option, a line before any section, a line that is
// neither a header, an option nor a comment).
func parseIni(text string, r IniReader) (*iniFile, error) {
	// Python reads text with universal newlines: a CR alone ends a line.
	// runbook's lines end at LF (a CR before it kept), so such a file
	// would be read as other lines than the program reads.
	if i := strings.IndexByte(strings.ReplaceAll(text, "\r\n", ""), '\r'); i >= 0 {
		return nil, fmt.Errorf("the file has a line ended by a carriage return alone, which Python reads as a line break and runbook does not: convert its line ends (dos2unix, or sed 's/\\r$//' after making them CRLF) and run again")
	}
	f := &iniFile{lines: split(text)}
	f.parsed = make([]iniLine, len(f.lines))
	sections := map[string]int{}
	options := map[[2]string]int{}
	cur, inSection := "", false
	optLine := -1
	indentLevel := 0
	for i, l := range f.lines {
		stripped := strings.TrimFunc(l, pySpace)
		p := &f.parsed[i]
		p.section = cur
		switch {
		case stripped == "":
			// configparser keeps a blank line inside a multi-line value;
			// the value ends only at a line indented no deeper.
			p.kind, p.option = iniBlank, optLine
			continue
		case strings.HasPrefix(stripped, "#") || strings.HasPrefix(stripped, ";"):
			p.kind, p.option = iniComment, -1
			continue
		}
		// Python counts the indentation in characters, not bytes (a
		// no-break space is one).
		indent := utf8.RuneCountInString(l) - utf8.RuneCountInString(strings.TrimLeftFunc(l, pySpace))
		if inSection && optLine >= 0 && indent > indentLevel {
			p.kind, p.option = iniContinuation, optLine
			continue
		}
		indentLevel = indent
		if name, ok := iniHeader(stripped); ok {
			if j, dup := sections[name]; dup {
				return nil, fmt.Errorf("line %d: section [%s] appears again (first on line %d); Python's configparser refuses the file: merge the two sections", i+1, name, j+1)
			}
			if name != "DEFAULT" {
				sections[name] = i
			}
			cur, inSection, optLine = name, true, -1
			p.kind, p.section = iniSection, name
			continue
		}
		if !inSection {
			return nil, fmt.Errorf("line %d: %q comes before any [section]; Python's configparser refuses the file", i+1, strings.TrimSpace(l))
		}
		key, delim, value, ok := iniOptionParts(stripped)
		if !ok {
			return nil, fmt.Errorf("line %d: %q is neither a [section], a key = value nor a comment; Python's configparser refuses the file", i+1, strings.TrimSpace(l))
		}
		form := r.KeyForm(key)
		if j, dup := options[[2]string{cur, form}]; dup {
			return nil, fmt.Errorf("line %d: %s appears again in [%s] (first on line %d, as %s); %s refuses the file: keep one", i+1, key, cur, j+1, f.parsed[j].key, r)
		}
		options[[2]string{cur, form}] = i
		ws := len(l) - len(strings.TrimLeftFunc(l, pySpace))
		*p = iniLine{kind: iniOption, section: cur, key: key, keyForm: form, value: value, delim: delim, indent: l[:ws]}
		optLine = i
	}
	return f, nil
}

// iniHeader matches configparser's section header, \[(?P<header>.+)\]
// matched at the start of the stripped line: the name runs to the last ]
// and anything after it (a comment) is ignored.
func iniHeader(s string) (string, bool) {
	if !strings.HasPrefix(s, "[") {
		return "", false
	}
	end := strings.LastIndexByte(s, ']')
	if end < 2 {
		return "", false
	}
	return s[1:end], true
}

// iniOptionParts matches configparser's option line,
// (?P<option>.*?)\s*(?P<vi>[=:])\s*(?P<value>.*)$: the key ends at the
// first = or :.
func iniOptionParts(s string) (key, delim, value string, ok bool) {
	i := strings.IndexAny(s, "=:")
	if i < 0 {
		return "", "", "", false
	}
	key = strings.TrimRightFunc(s[:i], pySpace)
	if key == "" {
		return "", "", "", false
	}
	rest := s[i+1:]
	value = strings.TrimFunc(rest, pySpace)
	delim = s[len(key) : len(s)-len(value)]
	return key, delim, value, true
}

// optionValue is the value of the option on line i as configparser returns
// it: its lines joined with newlines, blank lines kept but trailing ones
// dropped.
func (f *iniFile) optionValue(i int) (string, int) {
	vals := []string{f.parsed[i].value}
	last := i
	for j := i + 1; j < len(f.parsed); j++ {
		p := f.parsed[j]
		if p.kind == iniComment {
			continue
		}
		if (p.kind != iniContinuation && p.kind != iniBlank) || p.option != i {
			break
		}
		if p.kind == iniContinuation {
			for last < j-1 {
				last++
				if f.parsed[last].kind == iniBlank {
					vals = append(vals, "")
				}
			}
			vals = append(vals, strings.TrimFunc(f.lines[j], pySpace))
			last = j
		}
	}
	return strings.Join(vals, "\n"), last
}

// pySpace is Python's str.isspace for one character: Unicode white space
// and the separators U+001C to U+001F, which strip() removes too.
func pySpace(r rune) bool { return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f }

// checkIniName refuses a section or key that configparser would read as
// something else.
func checkIniName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("an empty ini %s", what)
	case strings.TrimFunc(s, pySpace) != s:
		return fmt.Errorf("ini %s %q starts or ends with white space, which configparser strips", what, s)
	case strings.ContainsAny(s, "\n\r"):
		return fmt.Errorf("ini %s %q holds a line break", what, s)
	case what == "key" && (strings.ContainsAny(s, "=:") || strings.HasPrefix(s, "[") || strings.HasPrefix(s, "#") || strings.HasPrefix(s, ";")):
		return fmt.Errorf("ini key %q holds = or :, or starts with [, # or ;: configparser would read another key", s)
	case what == "section" && strings.Contains(s, "]"):
		return fmt.Errorf("ini section %q holds ]", s)
	}
	return nil
}

// IniSet sets key = value in section as Python's configparser reads the
// file: a key is found whatever its case and delimiter (= or :) and a
// section whatever follows its header; a multi-line value is replaced
// whole. A missing key is added at the end of its section, a missing
// section at the end of the file. It refuses, changing nothing, a file
// configparser would refuse and a key or value it would read differently.
func IniSet(text, section, key, value string, r IniReader) (string, []Change, error) {
	if err := checkIniName("section", section); err != nil {
		return text, nil, err
	}
	if err := checkIniName("key", key); err != nil {
		return text, nil, err
	}
	if strings.ContainsAny(value, "\n\r") || strings.TrimFunc(value, pySpace) != value {
		return text, nil, fmt.Errorf("[%s] %s: the value starts or ends with white space or holds a line break, which configparser would not read back as written", section, key)
	}
	f, err := parseIni(text, r)
	if err != nil {
		return text, nil, err
	}
	form := r.KeyForm(key)
	start, last := -1, -1
	for i, p := range f.parsed {
		if p.kind == iniSection && p.section == section {
			start, last = i, i
			continue
		}
		if start < 0 || p.section != section || p.kind == iniSection {
			continue
		}
		if p.kind == iniOption || p.kind == iniContinuation {
			last = i
		}
		if p.kind != iniOption || p.keyForm != form {
			continue
		}
		old, end := f.optionValue(i)
		if old == value {
			return text, nil, nil
		}
		lines := append([]string{}, f.lines[:i]...)
		lines = append(lines, p.indent+p.key+p.delim+value)
		lines = append(lines, f.lines[end+1:]...)
		return join(lines, text), []Change{Change(fmt.Sprintf("[%s] %s=%s (was %s, line %d)", section, p.key, value, old, i+1))}, nil
	}
	lines := f.lines
	if start < 0 {
		if len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) != "" {
			lines = append(lines, "")
		}
		lines = append(lines, "["+section+"]", key+"="+value)
		return join(lines, text), []Change{Change(fmt.Sprintf("[%s] %s=%s (new section)", section, key, value))}, nil
	}
	// At the start of a line, a new key cannot continue the value above.
	out := append([]string{}, lines[:last+1]...)
	out = append(out, key+"="+value)
	out = append(out, lines[last+1:]...)
	return join(out, text), []Change{Change(fmt.Sprintf("[%s] %s=%s (added)", section, key, value))}, nil
}
