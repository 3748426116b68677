package demoweb

import (
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, srv *httptest.Server, method, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

var gatewayAttr = regexp.MustCompile(`data-gateway="([^"]*)"`)

func TestPageHeadersAndAssets(t *testing.T) {
	srv := httptest.NewServer(New("http://127.0.0.1:8080"))
	defer srv.Close()

	tests := []struct {
		method, path string
		status       int
		contentType  string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8"},
		{"HEAD", "/", 200, "text/html; charset=utf-8"},
		{"GET", "/app.js", 200, "text/javascript; charset=utf-8"},
		{"GET", "/app.css", 200, "text/css; charset=utf-8"},
		{"GET", "/index.html", 404, ""},
		{"GET", "/static/app.js", 404, ""},
		{"POST", "/", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp, body := get(t, srv, tt.method, tt.path)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.contentType != "" && resp.Header.Get("Content-Type") != tt.contentType {
				t.Errorf("Content-Type = %q, want %q", resp.Header.Get("Content-Type"), tt.contentType)
			}
			want := map[string]string{
				"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src http://127.0.0.1:8080; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
				"X-Frame-Options":         "DENY",
			}
			for k, v := range want {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if tt.status == 405 && resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow = %q", resp.Header.Get("Allow"))
			}
			if tt.method == "HEAD" && body != "" {
				t.Errorf("HEAD has a body")
			}
		})
	}

	_, page := get(t, srv, "GET", "/")
	for _, id := range []string{`id="status"`, `id="items"`, `id="create"`, `src="app.js"`, `href="app.css"`} {
		if !strings.Contains(page, id) {
			t.Errorf("page lacks %s", id)
		}
	}
	// Self-contained: no inline script or style, nothing loaded from elsewhere.
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)(src|href)="(https?:)?//`), // a resource from another host
		regexp.MustCompile(`(?i)<script>`),                 // inline script
		regexp.MustCompile(`(?i)<style`),                   // inline style
		regexp.MustCompile(`(?i)\son[a-z]+=`),              // inline event handler
	} {
		if bad.MatchString(page) {
			t.Errorf("page matches %s: not self-contained under the CSP", bad)
		}
	}
	if m := gatewayAttr.FindStringSubmatch(page); m == nil || m[1] != "http://127.0.0.1:8080" {
		t.Errorf("data-gateway = %v", m)
	}
	_, js := get(t, srv, "GET", "/app.js")
	if strings.Contains(js, "innerHTML") || strings.Contains(js, "eval(") {
		t.Errorf("app.js writes HTML or evaluates strings")
	}
}

func TestGatewayURLInjection(t *testing.T) {
	tests := []struct {
		name, gateway string
		wantBase      string // what the page's data-gateway must decode to
		wantConnect   string
	}{
		{"plain", "http://127.0.0.1:8080", "http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"trailing slash", "https://api.example.com/", "https://api.example.com", "https://api.example.com"},
		{"path prefix", "https://api.example.com/prod/", "https://api.example.com/prod", "https://api.example.com"},
		{"quotes and script in path", `http://gw.example/"><script>alert(1)</script>'`, `http://gw.example/"><script>alert(1)</script>'`, "http://gw.example"},
		{"ampersand", "http://gw.example/a&b", "http://gw.example/a&b", "http://gw.example"},
		{"javascript scheme", "javascript:alert(1)", "", "'none'"},
		{"relative", "/items", "", "'none'"},
		{"empty", "", "", "'none'"},
		{"query", "http://gw.example/?x=1", "", "'none'"},
		{"credentials", "http://user:pw@gw.example", "", "'none'"},
		{"header injection in host", "http://gw.example;script-src *", "", "'none'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(New(tt.gateway))
			defer srv.Close()
			resp, page := get(t, srv, "GET", "/")
			if strings.Contains(page, "<script>alert") || strings.Contains(page, "pw@") {
				t.Fatalf("gateway URL broke out of its attribute:\n%s", page)
			}
			m := gatewayAttr.FindStringSubmatch(page)
			if m == nil {
				t.Fatalf("no data-gateway attribute in page")
			}
			if got := html.UnescapeString(m[1]); got != tt.wantBase {
				t.Errorf("data-gateway decodes to %q, want %q", got, tt.wantBase)
			}
			if strings.Count(page, "<script") != 1 {
				t.Errorf("page has %d script elements, want 1", strings.Count(page, "<script"))
			}
			csp := resp.Header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "; connect-src "+tt.wantConnect+"; ") {
				t.Errorf("CSP %q lacks connect-src %s", csp, tt.wantConnect)
			}
			if strings.Count(csp, ";") != 7 {
				t.Errorf("CSP %q has an injected directive", csp)
			}
		})
	}
}
