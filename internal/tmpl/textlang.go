package tmpl

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

// ConfValue is the language of one value of a configuration file (a
// postgresql.conf setting, an ini key, an ini section): the file's own
// quoting is the step's business, and a value may not hold a line break,
// which would start a line of the file's own.
var ConfValue Lang = lineLang{}

// ConfField is the language of a whole line of a configuration file whose
// fields are separated by spaces (pg_hba.conf): a value must stay one
// field, so it may hold no line break, space, quote or #, which would add
// fields or a comment (a user of "all 0.0.0.0/0 trust #" would open the
// server to everyone).
var ConfField Lang = lineLang{field: true}

type lineLang struct{ field bool }

func (l lineLang) bind(t *Template) []*TemplateError { return quoteEach(t, lineSlot(l)) }

// quoteEach binds every value of t to s: a language whose values are all
// quoted alike, wherever in the text they stand.
func quoteEach(t *Template, s slot) []*TemplateError {
	for i := range t.parts {
		if t.parts[i].expr != nil {
			t.parts[i].slot = s
		}
	}
	return nil
}

type lineSlot struct{ field bool }

func (s lineSlot) quote(v any) (string, error) {
	str := Format(unmark(v))
	if strings.ContainsAny(str, "\n\r\x00") {
		return "", errors.New("the value holds a line break or a NUL byte, which would start a line of its own in the file")
	}
	if s.field && (str == "" || strings.ContainsAny(str, " \t\v\f\"#")) {
		return "", errors.New("the value would not be one field of the line: it is empty, or holds a space, a quote or a #")
	}
	return str, nil
}

// IniValue is the language of the value of a key in an ini file (key =
// value): no quoting is common to ini readers, so a value is refused when
// one of them would not read it back as it is: a line break (a line of
// its own, or a continuation), blanks around it (stripped), a ; or #
// at its start or after a blank (a comment to some readers), a quote at
// its start (unquoted by some).
var IniValue Lang = iniLang{}

type iniLang struct{}

func (iniLang) bind(t *Template) []*TemplateError { return quoteEach(t, iniSlot{}) }

type iniSlot struct{}

func (iniSlot) quote(v any) (string, error) {
	str, err := lineSlot{}.quote(v)
	if err != nil {
		return "", err
	}
	switch {
	case str != strings.TrimSpace(str):
		return "", errors.New("the value starts or ends with a blank, which an ini reader strips")
	case strings.HasPrefix(str, ";") || strings.HasPrefix(str, "#") || strings.Contains(str, " ;") || strings.Contains(str, " #") || strings.Contains(str, "\t;") || strings.Contains(str, "\t#"):
		return "", errors.New("the value holds a ; or # at its start or after a blank, which some ini readers take as the start of a comment")
	case strings.HasPrefix(str, `"`) || strings.HasPrefix(str, "'"):
		return "", errors.New("the value starts with a quote, which some ini readers remove")
	}
	return str, nil
}

// URL is the language of an HTTP step's url. A value at the very start is
// the base URL and is inserted as it is; in the host and port it must be
// a host name, an address or a port; in the path it is one escaped path
// segment (a / in it is %2F), in the query and the fragment it is escaped
// as a query value. So an id from an API's answer cannot send the request
// to another endpoint (../..) or add parameters (&x=).
var URL Lang = urlLang{}

type urlLang struct{}

// urlPart is where in a URL a value lands.
type urlPart int

const (
	urlBase urlPart = iota
	urlAuthority
	urlPath
	urlQuery
)

func (urlLang) bind(t *Template) []*TemplateError {
	part := urlBase
	var text strings.Builder
	for i, p := range t.parts {
		if p.expr == nil {
			text.WriteString(p.lit)
			continue
		}
		switch s := text.String(); {
		case i == 0:
			part = urlBase
		case strings.ContainsAny(s, "?#"):
			part = urlQuery
		case strings.Contains(s, "://") && !strings.Contains(s[strings.Index(s, "://")+3:], "/"):
			part = urlAuthority
		default:
			part = urlPath
		}
		t.parts[i].slot = urlSlot(part)
		// The value stands for text of its own part.
		text.WriteString("x")
	}
	return nil
}

type urlSlot urlPart

func (s urlSlot) quote(v any) (string, error) {
	str := Format(unmark(v))
	switch urlPart(s) {
	case urlBase:
		return str, nil
	case urlAuthority:
		if str == "" || strings.ContainsAny(str, "/?#@ \t\r\n\\") {
			return "", errors.New("the value is not a host name, an address or a port")
		}
		return str, nil
	case urlPath:
		if str == "." || str == ".." {
			return "", errors.New("the value is . or .., which would change the path")
		}
		return url.PathEscape(str), nil
	}
	return url.QueryEscape(str), nil
}

// Regexp is the language of a regular expression (RE2): a value matches
// itself, its metacharacters escaped.
var Regexp Lang = regexpLang{}

type regexpLang struct{}

func (regexpLang) bind(t *Template) []*TemplateError { return quoteEach(t, regexpSlot{}) }

type regexpSlot struct{}

func (regexpSlot) quote(v any) (string, error) {
	if r, ok := v.(Raw); ok {
		return Format(r.Value), nil
	}
	return regexp.QuoteMeta(Format(unmark(v))), nil
}
