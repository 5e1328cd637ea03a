package confedit

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// hbaRule is one rule of pg_hba.conf, in the terms PostgreSQL matches a
// connection against it (hba.c, check_hba): connection type, databases,
// users and, for TCP, the client's address. The first rule that matches
// decides; later ones are never looked at for that connection.
type hbaRule struct {
	line      int // 0-based
	conn      connKinds
	databases []hbaToken
	users     []hbaToken
	// addr is the address field; empty for local rules.
	addr hbaAddr
	// method is the method and its options, as written.
	method string
}

type hbaToken struct {
	value  string
	quoted bool
}

// keyword reports whether t is the unquoted keyword k.
func (t hbaToken) keyword(k string) bool { return !t.quoted && t.value == k }

// connKinds is the set of connections a type matches.
type connKinds uint8

const (
	connLocal connKinds = 1 << iota
	connSSL
	connGSS
	connPlain
)

var hbaTypes = map[string]connKinds{
	"local":        connLocal,
	"host":         connSSL | connGSS | connPlain,
	"hostssl":      connSSL,
	"hostnossl":    connGSS | connPlain,
	"hostgssenc":   connGSS,
	"hostnogssenc": connSSL | connPlain,
}

var hbaMethods = map[string]bool{
	"trust": true, "reject": true, "md5": true, "password": true, "scram-sha-256": true, "gss": true,
	"sspi": true, "ident": true, "peer": true, "pam": true, "ldap": true, "radius": true, "cert": true, "bsd": true,
}

type hbaAddr struct {
	// kind is all, samehost, samenet, net or name (a host name, or a
	// suffix starting with a dot).
	kind string
	net  netip.Prefix
	name string
}

// hbaFields splits a pg_hba.conf line into tokens as PostgreSQL does: white
// space separates, "..." quotes (keywords lose their meaning), a comma
// separates list items, # starts a comment.
func hbaFields(line string) [][]hbaToken {
	var fields [][]hbaToken
	var cur []hbaToken
	var tok strings.Builder
	quoted, inQuote, inTok, afterComma := false, false, false, false
	endTok := func() {
		if inTok {
			cur = append(cur, hbaToken{value: tok.String(), quoted: quoted})
		}
		tok.Reset()
		quoted, inTok = false, false
	}
	endField := func() {
		endTok()
		if cur != nil {
			fields = append(fields, cur)
		}
		cur = nil
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c != ' ' && c != '\t' && c != '\r' {
			afterComma = c == ',' && !inQuote
		}
		switch {
		case inQuote && c == '"':
			inQuote = false
		case inQuote:
			tok.WriteByte(c)
		case c == '"':
			inQuote, quoted, inTok = true, true, true
		case c == '#':
			endField()
			return fields
		case c == ',':
			endTok()
		case c == ' ' || c == '\t' || c == '\r':
			// A list goes on after a comma, white space or not.
			if !afterComma {
				endField()
			}
		default:
			tok.WriteByte(c)
			inTok = true
		}
	}
	endField()
	return fields
}

// parseHBA parses one line; ok is false for blank lines, comments and
// lines that are not a rule (include directives, errors).
func parseHBA(line string) (hbaRule, bool) {
	f := hbaFields(line)
	if len(f) < 4 || len(f[0]) != 1 || f[0][0].quoted {
		return hbaRule{}, false
	}
	kinds, ok := hbaTypes[f[0][0].value]
	if !ok {
		return hbaRule{}, false
	}
	r := hbaRule{conn: kinds, databases: f[1], users: f[2]}
	rest := f[3:]
	if kinds != connLocal {
		if len(rest) < 2 || len(rest[0]) != 1 {
			return hbaRule{}, false
		}
		a := rest[0][0]
		rest = rest[1:]
		switch {
		case !a.quoted && (a.value == "all" || a.value == "samehost" || a.value == "samenet"):
			r.addr = hbaAddr{kind: a.value}
		case strings.Contains(a.value, "/"):
			p, err := netip.ParsePrefix(a.value)
			if err != nil {
				return hbaRule{}, false
			}
			r.addr = hbaAddr{kind: "net", net: p.Masked()}
		default:
			if ip, err := netip.ParseAddr(a.value); err == nil {
				// An address without /len takes its mask from the next field.
				if len(rest) < 2 || len(rest[0]) != 1 {
					return hbaRule{}, false
				}
				m, err := netip.ParseAddr(rest[0][0].value)
				if err != nil {
					return hbaRule{}, false
				}
				bits := 0
				for _, b := range m.AsSlice() {
					for ; b&0x80 != 0; b <<= 1 {
						bits++
					}
				}
				r.addr = hbaAddr{kind: "net", net: netip.PrefixFrom(ip, bits).Masked()}
				rest = rest[1:]
			} else {
				r.addr = hbaAddr{kind: "name", name: strings.ToLower(a.value)}
			}
		}
	}
	if len(rest) < 1 || len(rest[0]) != 1 || !hbaMethods[rest[0][0].value] {
		return hbaRule{}, false
	}
	var m []string
	for _, fld := range rest {
		for _, t := range fld {
			m = append(m, t.value)
		}
	}
	r.method = strings.Join(m, " ")
	return r, true
}

