package confedit

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// PGValue returns the value to write for setting name so that PostgreSQL
// reads back what was meant, or an error, before anything is written, when
// no writing can. Quote then makes it a postgresql.conf string; this is
// about what PostgreSQL does with the string next.
//
// synchronous_standby_names is a list of names in a grammar of its own
// (syncrep_gram.y): [FIRST|ANY] N (name, ...) or name, .... A name is an
// identifier; one with any other character (pg-standby-2), or the word
// FIRST or ANY, must be in double quotes, or PostgreSQL refuses the whole
// setting ("syntax error"), and a reload keeps the old value. PGValue puts
// the quotes where a name needs them.
func PGValue(name, value string) (string, error) {
	if strings.EqualFold(name, "synchronous_standby_names") {
		return StandbyNames(value)
	}
	return value, nil
}

var syncMethod = regexp.MustCompile(`(?is)^\s*(?:(first|any)\s+)?([0-9]+)\s*\((.*)\)\s*$`)

// plainStandbyName is a name syncrep's scanner reads without quotes
// (identifier or number).
var plainStandbyName = regexp.MustCompile(`^(?:[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*|[0-9]+|\*)$`)

// StandbyNames returns synchronous_standby_names with every name that needs
// it in double quotes: "pg-standby-2" for pg-standby-2, FIRST 1 (a, "b-c")
// for FIRST 1 (a, b-c). Names already quoted stay as they are.
func StandbyNames(v string) (string, error) {
	if strings.TrimSpace(v) == "" {
		return "", nil
	}
	prefix, list, suffix := "", v, ""
	if m := syncMethod.FindStringSubmatch(v); m != nil {
		if m[1] != "" {
			prefix = strings.ToUpper(m[1]) + " "
		}
		prefix += m[2] + " ("
		list, suffix = m[3], ")"
	}
	items, err := splitNames(list)
	if err != nil {
		return "", fmt.Errorf("synchronous_standby_names %q: %w", v, err)
	}
	if err := checkSyncRepGrammar(prefix, items); err != nil {
		return "", fmt.Errorf("synchronous_standby_names %q: %w (PostgreSQL's form: [FIRST|ANY] N (name, ...) with N at least 1, or name, ...)", v, err)
	}
	for i, it := range items {
		switch {
		case it == "":
			return "", fmt.Errorf("synchronous_standby_names %q: an empty name (two commas, or one at an end)", v)
		case strings.HasPrefix(it, `"`):
			// Already quoted by the author: splitNames checked the quotes.
		case plainStandbyName.MatchString(it) && !strings.EqualFold(it, "first") && !strings.EqualFold(it, "any"):
		default:
			items[i] = `"` + strings.ReplaceAll(it, `"`, `""`) + `"`
		}
	}
	return prefix + strings.Join(items, ", ") + suffix, nil
}

// SyncStandbys is a synchronous_standby_names value as PostgreSQL reads it
// (syncrep_gram.y): Method FIRST or ANY, Num the number of synchronous
// standbys a commit waits for, Names the names in the order given, with
// double quotes undone. A bare list (a, b) is FIRST 1 (a, b); an empty
// value is Num 0 and no names.
type SyncStandbys struct {
	Method string
	Num    int
	Names  []string
}

// ParseStandbyNames reads a synchronous_standby_names value, refusing
// what PostgreSQL refuses (the errors of StandbyNames).
func ParseStandbyNames(v string) (SyncStandbys, error) {
	quoted, err := StandbyNames(v)
	if err != nil || quoted == "" {
		return SyncStandbys{}, err
	}
	out := SyncStandbys{Method: "FIRST", Num: 1}
	list := quoted
	if m := syncMethod.FindStringSubmatch(quoted); m != nil {
		if m[1] != "" {
			out.Method = strings.ToUpper(m[1])
		}
		if out.Num, err = strconv.Atoi(m[2]); err != nil {
			return SyncStandbys{}, fmt.Errorf("synchronous_standby_names %q: %w", v, err)
		}
		list = m[3]
	}
	names, err := splitNames(list)
	if err != nil {
		return SyncStandbys{}, err
	}
	for _, n := range names {
		if strings.HasPrefix(n, `"`) {
			n = strings.ReplaceAll(n[1:len(n)-1], `""`, `"`)
		}
		out.Names = append(out.Names, n)
	}
	return out, nil
}

// checkSyncRepGrammar refuses what PostgreSQL's syncrep grammar refuses
// rather than quoting it into valid names no standby has: a parenthesis
// outside quotes, FIRST/ANY or a number followed by more words without the
// (list) form, and N = 0.
func checkSyncRepGrammar(prefix string, items []string) error {
	for i, it := range items {
		if strings.HasPrefix(it, `"`) {
			continue
		}
		if strings.ContainsAny(it, "()") {
			return fmt.Errorf("%q: a parenthesis outside the [FIRST|ANY] N (list) form", it)
		}
		// A blank or = inside a name PostgreSQL refuses unquoted: a
		// missing comma (s1 s2) or a conninfo (application_name=s1)
		// quoted would name a standby nobody has, and commits would hang.
		// (A first item FIRST 2 s1 is the form's own error, below.)
		if w := strings.Fields(it); (len(w) > 1 || strings.Contains(it, "=")) && !(i == 0 && prefix == "" && len(w) > 1 && (strings.EqualFold(w[0], "first") || strings.EqualFold(w[0], "any") || strings.Trim(w[0], "0123456789") == "")) {
			return fmt.Errorf("%q: a name with a blank or = in it, which PostgreSQL refuses unquoted (a missing comma? write s1, s2; a name that truly has one goes in double quotes)", it)
		}
	}
	if prefix != "" {
		f := strings.Fields(prefix)
		if n := f[len(f)-2]; strings.Trim(n, "0") == "" {
			return fmt.Errorf("the number of synchronous standbys is %s", n)
		}
		return nil
	}
	if len(items) > 0 && !strings.HasPrefix(items[0], `"`) {
		if w := strings.Fields(items[0]); len(w) > 1 && (strings.EqualFold(w[0], "first") || strings.EqualFold(w[0], "any") || strings.Trim(w[0], "0123456789") == "") {
			return fmt.Errorf("%q: %s followed by more words without the (list) form", items[0], w[0])
		}
	}
	return nil
}

// splitNames splits a list at the commas outside double quotes and trims
// each name; a name that opens a quote must be one quoted name.
func splitNames(list string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inQuote := false
	for i := 0; i < len(list); i++ {
		c := list[i]
		switch {
		case c == '"' && inQuote && i+1 < len(list) && list[i+1] == '"':
			cur.WriteString(`""`)
			i++
		case c == '"':
			inQuote = !inQuote
			cur.WriteByte(c)
		case c == ',' && !inQuote:
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if inQuote {
		return nil, fmt.Errorf("a double quote is not closed")
	}
	out = append(out, strings.TrimSpace(cur.String()))
	for _, it := range out {
		if strings.Contains(it, `"`) && !(strings.HasPrefix(it, `"`) && strings.HasSuffix(it, `"`) && len(it) >= 2 && !strings.Contains(strings.ReplaceAll(it[1:len(it)-1], `""`, ""), `"`)) {
			return nil, fmt.Errorf("%s: a double quote inside a name; quote the whole name and double the quote in it", it)
		}
	}
	return out, nil
}

// QuotedAlready reports whether a value for postgresql.conf was written
// with its own single quotes ('inmanta'): runbook quotes values itself, so
// PostgreSQL would read the quotes as part of the value.
func QuotedAlready(v string) bool {
	return len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\''
}
