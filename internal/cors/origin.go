package cors

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// origin is a parsed serialized origin (scheme "://" host [":" port]) in canonical form, so that
// two spellings browsers or configs may use for the same origin compare equal: scheme and host are
// lowercase, IPv6 hosts are in canonical bracketed form, and the default port of http and https is
// made explicit.
type origin struct {
	scheme string
	host   string
	port   string // decimal; empty only for a scheme without a default port and no port given
}

func (o origin) key() string { return o.scheme + "://" + o.host + ":" + o.port }

// serialize writes the origin as browsers send it: the default port of the scheme is left out.
func (o origin) serialize() string {
	if o.port == "" || o.port == defaultPort(o.scheme) {
		return o.scheme + "://" + o.host
	}
	return o.scheme + "://" + o.host + ":" + o.port
}

// isIP reports whether the host is an address literal; wildcards never match those.
func (o origin) isIP() bool {
	if strings.HasPrefix(o.host, "[") {
		return true
	}
	_, err := netip.ParseAddr(o.host)
	return err == nil
}

// parseOrigin parses the value of an Origin header. Anything that is not a well-formed serialized
// origin — a path (even "/"), userinfo, query, fragment, whitespace, percent-encoding, non-ASCII,
// "null", the empty string — is refused, so that such a value can never match an allowed origin.
func parseOrigin(s string) (origin, bool) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !validScheme(scheme) {
		return origin{}, false
	}
	o := origin{scheme: strings.ToLower(scheme)}
	var port string
	hasPort := false
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return origin{}, false
		}
		addr, err := netip.ParseAddr(rest[1:end])
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return origin{}, false
		}
		o.host = "[" + addr.String() + "]"
		after := rest[end+1:]
		if after != "" {
			if after[0] != ':' {
				return origin{}, false
			}
			port, hasPort = after[1:], true
		}
	} else {
		host := rest
		if i := strings.LastIndexByte(rest, ':'); i >= 0 {
			host, port, hasPort = rest[:i], rest[i+1:], true
		}
		h, ok := canonicalHost(host)
		if !ok {
			return origin{}, false
		}
		o.host = h
	}
	if hasPort {
		if !validPort(port) {
			return origin{}, false
		}
		o.port = port
	} else {
		o.port = defaultPort(o.scheme)
	}
	return o, true
}

func validScheme(s string) bool {
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !isDigit(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// canonicalHost validates a registered name or IPv4 address and lowercases it. Labels are ASCII
// letters, digits, '-' and '_' (browsers send internationalized names in punycode); a name whose
// last label is numeric must be a valid dotted IPv4 address, as in the URL standard.
func canonicalHost(h string) (string, bool) {
	if h == "" || len(h) > 253 {
		return "", false
	}
	// Walk the labels in place: this runs for every request with an Origin, and strings.Split
	// would allocate.
	last := ""
	for rest := h; ; {
		l, after, more := strings.Cut(rest, ".")
		if l == "" || len(l) > 63 {
			return "", false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !isAlpha(c) && !isDigit(c) && c != '-' && c != '_' {
				return "", false
			}
		}
		if !more {
			last = l
			break
		}
		rest = after
	}
	if allDigits(last) {
		addr, err := netip.ParseAddr(h)
		if err != nil || !addr.Is4() {
			return "", false
		}
		return addr.String(), true
	}
	return strings.ToLower(h), true
}

// validPort accepts 1–65535 written without leading zeros, as browsers serialize it.
func validPort(p string) bool {
	if p == "" || len(p) > 5 || p[0] == '0' || !allDigits(p) {
		return false
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

func defaultPort(scheme string) string {
	switch scheme {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// wildcard is a pattern "scheme://*.suffix[:port]". It matches hosts with at least one more label in
// front of suffix, with the same scheme and port.
type wildcard struct {
	scheme string
	suffix string // ".example.com"
	port   string
}

// Matcher decides whether an Origin header value is one of a set of allowed origins. Patterns are
// exact origins ("https://app.example.com", "http://localhost:3000"), label-aware wildcards
// ("https://*.example.com", matching a.example.com and a.b.example.com but never example.com or
// evilexample.com), or "*" for any well-formed origin. A Matcher is immutable and safe for
// concurrent use.
type Matcher struct {
	any   bool
	exact map[string]bool // canonical keys, scheme://host:port
	// verbatim holds each exact origin as written in the config and as a browser serializes it
	// (no default port). A header equal to one of them is allowed without parsing: it is a
	// well-formed origin by construction, and this is the common case, with no allocation.
	verbatim  map[string]bool
	wildcards []wildcard
}

// NewMatcher compiles patterns. It fails on the first pattern that is not an origin or wildcard.
func NewMatcher(patterns []string) (*Matcher, error) {
	m := &Matcher{exact: make(map[string]bool), verbatim: make(map[string]bool)}
	for _, p := range patterns {
		if p == "*" {
			m.any = true
			continue
		}
		scheme, rest, ok := strings.Cut(p, "://")
		if ok && strings.HasPrefix(rest, "*.") {
			// Validate the rest as an origin with a placeholder label in place of the star.
			o, ok := parseOrigin(scheme + "://x" + rest[1:])
			if !ok || o.isIP() {
				return nil, fmt.Errorf("allowed origin %q: a wildcard is written scheme://*.domain[:port]", p)
			}
			m.wildcards = append(m.wildcards, wildcard{scheme: o.scheme, suffix: o.host[1:], port: o.port})
			continue
		}
		if strings.Contains(p, "*") {
			return nil, fmt.Errorf("allowed origin %q: '*' is only allowed alone or as the first label (https://*.example.com)", p)
		}
		o, ok := parseOrigin(p)
		if !ok {
			return nil, fmt.Errorf("allowed origin %q: not an origin (scheme://host[:port], no path)", p)
		}
		m.exact[o.key()] = true
		m.verbatim[p] = true
		m.verbatim[o.serialize()] = true
	}
	return m, nil
}

// AllowsAny reports whether the patterns included "*".
func (m *Matcher) AllowsAny() bool { return m.any }

// Match reports whether the Origin header value v is allowed. A value that is not a well-formed
// serialized origin never matches, not even "*".
func (m *Matcher) Match(v string) bool {
	if m.verbatim[v] {
		return true
	}
	o, ok := parseOrigin(v)
	if !ok {
		return false
	}
	if m.any || m.exact[o.key()] {
		return true
	}
	if o.isIP() {
		return false
	}
	for _, w := range m.wildcards {
		if o.scheme == w.scheme && o.port == w.port &&
			len(o.host) > len(w.suffix) && strings.HasSuffix(o.host, w.suffix) {
			return true
		}
	}
	return false
}
