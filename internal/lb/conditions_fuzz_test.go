package lb

import (
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"testing"

	"github.com/rampart-edge/rampart/internal/config"
)

// FuzzConditions builds listener rule conditions from an arbitrary pattern and matches them
// against an arbitrary request. Matching must not panic, and each kind of condition must agree
// with a reference written independently: path case-sensitively, host and header values
// case-insensitively (the host without its port), methods exactly, source_ip on the TCP peer.
func FuzzConditions(f *testing.F) {
	f.Add("/items/*", "/items/1", "api.example.com", "*.EXAMPLE.com:8443", "GET", "X-Env", "Prod*", "PRODUCTION", "v=1", "127.0.0.1:5000", "127.0.0.0/8")
	f.Add("", "", "", "", "", "", "", "", "", "", "")
	f.Add("?", "é", "[::1]", "[::1]:80", "POST", "x-a", "*", "", "%zz=1&a=%41", "[::ffff:10.0.0.1]:1", "10.0.0.0/8")
	f.Add("*a*a*a*b", strings.Repeat("a", 200), "a", "A", "get", "Host", "x", "x", ";;", "nonsense", "::/0")
	f.Fuzz(func(t *testing.T, pathPat, path, hostPat, host, method, hname, hpat, hval, query, remote, cidr string) {
		r := &http.Request{Method: method, URL: &url.URL{Path: path, RawQuery: query}, Host: host, RemoteAddr: remote,
			Header: http.Header{textproto.CanonicalMIMEHeaderKey(hname): {hval}}}
		check := func(name string, c config.Conditions, want bool) {
			t.Helper()
			cs, err := newConditions(c)
			if err != nil {
				return // config validation refuses it before it gets here
			}
			if got := cs.match(r); got != want {
				t.Fatalf("%s condition %+v on %s %q host %q header %q=%q from %q: match %v, want %v", name, c, method, path, host, hname, hval, remote, got, want)
			}
		}
		check("path", config.Conditions{Path: []string{pathPat}}, wildcardReference(pathPat, path))
		check("host", config.Conditions{Host: []string{hostPat}}, wildcardReference(strings.ToLower(hostPat), strings.ToLower(hostWithoutPort(host))))
		check("method", config.Conditions{Method: []string{"GET"}}, method == "GET")
		if hname != "" {
			check("header", config.Conditions{Header: map[string][]string{hname: {hpat}}}, wildcardReference(strings.ToLower(hpat), strings.ToLower(hval)))
		}
		if _, ipnet, err := net.ParseCIDR(cidr); err == nil {
			want := false
			if h, _, err := net.SplitHostPort(remote); err == nil {
				if ip := net.ParseIP(h); ip != nil && !strings.Contains(h, "%") {
					want = ipnet.Contains(ip)
				}
			}
			check("source_ip", config.Conditions{SourceIP: []string{cidr}}, want)
		}
		// Every condition at once: the AND of the parts, and nothing panics on the query.
		cs, err := newConditions(config.Conditions{Path: []string{pathPat}, Query: map[string]string{"*": "*"}})
		if err == nil {
			_ = cs.match(r)
		}
	})
}
