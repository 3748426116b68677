package cors

import (
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	patterns := []string{
		"https://app.example.com",
		"http://localhost:3000",
		"https://*.example.org",
		"http://[::1]:8080",
		"https://API.Example.NET:443",
		"http://127.0.0.1:3000",
	}
	m, err := NewMatcher(patterns)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		origin string
		want   bool
	}{
		{"https://app.example.com", true},
		{"https://APP.example.COM", true},
		{"HTTPS://app.example.com", true},
		{"https://app.example.com:443", true},
		{"https://app.example.com:8443", false},
		{"http://app.example.com", false},
		{"https://app.example.com/", false},
		{"https://app.example.com/path", false},
		{"https://app.example.com?x=1", false},
		{"https://app.example.com#f", false},
		{"https://user@app.example.com", false},
		{"https://user:pw@app.example.com", false},
		{" https://app.example.com", false},
		{"https://app.example.com ", false},
		{"https://app.example.com.", false},
		{"https://app.example.com.evil.com", false},
		{"https://evilapp.example.com", false},
		{"https://app.example.com:", false},
		{"https://app.example.com:0443", false},
		{"https://app%2eexample.com", false},
		{"null", false},
		{"", false},
		{"app.example.com", false},
		{"//app.example.com", false},

		{"http://localhost:3000", true},
		{"http://localhost", false},
		{"http://localhost:3001", false},
		{"https://localhost:3000", false},

		// label-aware wildcard
		{"https://a.example.org", true},
		{"https://a.b.example.org", true},
		{"https://A.Example.Org", true},
		{"https://a.example.org:443", true},
		{"https://example.org", false},
		{"https://evilexample.org", false},
		{"https://.example.org", false},
		{"https://a..example.org", false},
		{"http://a.example.org", false},
		{"https://a.example.org:8443", false},
		{"https://a.example.org.evil.com", false},
		{"https://a.example.org/x", false},

		{"http://[::1]:8080", true},
		{"http://[0:0:0:0:0:0:0:1]:8080", true},
		{"http://[::1]", false},
		{"http://[::1%25eth0]:8080", false},

		{"https://api.example.net", true},

		{"http://127.0.0.1:3000", true},
		{"http://127.000.0.1:3000", false},
		{"http://127.0.0.1.:3000", false},
		{"http://999.0.0.1:3000", false},
	}
	for _, tt := range tests {
		if got := m.Match(tt.origin); got != tt.want {
			t.Errorf("Match(%q) = %v, want %v", tt.origin, got, tt.want)
		}
	}
}

func TestMatchAny(t *testing.T) {
	m, err := NewMatcher([]string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{"https://anything.example", "http://10.0.0.1:81", "chrome-extension://abcdef"} {
		if !m.Match(o) {
			t.Errorf("* does not match %q", o)
		}
	}
	for _, o := range []string{"null", "", "https://x/", "https://u@x", "not an origin"} {
		if m.Match(o) {
			t.Errorf("* matches malformed %q", o)
		}
	}
}

func TestNewMatcherRejects(t *testing.T) {
	for _, p := range []string{
		"https://example.com/",
		"https://example.com/path",
		"example.com",
		"https://*example.com",
		"https://a.*.example.com",
		"https://*.127.0.0.1",
		"https://*.[::1]",
		"*.example.com",
		"https://*",
		"null",
		"",
	} {
		if _, err := NewMatcher([]string{p}); err == nil {
			t.Errorf("NewMatcher(%q) succeeded, want error", p)
		}
	}
}

// FuzzMatch checks the matcher's invariants on arbitrary Origin values: a match implies a
// well-formed origin with the allowed scheme and port, and a host that is the exact allowed one or
// has at least one label in front of the wildcard's domain.
func FuzzMatch(f *testing.F) {
	for _, s := range []string{
		"https://app.example.com", "https://a.example.org", "https://example.org", "http://localhost:3000",
		"https://evilexample.org", "https://a.example.org:443", "null", "", "https://[::1]:443",
		"https://a.example.org/", "https://u@a.example.org", "HTTPS://A.EXAMPLE.ORG",
	} {
		f.Add(s)
	}
	m, err := NewMatcher([]string{"https://app.example.com", "https://*.example.org", "http://localhost:3000"})
	if err != nil {
		f.Fatal(err)
	}
	anyM, err := NewMatcher([]string{"*"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, parsed := parseOrigin(s)
		if anyM.Match(s) != parsed {
			t.Fatalf("* match(%q) = %v, but parse ok = %v", s, !parsed, parsed)
		}
		if !m.Match(s) {
			return
		}
		if !parsed {
			t.Fatalf("%q matched but does not parse", s)
		}
		if rest := s[strings.Index(s, "://")+3:]; strings.ContainsAny(rest, "/?#@ \t\r\n%\\") {
			t.Fatalf("%q matched with forbidden characters after the scheme", s)
		}
		switch {
		case o.scheme == "https" && o.port == "443" && o.host == "app.example.com":
		case o.scheme == "http" && o.port == "3000" && o.host == "localhost":
		case o.scheme == "https" && o.port == "443" && strings.HasSuffix(o.host, ".example.org") &&
			len(o.host) > len(".example.org") && !strings.HasPrefix(o.host, "."):
		default:
			t.Fatalf("%q matched as %+v, which no pattern allows", s, o)
		}
		// Matching is insensitive to the case of scheme and host.
		if !m.Match(strings.ToUpper(s)) || !m.Match(strings.ToLower(s)) {
			t.Fatalf("%q matched but a case variant does not", s)
		}
	})
}
