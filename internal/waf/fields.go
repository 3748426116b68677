package waf

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"strings"

	"github.com/rampart-edge/rampart/internal/config"
)

// evalCtx is the state of one request's evaluation: the labels added so far, the inspected
// prefix of the body and the parts of the request parsed on first use. Contexts are pooled, so
// the origin-verify fast path allocates nothing.
type evalCtx struct {
	r      *http.Request
	acl    *WebACL
	labels []string

	bodyDone bool
	body     []byte
	oversize bool
	bodyErr  error

	queryDone   bool
	query       url.Values
	cookiesDone bool
	cookies     []*http.Cookie
	formDone    bool
	form        url.Values
	jsonDone    bool
	jsonOK      bool
	jsonKeys    []string
	jsonValues  []string
	jsonValKeys []string // jsonValKeys[i]: the member key jsonValues[i] is under, for the log

	hit         hit        // the field and value that made the last statement match
	crs         *crsResult // the managed rule group's findings, when one ran
	internalErr error      // a failure that must block the request (fail closed)
	storeErr    error      // the rate-limit store failed and on_store_error is deny: 503
}

// hit describes what matched, for the WAF log.
type hit struct {
	field string
	value string
	set   bool
}

func (ec *evalCtx) reset() {
	*ec = evalCtx{labels: ec.labels[:0]}
}

// replayBody gives the next handler the body as the client sent it: the inspected prefix, then
// the rest, still unread, straight from the connection.
type replayBody struct {
	io.Reader
	io.Closer
}

// readBody reads at most the ACL's body_inspection_limit plus one byte, which tells an oversize
// body apart without buffering it, and puts the bytes back in front of the rest of the body.
func (ec *evalCtx) readBody() {
	if ec.bodyDone {
		return
	}
	ec.bodyDone = true
	r := ec.r
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	limit := ec.acl.bodyLimit
	size := 512
	if r.ContentLength > 0 && r.ContentLength <= int64(limit) {
		size = int(r.ContentLength) + 1
	} else if r.ContentLength > int64(limit) {
		size = limit + 1
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	_, err := buf.ReadFrom(io.LimitReader(r.Body, int64(limit)+1))
	data := buf.Bytes()
	if err != nil {
		ec.bodyErr = fmt.Errorf("read request body: %w", err)
	}
	r.Body = &replayBody{Reader: io.MultiReader(bytes.NewReader(data), r.Body), Closer: r.Body}
	if len(data) > limit {
		ec.oversize = true
		data = data[:limit]
	}
	ec.body = data
}

func (ec *evalCtx) queryArgs() url.Values {
	if !ec.queryDone {
		ec.queryDone = true
		// Lenient: a pair url.ParseQuery would drop still reaches lenient backends (lenient.go).
		ec.query = parseArgsLenient(ec.r.URL.RawQuery)
	}
	return ec.query
}

func (ec *evalCtx) allCookies() []*http.Cookie {
	if !ec.cookiesDone {
		ec.cookiesDone = true
		ec.cookies = ec.r.Cookies()
	}
	return ec.cookies
}

// formArgs parses an application/x-www-form-urlencoded body (its inspected prefix).
func (ec *evalCtx) formArgs() url.Values {
	if !ec.formDone {
		ec.formDone = true
		if mt, _, _ := mime.ParseMediaType(ec.r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
			ec.readBody()
			ec.form = parseArgsLenient(string(ec.body))
		}
	}
	return ec.form
}

// jsonParts parses the body as JSON into its keys and scalar values (numbers as written, true,
// false, null), every occurrence of a duplicated key included (jsonWalk, lenient.go). jsonOK is
// false for a body that is not valid JSON (or cut by the limit).
func (ec *evalCtx) jsonParts() {
	if ec.jsonDone {
		return
	}
	ec.jsonDone = true
	ec.readBody()
	ec.jsonOK = jsonWalk(ec.body,
		func(k string) { ec.jsonKeys = append(ec.jsonKeys, k) },
		func(k, v string) {
			ec.jsonValues, ec.jsonValKeys = append(ec.jsonValues, v), append(ec.jsonValKeys, k)
		})
}

// sourceAddr is the connection's peer address.
func sourceAddr(r *http.Request) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap(), true
	}
	if a, err := netip.ParseAddr(r.RemoteAddr); err == nil {
		return a.Unmap(), true
	}
	return netip.Addr{}, false
}

// field is a compiled field_to_match.
type field struct {
	name string // for the WAF log, such as header:User-Agent or uri_path
	body bool   // the field is (part of) the body, so oversize handling applies
	// each calls visit with the key and value of every instance of the field until visit
	// returns true, and reports whether it did.
	each func(ec *evalCtx, visit func(key, v string) bool) bool
}

// Match scopes.
const (
	scopeAll   = "ALL"
	scopeKey   = "KEY"
	scopeValue = "VALUE"
)

func scopeOf(s *config.MatchScope) string {
	if s == nil || s.MatchScope == "" {
		return scopeAll
	}
	return s.MatchScope
}

// visitKV visits a key and/or its value according to scope.
func visitKV(scope, k, v string, visit func(key, v string) bool) bool {
	if scope != scopeValue && visit(k, k) {
		return true
	}
	return scope != scopeKey && visit(k, v)
}

