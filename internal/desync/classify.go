// Package desync is Rampart's HTTP request smuggling (desync) guard, after AWS ALB and its
// open-source http_desync_guardian. A Guard wraps a net.Listener: every HTTP/1 request head is
// classified from its raw bytes before net/http parses it, blocked requests are answered 400 on
// the raw connection, and the verdict of each admitted request reaches its handler through
// Guard.Handler and FromContext. The load balancer and the gateway both serve through it.
package desync

import (
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/net/http/httpguts"
)

// Modes, as in AWS ALB's desync_mitigation_mode (the same strings as the config constants).
const (
	Monitor   = "monitor"
	Defensive = "defensive"
	Strictest = "strictest"
)

// Class is the classification of a request, from harmless to hostile:
//
//   - Compliant: RFC 9112 compliant;
//   - Acceptable: not compliant but harmless (bare LF line ends, a space in the URI, HTTP/1.2,
//     a control character in an ordinary header, GET with Content-Length: 0);
//   - Ambiguous: servers may disagree on it (both Transfer-Encoding and Content-Length, the same
//     Content-Length twice, a header that normalizes to Transfer-Encoding or Content-Length,
//     obs-fold lines, GET or HEAD with a body, a header line without a colon, an empty name);
//   - Severe: built to confuse parsers (different Content-Length values, a non-numeric one or a
//     list, an unknown or repeated chunked Transfer-Encoding, NUL or CR inside a header or the
//     URI, a bad method or version, a bad chunk size in the body).
//
// Header names and codings are compared in ASCII only, as HTTP servers do: Unicode case folding
// would make "Tran\u017Ffer-Encoding" (long s) the Transfer-Encoding header.
type Class int

// The classes http_desync_guardian defines.
const (
	Compliant Class = iota
	Acceptable
	Ambiguous
	Severe
)

func (c Class) String() string {
	if c < Compliant || c > Severe {
		return "Class(" + strconv.Itoa(int(c)) + ")"
	}
	return [...]string{"Compliant", "Acceptable", "Ambiguous", "Severe"}[c]
}

// Verdict is the classification of one request and what the mode makes of it. Handlers read it
// with FromContext.
type Verdict struct {
	Class  Class
	Reason string // the http_desync_guardian reason code, "Compliant" for a compliant request
	// CloseConns: serve the request, then close the client connection (the guard's handler sets
	// Connection: close) and the connection to any backend it was forwarded on.
	CloseConns bool
	Block      bool // answered 400 by the guard and the connection closed: no handler sees it
	GoRejects  bool // net/http would refuse the head: the guard answers a JSON 400 instead
	Method     string
	Path       string // the request target without its query

	// upgrade marks an admitted protocol upgrade (WebSocket; never h2c): the guard holds what
	// follows it until the response is known. outcome is guarded by conn.mu.
	upgrade bool
	outcome upgradeOutcome
	// ctx is the request's context with this verdict (Guard.Handler): kept in the verdict, it
	// costs no allocation of its own per request.
	ctx verdictContext
}

// upgradeOutcome is what became of an upgrade request.
type upgradeOutcome int

const (
	upPending upgradeOutcome = iota
	upTunnel                 // answered 101 on the hijacked connection: bytes are no longer HTTP
	upRefused                // answered otherwise: the connection stays HTTP and guarded
)

func (v *Verdict) raise(c Class, reason string) {
	if c > v.Class {
		v.Class, v.Reason = c, reason
	}
}

// apply decides what the mode does with the classification.
func (v *Verdict) apply(mode string) {
	switch mode {
	case Monitor:
	case Strictest:
		v.Block = v.Class > Compliant
	default:
		v.Block = v.Class == Severe
		v.CloseConns = v.Class == Ambiguous
	}
	if v.GoRejects {
		v.Block = true
	}
}