// IsHBARule reports whether line is a pg_hba.conf rule: a connection type,
// databases, users, an address for TCP types, and an authentication method.
func IsHBARule(line string) bool {
	_, ok := parseHBA(line)
	return ok
}

// v6 maps an IPv4 prefix to its IPv4-mapped IPv6 form: PostgreSQL lets an
// IPv4 rule match a client connecting over IPv6 from the mapped address.
func v6(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4() {
		return netip.PrefixFrom(netip.AddrFrom16(p.Addr().As16()), p.Bits()+96)
	}
	return p
}

// overlaps reports whether some connection could match both rules;
// where it cannot be told from the file (samehost, host names, +groups,
// @files) it answers yes.
func (a hbaRule) overlaps(b hbaRule) bool {
	return a.conn&b.conn != 0 && listsOverlap(a.databases, b.databases, dbOverlap) &&
		listsOverlap(a.users, b.users, userOverlap) && addrOverlap(a.addr, b.addr, a.conn == connLocal)
}

// covers reports whether every connection b matches is surely matched by a.
func (a hbaRule) covers(b hbaRule) bool {
	return b.conn&^a.conn == 0 && listCovers(a.databases, b.databases, dbCovers) &&
		listCovers(a.users, b.users, userCovers) && (a.conn == connLocal || addrCovers(a.addr, b.addr))
}

func listsOverlap(a, b []hbaToken, f func(x, y hbaToken) bool) bool {
	for _, x := range a {
		for _, y := range b {
			if f(x, y) {
				return true
			}
		}
	}
	return false
}

