package gateway

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/rampart-edge/rampart/internal/config"
)

// segment is one path segment of a route template: a literal, or a {param} that matches any one
// non-empty segment.
type segment struct {
	literal string
	param   bool
}

// resource is every route that shares one path shape: "/items/{id}" and "/items/{key}" are the same
// resource. Methods are looked up within the resource the path resolves to, so that a 405 lists
// exactly the methods of that path.
type resource struct {
	template string // as first configured, for logs
	segs     []segment
	methods  map[string]int // method → index into the configured routes
	allow    string         // the Allow header of a 405, in configured order
}

// router resolves a cleaned path to a resource. Resources are sorted so that, of two templates that
// both match a path, the one with a literal segment where the other has a parameter (at the first
// position where they differ) comes first.
type router struct {
	resources []*resource
}

// newRouter compiles the routes' templates. Route i is reported as index i by route lookups.
func newRouter(routes []config.Route) (*router, error) {
	byShape := map[string]*resource{}
	rt := &router{}
	for i, r := range routes {
		segs, err := compileTemplate(r.Path)
		if err != nil {
			return nil, fmt.Errorf("route %q: %w", r.Path, err)
		}
		shape := shapeKey(segs)
		res := byShape[shape]
		if res == nil {
			res = &resource{template: r.Path, segs: segs, methods: map[string]int{}}
			byShape[shape] = res
			rt.resources = append(rt.resources, res)
		}
		if len(r.Methods) == 0 {
			return nil, fmt.Errorf("route %q: no methods", r.Path)
		}
		for _, m := range r.Methods {
			m = strings.ToUpper(m)
			if _, dup := res.methods[m]; dup {
				return nil, fmt.Errorf("route %q: method %s is already routed for this path", r.Path, m)
			}
			res.methods[m] = i
			if res.allow != "" {
				res.allow += ", "
			}
			res.allow += m
		}
	}
	slices.SortStableFunc(rt.resources, func(a, b *resource) int {
		return slices.CompareFunc(a.segs, b.segs, func(x, y segment) int {
			// Literals sort before parameters; the literal text does not matter for precedence.
			return cmp.Compare(boolInt(x.param), boolInt(y.param))
		})
	})
	return rt, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// compileTemplate parses a path template such as "/items/{id}". Templates are clean absolute paths;
// a parameter is a whole segment.
func compileTemplate(p string) ([]segment, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("path must start with /")
	}
	if p == "/" {
		return nil, nil
	}
	var segs []segment
	names := map[string]bool{}
	for _, s := range strings.Split(p[1:], "/") {
		switch {
		case s == "":
			return nil, fmt.Errorf("empty path segment (write /a/b, not /a//b or /a/)")
		case s == "." || s == "..":
			return nil, fmt.Errorf("segment %q is not allowed", s)
		case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}"):
			name := s[1 : len(s)-1]
			if !validParamName(name) {
				return nil, fmt.Errorf("parameter %q: names are letters, digits and _", s)
			}
			if names[name] {
				return nil, fmt.Errorf("parameter %q appears twice", name)
			}
			names[name] = true
			segs = append(segs, segment{param: true})
		case strings.ContainsAny(s, "{}"):
			return nil, fmt.Errorf("segment %q: a parameter must be a whole segment, such as {id}", s)
		default:
			segs = append(segs, segment{literal: s})
		}
	}
	return segs, nil
}

func validParamName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func shapeKey(segs []segment) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		if s.param {
			b.WriteString("{}")
		} else {
			b.WriteString(s.literal)
		}
	}
	return b.String()
}

// lookup returns the resource a clean path (as returned by cleanPath) resolves to, or nil.
func (rt *router) lookup(p string) *resource {
	// The segments go to an array on the stack (a path of more than 16 grows it on the heap):
	// strings.Split cost an allocation per request.
	var buf [16]string
	parts := buf[:0]
	if p != "/" {
		for s := range strings.SplitSeq(strings.TrimPrefix(p, "/"), "/") {
			parts = append(parts, s)
		}
	}
	for _, res := range rt.resources {
		if res.matches(parts) {
			return res
		}
	}
	return nil
}

func (res *resource) matches(parts []string) bool {
	if len(parts) != len(res.segs) {
		return false
	}
	for i, s := range res.segs {
		if s.param {
			if parts[i] == "" {
				return false
			}
		} else if parts[i] != s.literal {
			return false
		}
	}
	return true
}

// route returns the index of the route serving method. HEAD is served by the GET route unless a
// route names HEAD itself.
func (res *resource) route(method string) (int, bool) {
	if i, ok := res.methods[method]; ok {
		return i, true
	}
	if method == "HEAD" {
		i, ok := res.methods["GET"]
		return i, ok
	}
	return 0, false
}

// cleanPath prepares an inbound, already percent-decoded path for matching. It refuses (ok false)
// a path that is not absolute or that has a ".." segment, as a backend may read it (climbs): such
// a request is malformed or an attempt to escape a route's prefix. Otherwise it removes "."
// segments, repeated and trailing slashes. The cleaned path is also the path forwarded, so the
// backend sees exactly what was routed.
func cleanPath(p string) (string, bool) {
	if p == "" {
		return "/", true
	}
	if p[0] != '/' {
		return "", false
	}
	// A path that is already clean, as nearly every request's is, is returned as it is: splitting
	// and rebuilding it cost three allocations per request.
	clean := true
	for s := range strings.SplitSeq(p[1:], "/") {
		switch {
		case climbs(s):
			return "", false
		case s == "", s == ".":
			clean = false
		}
	}
	if clean {
		return p, true
	}
	var b strings.Builder
	for _, s := range strings.Split(p[1:], "/") {
		switch {
		case climbs(s):
			return "", false
		case s == "", s == ".":
			continue
		}
		b.WriteByte('/')
		b.WriteString(s)
	}
	if b.Len() == 0 {
		return "/", true
	}
	return b.String(), true
}

// climbs reports whether a backend may read path segment s as "..": plainly, or once it drops a
// ";parameters" suffix (Tomcat, Jetty and Spring read "..;x" as ".."), or once it reads "\" as
// "/" (IIS and some Node and Python servers read "a\..\b" as three segments). The gateway
// forwards ";" and "\" (escaped as %5C) as they came, so either would let "/items/{id}" reach
// what lies above the route's backend prefix.
func climbs(s string) bool {
	for part := range strings.SplitSeq(s, `\`) {
		if i := strings.IndexAny(part, ";\x00"); i >= 0 {
			part = part[:i] // a C backend may also end the segment at a NUL ("..%00")
		}
		if part == ".." {
			return true
		}
	}
	return false
}