// Classify classifies a raw request head: the request line and header lines, up to and
// including the empty line that ends them.
func Classify(head []byte) *Verdict {
	v := &Verdict{Reason: "Compliant"}
	// One string for the whole head, its lines substrings of it: converting line by line cost an
	// allocation per header line.
	lines := strings.Split(string(head), "\n")
	// The head ends with an empty line, so the split ends with two empty elements (or one, for a
	// head ending in "\n\n" preceded by a line).
	if n := len(lines); n > 0 && len(lines[n-1]) == 0 {
		lines = lines[:n-1]
	}
	for i, ln := range lines {
		if len(ln) > 0 && ln[len(ln)-1] == '\r' {
			lines[i] = ln[:len(ln)-1]
		} else {
			v.raise(Acceptable, "NonCrLfLineTermination")
		}
	}
	if len(lines) == 0 {
		v.raise(Severe, "BadMethod")
		return v
	}
	version := classifyRequestLine(v, lines[0])

	var cls, tes []string
	prevContentType := false
	for _, line := range lines[1:] {
		if line == "" {
			break // the empty line that ends the head
		}
		if line[0] == ' ' || line[0] == '\t' {
			switch {
			case strings.TrimLeft(line, " \t") == "":
				v.raise(Ambiguous, "EmptyHeader")
			case !prevContentType:
				v.raise(Ambiguous, "MultilineHeader")
			}
			if sus := suspiciousName(strings.SplitN(line, ":", 2)[0]); sus {
				v.raise(Ambiguous, "SuspiciousHeader")
			}
			continue
		}
		colon := strings.IndexByte(line, ':')
		if colon < 0 {
			v.raise(Ambiguous, "MissingHeaderColon")
			continue
		}
		name, value := line[:colon], strings.Trim(line[colon+1:], " \t")
		prevContentType = asciiEqualFold(name, "Content-Type")
		if strings.ContainsAny(name, "\x00\r") || strings.ContainsAny(value, "\x00\r") {
			v.raise(Severe, "BadHeader")
			continue
		}
		if strings.Trim(name, " \t") == "" {
			v.raise(Ambiguous, "EmptyHeader")
			continue
		}
		switch {
		case asciiEqualFold(name, "Content-Length"):
			cls = append(cls, value)
		case asciiEqualFold(name, "Transfer-Encoding"):
			tes = append(tes, value)
		case suspiciousName(name):
			v.raise(Ambiguous, "SuspiciousHeader")
		case !isToken(name) || !printable(value):
			v.raise(Acceptable, "NonCompliantHeader")
		}
	}
	classifyFraming(v, cls, tes, version)
	return v
}