func listCovers(a, b []hbaToken, f func(x, y hbaToken) bool) bool {
	for _, y := range b {
		found := false
		for _, x := range a {
			if f(x, y) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// replication is the keyword for physical replication connections, which
// "all" does not match.
func dbOverlap(x, y hbaToken) bool {
	if strings.HasPrefix(x.value, "@") && !x.quoted || strings.HasPrefix(y.value, "@") && !y.quoted {
		return true
	}
	if x.keyword("replication") || y.keyword("replication") {
		return x.keyword("replication") && y.keyword("replication")
	}
	if x.keyword("all") || y.keyword("all") || x.keyword("sameuser") || y.keyword("sameuser") ||
		x.keyword("samerole") || y.keyword("samerole") || x.keyword("samegroup") || y.keyword("samegroup") {
		return true
	}
	return x.value == y.value
}

func dbCovers(x, y hbaToken) bool {
	if x == y {
		return true
	}
	return x.keyword("all") && !y.keyword("replication") && !(strings.HasPrefix(y.value, "@") && !y.quoted)
}

func userOverlap(x, y hbaToken) bool {
	unknown := func(t hbaToken) bool {
		return !t.quoted && (t.value == "all" || strings.HasPrefix(t.value, "+") || strings.HasPrefix(t.value, "@"))
	}
	return unknown(x) || unknown(y) || x.value == y.value
}

func userCovers(x, y hbaToken) bool { return x == y || x.keyword("all") }

func addrOverlap(a, b hbaAddr, local bool) bool {
	if local {
		return true
	}
	if a.kind == "net" && b.kind == "net" {
		pa, pb := v6(a.net), v6(b.net)
		return pa.Overlaps(pb)
	}
	return true
}

func addrCovers(a, b hbaAddr) bool {
	switch {
	case a.kind == "all":
		return true
	case a.kind == "net" && b.kind == "net":
		pa, pb := v6(a.net), v6(b.net)
		return pa.Bits() <= pb.Bits() && pa.Contains(pb.Addr())
	}
	return a == b
}

// EnsureHBALine makes a pg_hba.conf rule present where PostgreSQL will use
// it. PostgreSQL takes the first rule that matches a connection, so a rule
// appended after a catch-all reject, or after a broader rule with another
// method, would never apply. The rule goes at the end (or in place of the
// first line matching match) unless an earlier rule with another method
// matches some of its connections: then it goes just before that rule. A
// rule already there but shadowed is moved. When putting it first would
// make a later rule of the file never apply (the new rule covers it
// entirely), it refuses, naming that rule.
func EnsureHBALine(text, line string, match *regexp.Regexp) (string, []Change, error) {
	want, ok := parseHBA(line)
	if !ok {
		return text, nil, fmt.Errorf("%q is not a pg_hba.conf rule (type, database, user, address for host types, method)", line)
	}
	lines := split(text)
	rules := make([]*hbaRule, len(lines))
	for i := 0; i < len(lines); i++ {
		// PostgreSQL 15 joins a line ending in a backslash with the next:
		// the rule is judged whole, at the line where it starts.
		start, l := i, lines[i]
		for strings.HasSuffix(strings.TrimRight(l, "\r"), "\\") && i+1 < len(lines) {
			l = strings.TrimSuffix(strings.TrimRight(l, "\r"), "\\") + lines[i+1]
			i++
		}
		if r, ok := parseHBA(l); ok {
			r.line = start
			rules[start] = &r
		}
	}
	pos, how := len(lines), "appended"
	replaced := -1
	for i, l := range lines {
		if sameFields(l, line) {
			if shadow(rules[:i], want) < 0 {
				return text, nil, nil
			}
			replaced, pos, how = i, i, "moved from line "+fmt.Sprint(i+1)
			break
		}
	}
	if replaced < 0 && match != nil {
		for i, l := range lines {
			if match.MatchString(l) {
				replaced, pos, how = i, i, fmt.Sprintf("replaced line %d %q", i+1, l)
				break
			}
		}
	}
	at := pos
	if s := shadow(rules[:pos], want); s >= 0 {
		at = s
		for _, r := range rules[s:pos] {
			if r != nil && r.line != replaced && r.method != want.method && want.covers(*r) {
				return text, nil, fmt.Errorf("pg_hba.conf line %d %q matches connections of %q first (PostgreSQL uses the first rule that matches), and putting the new rule before it would make line %d %q never apply: decide their order in the file yourself", s+1, strings.TrimSpace(lines[s]), line, r.line+1, strings.TrimSpace(lines[r.line]))
			}
		}
		how += fmt.Sprintf(", before line %d %q, which would match its connections first", s+1, strings.TrimSpace(lines[s]))
	}
	out := make([]string, 0, len(lines)+2)
	put := func() {
		// After a line ending in a backslash (a comment too: PostgreSQL 15
		// joins it with the next), an empty line first, or the rule would
		// be read as part of it.
		if n := len(out); n > 0 && strings.HasSuffix(strings.TrimRight(out[n-1], "\r"), "\\") {
			out = append(out, "")
		}
		out = append(out, line)
	}
	for i, l := range lines {
		if i == at {
			put()
		}
		if i != replaced {
			out = append(out, l)
		}
	}
	if at == len(lines) {
		put()
	}
	return join(out, text), []Change{Change(fmt.Sprintf("%q %s", line, how))}, nil
}

// shadow returns the index of the first rule that matches some connection
// of want with another method, or -1.
func shadow(rules []*hbaRule, want hbaRule) int {
	for i, r := range rules {
		if r != nil && r.method != want.method && r.overlaps(want) {
			return i
		}
	}
	return -1
}
