package e2e

import (
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWAFThroughLoadBalancer runs a web ACL with custom statements and the OWASP CRS on a real
// load balancer listener in front of a real app instance.
func TestWAFThroughLoadBalancer(t *testing.T) {
	portsFree(t, "127.0.0.1:18181", "127.0.0.2:19101")
	dir := t.TempDir()
	cfg, err := filepath.Abs("testdata/waf.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, dir, "run", "-c", cfg)
	const lb = "http://127.0.0.1:18181"
	waitHTTP(t, p, lb+"/items")
	key := currentKey(t, dir)
	withKey := func(h ...string) []string { return append([]string{"X-Origin-Verify", key}, h...) }

	eventually(t, 15*time.Second, func() error { // the target passes its first health checks
		if r, err := tryDo("GET", lb+"/items", "", withKey()...); err != nil || r.status != 200 {
			return err
		}
		return nil
	})
	cases := []struct {
		name, method, target, body string
		headers                    []string
		want                       int
		wantBody                   string
	}{
		{"clean request", "GET", "/items", "", withKey(), 200, "["},
		{"no key, even for an attack", "GET", "/items?id=" + url.QueryEscape("1' OR '1'='1"), "", nil, 403, "Forbidden"},
		{"SQL injection in the query", "GET", "/items?id=" + url.QueryEscape("1' OR '1'='1"), "", withKey(), 403, "Forbidden"},
		{"XSS in a JSON body", "POST", "/items", `{"name":"<script>alert(1)</script>"}`, withKey("Content-Type", "application/json"), 403, "Forbidden"},
		{"scanner gets the custom response", "GET", "/items", "", withKey("User-Agent", "sqlmap/1.7"), 429, "Too Many Requests"},
		{"CRS: path traversal", "GET", "/items?file=" + url.QueryEscape("../../../../etc/passwd"), "", withKey(), 403, "Forbidden"},
		{"CRS: shell command", "GET", "/items?cmd=" + url.QueryEscape(";cat /etc/passwd"), "", withKey(), 403, "Forbidden"},
		{"clean POST reaches the app intact", "POST", "/items", `{"name":"through the waf","note":"` + strings.Repeat("n", 2000) + `"}`, withKey("Content-Type", "application/json"), 201, strings.Repeat("n", 2000)},
	}
	for _, tc := range cases {
		r := do(t, tc.method, lb+tc.target, tc.body, tc.headers...)
		if r.status != tc.want || !strings.Contains(r.body, tc.wantBody) {
			t.Errorf("%s: %d %q, want %d with %q", tc.name, r.status, r.body, tc.want, tc.wantBody)
		}
	}
	if r := do(t, "GET", lb+"/items", "", withKey()...); !strings.Contains(r.body, "through the waf") {
		t.Errorf("the clean POST was not stored: %s", r.body)
	}

	p.stop()
	out := p.output()
	for _, rule := range []string{"block-sqli-query", "block-xss-json", "slow-down-scanners", "owasp-crs"} {
		if !strings.Contains(out, `"`+rule+`"`) {
			t.Errorf("no WAF log line names rule %s", rule)
		}
	}
	if strings.Contains(out, key) {
		t.Error("the origin-verify key appears in the output")
	}
}