// classifyRequestLine classifies "METHOD SP target SP version" and returns the version.
func classifyRequestLine(v *Verdict, line string) string {
	fields := strings.Split(line, " ")
	v.Method = fields[0]
	if !isToken(fields[0]) {
		v.raise(Severe, "BadMethod")
	}
	if len(fields) < 2 || (len(fields) == 2 && strings.HasPrefix(fields[1], "HTTP/")) {
		v.raise(Ambiguous, "MissingUri")
		return ""
	}
	version := ""
	uriFields := fields[1:]
	if len(fields) > 2 {
		version = fields[len(fields)-1]
		uriFields = fields[1 : len(fields)-1]
	}
	uri := strings.Join(uriFields, " ")
	v.Path, _, _ = strings.Cut(uri, "?")
	switch {
	case strings.ContainsAny(uri, "\x00\r"):
		v.raise(Severe, "BadUri")
	case strings.ContainsFunc(uri, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		v.raise(Ambiguous, "AmbiguousUri")
	case len(uriFields) > 1:
		v.raise(Acceptable, "SpaceInUri")
	}
	switch {
	case version == "HTTP/1.1" || version == "HTTP/1.0":
	case version == "":
		v.raise(Acceptable, "NonCompliantVersion") // HTTP/0.9
	case len(version) == 8 && strings.HasPrefix(version, "HTTP/1.") && version[7] >= '2' && version[7] <= '9':
		v.raise(Acceptable, "NonCompliantVersion")
	default:
		v.raise(Severe, "BadVersion")
	}
	return version
}

// classifyFraming classifies the headers that decide where the body ends.
func classifyFraming(v *Verdict, cls, tes []string, version string) {
	bodyless := v.Method == http.MethodGet || v.Method == http.MethodHead
	var length string
	for _, h := range cls {
		// One decimal number per header, as http_desync_guardian requires: a list ("1, 1") is
		// BadContentLength, whatever RFC 9110 allows for identical values, since servers
		// disagree on it (net/http refuses it, others take the first or the last).
		if h == "" || len(h) > 18 || strings.Trim(h, "0123456789") != "" {
			v.raise(Severe, "BadContentLength")
			continue
		}
		switch {
		case length == "":
			length = h
		case strings.TrimLeft(h, "0") != strings.TrimLeft(length, "0"):
			v.raise(Severe, "MultipleContentLength")
		default:
			v.raise(Ambiguous, "DuplicateContentLength")
		}
	}
	chunked := 0
	for _, h := range tes {
		for _, part := range strings.Split(h, ",") {
			coding := asciiLower(strings.Trim(part, " \t")) // not Unicode: "chun\u212Aed" is not chunked
			switch coding {
			case "chunked":
				chunked++
			case "gzip", "deflate", "compress", "identity", "x-gzip", "x-compress":
				if chunked > 0 {
					v.raise(Severe, "BadTransferEncoding") // chunked must be last
				}
			default:
				v.raise(Severe, "BadTransferEncoding")
			}
		}
	}
	if chunked > 1 {
		v.raise(Severe, "MultipleTransferEncodingChunked")
	}
	switch {
	case len(tes) > 0 && len(cls) > 0:
		v.raise(Ambiguous, "BothTeClPresent")
	case len(tes) > 0 && (bodyless || version != "HTTP/1.1"):
		v.raise(Ambiguous, "UndefinedTransferEncodingSemantics")
	case len(cls) > 0 && bodyless && strings.TrimLeft(length, "0") == "" && length != "":
		v.raise(Acceptable, "GetHeadZeroContentLength")
	case len(cls) > 0 && bodyless:
		v.raise(Ambiguous, "UndefinedContentLengthSemantics")
	}
}

// suspiciousName reports a header name that is not exactly Transfer-Encoding or Content-Length
// but becomes one under common normalizations: case folding (ſ, ı, K), dropping delimiters,
// whitespace, control and non-ASCII characters, or cutting a short suffix.
func suspiciousName(name string) bool {
	if asciiEqualFold(name, "Transfer-Encoding") || asciiEqualFold(name, "Content-Length") {
		return false
	}
	// The name's letters after normalization: only the first few matter, and how many there are
	// (kept on the stack: a strings.Builder here cost an allocation per header line).
	var letters [len("transferencoding")]byte
	n := 0
	for _, r := range name {
		switch r {
		case 'ſ':
			r = 's'
		case 'ı':
			r = 'i'
		case 'K': // Kelvin sign
			r = 'k'
		}
		r = unicode.ToLower(r)
		if r >= 'a' && r <= 'z' {
			if n < len(letters) {
				letters[n] = byte(r)
			}
			n++
		}
	}
	for _, want := range [...]string{"transferencoding", "contentlength"} {
		if n >= len(want) && n-len(want) <= 2 && string(letters[:len(want)]) == want {
			return true
		}
	}
	return false
}

// asciiEqualFold is strings.EqualFold for ASCII only, as HTTP compares header names:
// strings.EqualFold folds Unicode, so "Tran\u017Ffer-Encoding" (long s) would equal
// "Transfer-Encoding" there while every HTTP server sees another header.
func asciiEqualFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if asciiLowerByte(s[i]) != asciiLowerByte(t[i]) {
			return false
		}
	}
	return true
}

func asciiLowerByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// asciiLower lowers ASCII letters only, leaving every other byte as it is.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = asciiLowerByte(c)
	}
	return string(b)
}

// isToken reports whether s is an RFC 9110 token (the grammar of header names and methods).
func isToken(s string) bool { return httpguts.ValidHeaderFieldName(s) }

// printable reports a header value without control characters: visible ASCII, spaces, tabs and
// obs-text (bytes 0x80-0xFF, RFC 9110 5.5), which http_desync_guardian classifies compliant, so
// that strictest mode does not refuse a UTF-8 value.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// GoRejectsHead reports whether net/http's server would refuse the head, so that the guard can
// answer with the same JSON 400 as every other error (and log it) instead of net/http's text one.
func GoRejectsHead(head []byte) bool {
	var p headParser
	return goRejects(p.parse(head))
}

// goRejects is GoRejectsHead on the result of parsing the head.
func goRejects(req *http.Request, err error) bool {
	if err != nil {
		return true
	}
	hosts := req.Header.Values("Host")
	if req.ProtoAtLeast(1, 1) && req.Host == "" && len(hosts) == 0 {
		return true
	}
	if len(hosts) > 1 {
		return true
	}
	for name, vs := range req.Header {
		if !isToken(name) {
			return true // "invalid header name"
		}
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
					return true
				}
			}
		}
	}
	return false
}
