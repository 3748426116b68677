package waf

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rampart-edge/rampart/internal/ratelimit/redistest"
)

// rateServer serves acl.Wrap(200 "ok") on a real loopback listener.
func rateServer(t *testing.T, acl *WebACL) string {
	t.Helper()
	srv := httptest.NewServer(acl.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})))
	t.Cleanup(srv.Close)
	return srv.URL
}

// clientFrom returns a client whose connections come from the loopback address local, so that
// a test can be several source IPs.
func clientFrom(t *testing.T, local string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// get sends GET url+path with the header pairs and returns the status.
func get(t *testing.T, c *http.Client, url, path string, headers ...string) int {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	resp, err := c.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// statuses sends n requests and returns their statuses.
func statuses(t *testing.T, n int, send func() int) []int {
	t.Helper()
	var out []int
	for range n {
		out = append(out, send())
	}
	return out
}

func wantStatuses(t *testing.T, what string, got []int, want ...int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: %v, want %v", what, got, want)
		}
	}
}

func TestRateBasedOverSocket(t *testing.T) {
	c1, c2 := clientFrom(t, "127.0.0.1"), clientFrom(t, "127.0.0.2")
	t.Run("source IP", func(t *testing.T) {
		var logs bytes.Buffer
		acl := aclFromYAML(t, ruleYAML(`{rate_based: {limit: 3, evaluation_window_sec: 60}}`), slog.New(slog.NewJSONHandler(&logs, nil)))
		url := rateServer(t, acl)
		wantStatuses(t, "127.0.0.1", statuses(t, 5, func() int { return get(t, c1, url, "/") }), 200, 200, 200, 403, 403)
		// Another client has a bucket of its own.
		wantStatuses(t, "127.0.0.2", statuses(t, 4, func() int { return get(t, c2, url, "/") }), 200, 200, 200, 403)
		if !strings.Contains(logs.String(), `"rule":"r","action":"block"`) || !strings.Contains(logs.String(), `"field":"source_ip","value":"127.0.0.2"`) {
			t.Errorf("WAF log lacks the rate-based match:\n%s", logs.String())
		}
	})
	t.Run("forwarded IP", func(t *testing.T) {
		acl := aclFromYAML(t, ruleYAML(`{rate_based: {limit: 2, evaluation_window_sec: 60, aggregate_key_type: FORWARDED_IP, forwarded_ip: {header: X-Forwarded-For, position: LAST, fallback_behavior: MATCH}}}`), nil)
		url := rateServer(t, acl)
		send := func(xff string) func() int {
			return func() int { return get(t, c1, url, "/", "X-Forwarded-For", xff) }
		}
		// LAST: the first address is the client's to choose and does not change the key.
		wantStatuses(t, "203.0.113.9", []int{send("1.1.1.1, 203.0.113.9")(), send("2.2.2.2, 203.0.113.9")(), send("203.0.113.9")()}, 200, 200, 403)
		wantStatuses(t, "203.0.113.10", statuses(t, 3, send("203.0.113.10")), 200, 200, 403)
		// fallback_behavior MATCH: no (valid) address matches at once.
		wantStatuses(t, "absent", statuses(t, 1, func() int { return get(t, c1, url, "/") }), 403)
		wantStatuses(t, "invalid", statuses(t, 1, send("unknown")), 403)
	})
	t.Run("header", func(t *testing.T) {
		acl := aclFromYAML(t, ruleYAML(`{rate_based: {limit: 2, evaluation_window_sec: 120, aggregate_key_type: HEADER, header: X-Tenant}}`), nil)
		url := rateServer(t, acl)
		wantStatuses(t, "tenant a", statuses(t, 3, func() int { return get(t, c1, url, "/", "X-Tenant", "a") }), 200, 200, 403)
		wantStatuses(t, "tenant b from another IP", statuses(t, 3, func() int { return get(t, c2, url, "/", "X-Tenant", "b") }), 200, 200, 403)
		long := strings.Repeat("t", 500) // hashed in the store, still its own key
		wantStatuses(t, "long tenant", statuses(t, 3, func() int { return get(t, c1, url, "/", "X-Tenant", long) }), 200, 200, 403)
		// No header: no key, not counted, never limited.
		wantStatuses(t, "no tenant", statuses(t, 4, func() int { return get(t, c1, url, "/") }), 200, 200, 200, 200)
	})
	t.Run("constant and scope-down", func(t *testing.T) {
		acl := aclFromYAML(t, `name: t
custom_responses:
  slow-down: {status: 429, headers: {Retry-After: "60"}}
rules:
  - name: api-budget
    priority: 1
    action: block
    custom_response: slow-down
    statement:
      rate_based:
        limit: 3
        evaluation_window_sec: 600
        aggregate_key_type: CONSTANT
        scope_down_statement: {byte_match: {field_to_match: {uri_path: {}}, positional_constraint: STARTS_WITH, search_string: /api/}}
`, nil)
		url := rateServer(t, acl)
		got := []int{get(t, c1, url, "/api/a"), get(t, c2, url, "/api/b"), get(t, c1, url, "/api/c"), get(t, c2, url, "/api/d")}
		wantStatuses(t, "/api/ from two IPs", got, 200, 200, 200, 429)
		wantStatuses(t, "out of scope", statuses(t, 5, func() int { return get(t, c1, url, "/home") }), 200, 200, 200, 200, 200)
	})
}