// compileField compiles f. at names it in errors.
func compileField(f config.FieldToMatch, at string) (field, error) {
	n := 0
	for _, set := range []bool{f.SingleHeader != "", f.AllHeaders != nil, f.Cookie != "", f.AllCookies != nil,
		f.URIPath != nil, f.QueryString != nil, f.SingleQueryArgument != "", f.AllQueryArguments != nil,
		f.Method != nil, f.Body != nil, f.JSONBody != nil, f.FormField != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return field{}, fmt.Errorf("%s: selects %d parts of the request, want exactly 1", at, n)
	}
	switch {
	case f.SingleHeader != "":
		return headerField(f.SingleHeader), nil
	case f.AllHeaders != nil:
		scope := scopeOf(f.AllHeaders)
		return field{name: "all_headers", each: func(ec *evalCtx, visit func(k, v string) bool) bool {
			r := ec.r
			if r.Host != "" && visitKV(scope, "Host", r.Host, visit) {
				return true
			}
			for k, vs := range r.Header {
				for _, v := range vs {
					if visitKV(scope, k, v, visit) {
						return true
					}
				}
			}
			return false
		}}, nil
	case f.Cookie != "":
		name := f.Cookie
		return field{name: "cookie:" + name, each: func(ec *evalCtx, visit func(k, v string) bool) bool {
			for _, c := range ec.allCookies() {
				if c.Name == name && visit(name, c.Value) {
					return true
				}
			}
			return false
		}}, nil
	case f.AllCookies != nil:
		scope := scopeOf(f.AllCookies)
		return field{name: "all_cookies", each: func(ec *evalCtx, visit func(k, v string) bool) bool {
			for _, c := range ec.allCookies() {
				if visitKV(scope, c.Name, c.Value, visit) {
					return true
				}
			}
			return false
		}}, nil
	case f.URIPath != nil:
		return field{name: "uri_path", each: func(ec *evalCtx, visit func(k, v string) bool) bool {
			return visit("", rawPath(ec.r))
		}}, nil
	case f.QueryString != nil:
		return field{name: "query_string", each: func(ec *evalCtx, visit func(k, v string) bool) bool {
			return visit("", ec.r.URL.RawQuery)
		}}, nil
	case f.SingleQueryArgument != "":
		name := f.SingleQueryArgument
		return field{name: "query_argument:" + name, each: func(ec *evalCtx, visit func(k, v string) bool) bool {
			for k, vs := range ec.queryArgs() {
				if !strings.EqualFold(k, name) {
					continue
				}
				for _, v := range vs {
					if visit(k, v) {
						return true
					}
				}
			}
			return false
		}}, nil
	case f.AllQueryArguments != nil:
		scope := scopeOf(f.AllQueryArguments)
		return field{name: "all_query_arguments", each: func(ec *evalCtx, visit func(k, v string) bool) bool {
			for k, vs := range ec.queryArgs() {
				for _, v := range vs {
					if visitKV(scope, k, v, visit) {
						return true
					}
				}
			}
			return false
		}}, nil
	case f.Method != nil:
		return field{name: "method", each: func(ec *evalCtx, visit func(k, v string) bool) bool {
			return visit("", ec.r.Method)
		}}, nil
	case f.Body != nil:
		return field{name: "body", body: true, each: func(ec *evalCtx, visit func(k, v string) bool) bool {
			ec.readBody()
			return visit("", string(ec.body))
		}}, nil
	case f.JSONBody != nil:
		scope := scopeOf(f.JSONBody)
		return field{name: "json_body", body: true, each: func(ec *evalCtx, visit func(k, v string) bool) bool {
			ec.jsonParts()
			if !ec.jsonOK {
				// Not JSON: inspect it as plain text, so that a malformed body cannot hide a
				// payload (AWS's EVALUATE_AS_STRING).
				return visit("", string(ec.body))
			}
			if scope != scopeValue {
				for _, k := range ec.jsonKeys {
					if visit(k, k) {
						return true
					}
				}
			}
			if scope != scopeKey {
				for i, v := range ec.jsonValues {
					if visit(ec.jsonValKeys[i], v) {
						return true
					}
				}
			}
			return false
		}}, nil
	default:
		name := f.FormField
		return field{name: "form_field:" + name, body: true, each: func(ec *evalCtx, visit func(k, v string) bool) bool {
			for _, v := range ec.formArgs()[name] {
				if visit(name, v) {
					return true
				}
			}
			return false
		}}, nil
	}
}

// headerField is one header. An absent header has no value (never matches); a header sent more
// than once is its values joined with ", ", the single field RFC 9110 says they are equivalent
// to, so that splitting a value over two lines neither hides nor fakes a match. Host is read
// from the request line or Host header, where Go keeps it.
func headerField(header string) field {
	name := textproto.CanonicalMIMEHeaderKey(header)
	return field{name: "header:" + name, each: func(ec *evalCtx, visit func(k, v string) bool) bool {
		if name == "Host" {
			return visit(name, ec.r.Host)
		}
		values := ec.r.Header[name]
		switch len(values) {
		case 0:
			return false
		case 1:
			return visit(name, values[0])
		}
		return visit(name, strings.Join(values, ", "))
	}}
}

// rawPath is the path as the client wrote it, before any decoding.
func rawPath(r *http.Request) string {
	if u := r.RequestURI; strings.HasPrefix(u, "/") {
		if i := strings.IndexByte(u, '?'); i >= 0 {
			return u[:i]
		}
		return u
	}
	return r.URL.EscapedPath()
}
