package gateway

import (
	"slices"
	"strings"
	"testing"

	"github.com/rampart-edge/rampart/internal/config"
)

var fuzzTemplates = []string{
	"/", "/items", "/items/{id}", "/items/new", "/items/{id}/tags/{tag}", "/items/{id}/tags/all",
	"/{tenant}/items", "/a/{b}/c", "/a/b/{c}",
}

func fuzzRouter(t testing.TB) *router {
	var routes []config.Route
	for _, p := range fuzzTemplates {
		routes = append(routes, config.Route{Path: p, Methods: []string{"GET"}})
	}
	rt, err := newRouter(routes)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func TestRouterPrecedence(t *testing.T) {
	rt := fuzzRouter(t)
	tests := map[string]string{
		"/":                    "/",
		"/items":               "/items",
		"/items/1":             "/items/{id}",
		"/items/new":           "/items/new",
		"/items/1/tags/x":      "/items/{id}/tags/{tag}",
		"/items/1/tags/all":    "/items/{id}/tags/all",
		"/t1/items":            "/{tenant}/items",
		"/a/b/c":               "/a/b/{c}", // literal at the first differing segment wins
		"/a/x/c":               "/a/{b}/c",
		"/a/b/d":               "/a/b/{c}",
		"/items/1/tags":        "",
		"/items/1/tags/x/more": "",
	}
	for p, want := range tests {
		got := ""
		if res := rt.lookup(p); res != nil {
			got = res.template
		}
		if got != want {
			t.Errorf("lookup(%q) = %q, want %q", p, got, want)
		}
	}
}

func TestCleanPath(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"", "/", true},
		{"/", "/", true},
		{"//", "/", true},
		{"/a/./b/", "/a/b", true},
		{"/a//b", "/a/b", true},
		{"/a/..", "", false},
		{"/../a", "", false},
		{"/a/../b", "", false},
		{"/a/..b/c..", "/a/..b/c..", true},
		{"/a/..;x/b", "", false},
		{"/a/..;", "", false},
		{"/a/..\x00x", "", false},
		{`/a/b\..\c`, "", false},
		{`/a/..\`, "", false},
		{`/a/b;..`, `/a/b;..`, true},
		{`/a/b\c/.;d/...`, `/a/b\c/.;d/...`, true},
		{"a/b", "", false},
		{"*", "", false},
	}
	for _, tt := range tests {
		got, ok := cleanPath(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("cleanPath(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzRouteMatch checks, for arbitrary decoded paths: cleaning never keeps "..", ".", or empty
// segments and is idempotent; a match agrees segment by segment with its template; and the chosen
// resource is the most specific of all that match.
func FuzzRouteMatch(f *testing.F) {
	for _, s := range []string{"/", "/items", "/items/1", "/items/new", "//items/./1/", "/items/../x", "/a/b/c", "/items/1/tags/all", "", "*"} {
		f.Add(s)
	}
	rt := fuzzRouter(f)
	f.Fuzz(func(t *testing.T, p string) {
		clean, ok := cleanPath(p)
		if !ok {
			if !strings.HasPrefix(p, "/") && p != "" {
				return
			}
			if !slices.ContainsFunc(strings.Split(p, "/"), climbs) {
				t.Fatalf("cleanPath(%q) refused a path without a .. segment", p)
			}
			return
		}
		if again, ok := cleanPath(clean); !ok || again != clean {
			t.Fatalf("cleanPath not idempotent: %q → %q → %q", p, clean, again)
		}
		var parts []string
		if clean != "/" {
			parts = strings.Split(clean[1:], "/")
		}
		for _, s := range parts {
			if s == "" || s == "." || s == ".." {
				t.Fatalf("cleanPath(%q) = %q keeps segment %q", p, clean, s)
			}
		}
		res := rt.lookup(clean)
		var matching []*resource
		for _, r := range rt.resources {
			if r.matches(parts) {
				matching = append(matching, r)
			}
		}
		if res == nil {
			if len(matching) > 0 {
				t.Fatalf("lookup(%q) = nil, but %q matches", clean, matching[0].template)
			}
			return
		}
		if len(res.segs) != len(parts) {
			t.Fatalf("lookup(%q) = %q with %d segments", clean, res.template, len(res.segs))
		}
		for i, s := range res.segs {
			if !s.param && s.literal != parts[i] || s.param && parts[i] == "" {
				t.Fatalf("lookup(%q) = %q disagrees at segment %d", clean, res.template, i)
			}
		}
		for _, other := range matching {
			for i := range other.segs {
				if other.segs[i].param != res.segs[i].param {
					if res.segs[i].param {
						t.Fatalf("lookup(%q) = %q, but %q has a literal first", clean, res.template, other.template)
					}
					break
				}
			}
		}
	})
}