// rateACLYAML limits every source IP to limit requests per minute, in the store.
func rateACLYAML(store, onError string, limit int) string {
	return "name: shared-limit\nrate_limit_store: \"" + store + "\"\non_store_error: " + onError +
		"\nrules:\n  - {name: per-ip, priority: 1, action: block, statement: {rate_based: {limit: " + itoa(limit) + ", evaluation_window_sec: 60}}}\n"
}

// TestRateBasedRedisShared runs two WAF instances (two replicas: separate ACLs, listeners and
// Redis clients) against one redis-server: together they admit the limit once, not twice.
func TestRateBasedRedisShared(t *testing.T) {
	rs := redistest.Start(t)
	a := aclFromYAML(t, rateACLYAML(rs.URL(), "deny", 4), nil)
	b := aclFromYAML(t, rateACLYAML(rs.URL(), "deny", 4), nil)
	urlA, urlB := rateServer(t, a), rateServer(t, b)
	c := clientFrom(t, "127.0.0.1")
	var got []int
	for range 3 {
		got = append(got, get(t, c, urlA, "/"), get(t, c, urlB, "/"))
	}
	wantStatuses(t, "alternating replicas", got, 200, 200, 200, 200, 403, 403)
	// Another source IP is still free on both.
	c2 := clientFrom(t, "127.0.0.2")
	wantStatuses(t, "127.0.0.2", []int{get(t, c2, urlB, "/"), get(t, c2, urlA, "/")}, 200, 200)
}

func TestRateBasedStoreError(t *testing.T) {
	rs := redistest.Start(t)
	url := rs.URL()
	rs.Stop() // Redis is down from the start
	c := clientFrom(t, "127.0.0.1")
	var logs bytes.Buffer
	deny := rateServer(t, aclFromYAML(t, rateACLYAML(url, "deny", 1), slog.New(slog.NewJSONHandler(&logs, nil))))
	allow := rateServer(t, aclFromYAML(t, rateACLYAML(url, "allow", 1), nil))
	wantStatuses(t, "on_store_error: deny", statuses(t, 2, func() int { return get(t, c, deny, "/") }), 503, 503)
	wantStatuses(t, "on_store_error: allow", statuses(t, 3, func() int { return get(t, c, allow, "/") }), 200, 200, 200)
	if n := strings.Count(logs.String(), "WAF rate-limit store unreachable"); n != 1 {
		t.Errorf("%d store warnings for 2 requests, want 1 (rate-limited):\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), url) {
		t.Errorf("log holds the store URL:\n%s", logs.String())
	}
	// Redis is back: the limit applies again.
	rs.Restart()
	wantStatuses(t, "after restart", statuses(t, 2, func() int { return get(t, c, deny, "/") }), 200, 403)
}
