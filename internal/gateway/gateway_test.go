package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/originverify"
)

// received is what the backend saw of one request.
type received struct {
	Method     string
	RequestURI string
	Host       string
	Header     http.Header
}

// recorder is a backend that records every request it receives.
type recorder struct {
	mu   sync.Mutex
	reqs []received
}

func (b *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.reqs = append(b.reqs, received{r.Method, r.RequestURI, r.Host, r.Header.Clone()})
	b.mu.Unlock()
	switch r.URL.Path {
	case "/slow":
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		return
	case "/cors-echo":
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("access-control-allow-credentials", "true")
		w.Header().Set("Access-Control-Max-Age", "99999")
		w.Header().Set("X-Request-Id", "backend-id")
	}
	w.Header().Set("X-Backend", "yes")
	_, _ = io.WriteString(w, "backend ok")
}

func (b *recorder) all() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.reqs...)
}

// syncBuffer is a log sink shared by server goroutines and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type fixture struct {
	gw      *httptest.Server
	backend *recorder
	bURL    string
	secret  string
	logs    *syncBuffer
}

const allowedOrigin = "http://localhost:3000"

func mustTemplate(t *testing.T, s string) config.Template {
	t.Helper()
	tmpl, err := config.ParseTemplate(s, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// closedURL returns the URL of a port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{backend: &recorder{}, logs: &syncBuffer{}}
	bs := httptest.NewServer(f.backend)
	t.Cleanup(bs.Close)
	f.bURL = bs.URL

	kr, err := originverify.LoadOrCreate("origin-verify", filepath.Join(t.TempDir(), "ov.keys"))
	if err != nil {
		t.Fatal(err)
	}
	f.secret = kr.Current().Secret

	integ := config.Integration{URL: bs.URL}
	cfg := config.Gateway{
		Name: "test",
		CORS: config.CORS{
			Mode:          config.CORSEnforce,
			AllowOrigins:  []string{allowedOrigin},
			AllowMethods:  []string{"GET", "POST", "PUT", "DELETE"},
			AllowHeaders:  []string{"Content-Type", "Authorization"},
			ExposeHeaders: []string{"X-Request-Id"},
			MaxAge:        config.Duration{Duration: 10 * time.Minute},
		},
		RequestHeaders: []config.HeaderMapping{
			{Name: "X-Origin-Verify", Value: mustTemplate(t, "${secret:origin-verify}")},
			{Name: "X-Request-Id", Value: mustTemplate(t, "${context.requestId}")},
			{Name: "x-client-ip", Value: mustTemplate(t, "${context.sourceIp}")},
			{Name: "X-Agent", Value: mustTemplate(t, "ua=${request.header.user-agent}")},
			// Empty unless the client sends X-Auth-User: the client's X-User must still be removed.
			{Name: "X-User", Value: mustTemplate(t, "${request.header.X-Auth-User}")},
		},
		Routes: []config.Route{
			{Path: "/items", Methods: []string{"GET", "POST"}, Integration: integ},
			{Path: "/items/{id}", Methods: []string{"GET", "PUT", "DELETE"}, Integration: integ},
			{Path: "/items/new", Methods: []string{"GET"}, Integration: config.Integration{URL: bs.URL + "/v2/"}},
			{Path: "/items/{id}/tags/{tag}", Methods: []string{"DELETE"}, Integration: integ},
			{Path: "/whoami", Methods: []string{"GET"}, Integration: integ},
			{Path: "/cors-echo", Methods: []string{"GET"}, Integration: integ},
			{Path: "/slow", Methods: []string{"GET"}, Integration: config.Integration{URL: bs.URL, Timeout: config.Duration{Duration: 100 * time.Millisecond}}},
			{Path: "/down", Methods: []string{"GET"}, Integration: config.Integration{URL: closedURL(t)}},
		},
		IntegrationTimeout: config.Duration{Duration: 5 * time.Second},
	}
	logger := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	gw, err := New(cfg, map[string]*originverify.Keyring{"origin-verify": kr}, logger)
	if err != nil {
		t.Fatal(err)
	}
	f.gw = httptest.NewServer(gw)
	t.Cleanup(func() {
		f.gw.Close()
		gw.Close()
	})
	return f
}

type response struct {
	status int
	header http.Header
	body   string
}

func (f *fixture) do(t *testing.T, method, target string, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, f.gw.URL+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(body)}
}

func jsonMessage(t *testing.T, body string) string {
	t.Helper()
	var m struct{ Message string }
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("body %q is not a JSON error: %v", body, err)
	}
	return m.Message
}

func TestRouting(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		method, target string
		status         int
		message        string // JSON error message, when the gateway answers itself
		allow          string
		backendURI     string // what the backend received; "" means it was not reached
	}{
		{"GET", "/items", 200, "", "", "/items"},
		{"POST", "/items", 200, "", "", "/items"},
		{"GET", "/items?b=2&a=1", 200, "", "", "/items?b=2&a=1"},
		{"GET", "/items/42", 200, "", "", "/items/42"},
		{"DELETE", "/items/42", 200, "", "", "/items/42"},
		{"HEAD", "/items/42", 200, "", "", "/items/42"},
		{"GET", "/items/new", 200, "", "", "/v2/items/new"},         // literal beats {id}
		{"PUT", "/items/new", 405, "Method Not Allowed", "GET", ""}, // /items/new is its own resource
		{"GET", "/items/news", 200, "", "", "/items/news"},
		{"DELETE", "/items/7/tags/red", 200, "", "", "/items/7/tags/red"},
		{"GET", "/items/7/tags/red", 405, "Method Not Allowed", "DELETE", ""},
		{"PATCH", "/items/42", 405, "Method Not Allowed", "GET, PUT, DELETE", ""},
		{"DELETE", "/items", 405, "Method Not Allowed", "GET, POST", ""},
		{"OPTIONS", "/items", 405, "Method Not Allowed", "GET, POST", ""},
		{"GET", "/nope", 404, "Not Found", "", ""},
		{"GET", "/", 404, "Not Found", "", ""},
		{"GET", "/items/42/extra", 404, "Not Found", "", ""},
		{"GET", "/Items", 404, "Not Found", "", ""},
		{"GET", "/items/", 200, "", "", "/items"},
		{"GET", "//items/./42", 200, "", "", "/items/42"},
		{"GET", "/items/%34%32", 200, "", "", "/items/42"},
		{"GET", "/items/a%20b", 200, "", "", "/items/a%20b"},
		{"GET", "/items/../whoami", 400, "Bad Request", "", ""},
		{"GET", "/items/%2e%2e/whoami", 400, "Bad Request", "", ""},
		{"GET", "/items/%2E%2E", 400, "Bad Request", "", ""},
		{"GET", "/items/42%2F..%2Fwhoami", 400, "Bad Request", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			before := len(f.backend.all())
			resp := f.do(t, tt.method, tt.target, nil)
			if resp.status != tt.status {
				t.Fatalf("status = %d, want %d (body %q)", resp.status, tt.status, resp.body)
			}
			if tt.message != "" {
				if got := jsonMessage(t, resp.body); got != tt.message {
					t.Errorf("message = %q, want %q", got, tt.message)
				}
			}
			if got := resp.header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
			seen := f.backend.all()[before:]
			switch {
			case tt.backendURI == "" && len(seen) != 0:
				t.Errorf("backend received %d requests (%s), want none", len(seen), seen[0].RequestURI)
			case tt.backendURI != "" && len(seen) != 1:
				t.Errorf("backend received %d requests, want 1", len(seen))
			case tt.backendURI != "":
				if seen[0].RequestURI != tt.backendURI || seen[0].Method != tt.method {
					t.Errorf("backend got %s %s, want %s %s", seen[0].Method, seen[0].RequestURI, tt.method, tt.backendURI)
				}
			}
		})
	}
}

func TestHeaderMapping(t *testing.T) {
	f := newFixture(t)
	resp := f.do(t, "GET", "/whoami", map[string]string{
		"X-Origin-Verify": "client-forged",
		"X-Request-Id":    "client-forged-id",
		"X-Client-Ip":     "6.6.6.6",
		"X-Forwarded-For": "6.6.6.6",
		"Forwarded":       "for=6.6.6.6",
		"User-Agent":      "test-agent/1",
		"X-Other":         "kept",
		"X-User":          "forged-user",
	})
	if resp.status != 200 {
		t.Fatalf("status = %d, body %q", resp.status, resp.body)
	}
	seen := f.backend.all()
	if len(seen) != 1 {
		t.Fatalf("backend received %d requests, want 1", len(seen))
	}
	got := seen[0]
	id := resp.header.Get("X-Request-Id")
	bHost := strings.TrimPrefix(f.bURL, "http://")
	for name, want := range map[string][]string{
		"X-Origin-Verify": {f.secret},
		"X-Request-Id":    {id},
		"X-Client-Ip":     {"127.0.0.1"},
		"X-Agent":         {"ua=test-agent/1"},
		"X-Forwarded-For": {"127.0.0.1"},
		"Forwarded":       nil,
		"X-User":          nil,
		"X-Other":         {"kept"},
	} {
		if g := got.Header.Values(name); strings.Join(g, "|") != strings.Join(want, "|") {
			t.Errorf("backend %s = %q, want %q", name, g, want)
		}
	}
	if got.Host != bHost {
		t.Errorf("backend Host = %q, want the integration's %q", got.Host, bHost)
	}
	if strings.Contains(resp.body, f.secret) || strings.Contains(f.logs.String(), f.secret) {
		t.Error("the secret leaked into the response or the logs")
	}
}

// TestConnectionHeaderCannotStripInjected sends, over a raw socket, a client X-Origin-Verify in two
// spellings and names the header in Connection. The backend must get the injected value only.
func TestConnectionHeaderCannotStripInjected(t *testing.T) {
	f := newFixture(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.gw.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw := "GET /whoami HTTP/1.1\r\n" +
		"Host: gateway.test\r\n" +
		"Connection: X-Origin-Verify, x-request-id\r\n" +
		"X-Origin-Verify: client-1\r\n" +
		"x-origin-verify: client-2\r\n" +
		"X-ORIGIN-VERIFY: client-3\r\n" +
		"\r\n"
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	seen := f.backend.all()
	if len(seen) != 1 {
		t.Fatalf("backend received %d requests, want 1", len(seen))
	}
	var values []string
	for k, v := range seen[0].Header {
		if strings.EqualFold(k, "X-Origin-Verify") {
			values = append(values, v...)
		}
	}
	if len(values) != 1 || values[0] != f.secret {
		// Print only whether a client value got through, never the secret.
		t.Errorf("backend got %d X-Origin-Verify values (client values %v), want exactly the keyring's current secret",
			len(values), slices.ContainsFunc(values, func(v string) bool { return strings.HasPrefix(v, "client-") }))
	}
	if got := seen[0].Header.Get("X-Request-Id"); got == "" || got != resp.Header.Get("X-Request-Id") {
		t.Errorf("backend X-Request-Id = %q, want the gateway's %q", got, resp.Header.Get("X-Request-Id"))
	}
}

func TestRequestID(t *testing.T) {
	f := newFixture(t)
	ids := map[string]bool{}
	for _, target := range []string{"/items", "/items", "/nope"} {
		resp := f.do(t, "GET", target, map[string]string{"X-Request-Id": "forged"})
		id := resp.header.Get("X-Request-Id")
		if len(resp.header.Values("X-Request-Id")) != 1 || id == "" || id == "forged" || ids[id] {
			t.Fatalf("%s: X-Request-Id = %q, want one fresh id (seen %v)", target, resp.header.Values("X-Request-Id"), ids)
		}
		ids[id] = true
	}
}

func TestIntegrationErrors(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		method, target string
		status         int
		message        string
	}{
		{"GET", "/down", 502, "Bad Gateway"},
		{"GET", "/slow", 504, "Endpoint request timed out"},
		{"GET", "/nope", 404, "Not Found"},
		{"PATCH", "/items", 405, "Method Not Allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			start := time.Now()
			resp := f.do(t, tt.method, tt.target, map[string]string{"Origin": allowedOrigin})
			if resp.status != tt.status {
				t.Fatalf("status = %d, want %d (body %q)", resp.status, tt.status, resp.body)
			}
			if got := jsonMessage(t, resp.body); got != tt.message {
				t.Errorf("message = %q, want %q", got, tt.message)
			}
			if got := resp.header.Get("Access-Control-Allow-Origin"); got != allowedOrigin {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, allowedOrigin)
			}
			if got := resp.header.Get("Access-Control-Expose-Headers"); got != "X-Request-Id" {
				t.Errorf("Access-Control-Expose-Headers = %q", got)
			}
			if resp.header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id on the error")
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v; the route timeout is 100ms", d)
			}
		})
	}
}

func TestCORS(t *testing.T) {
	f := newFixture(t)
	preflight := func(origin, method, headers string) map[string]string {
		return map[string]string{"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}
	}
	tests := []struct {
		name     string
		method   string
		target   string
		header   map[string]string
		status   int
		allowOK  string // Access-Control-Allow-Origin, "" for absent
		reaching bool
	}{
		{"disallowed origin", "POST", "/items", map[string]string{"Origin": "https://evil.test"}, 403, "", false},
		{"disallowed origin on unknown path", "GET", "/nope", map[string]string{"Origin": "https://evil.test"}, 403, "", false},
		{"allowed preflight", "OPTIONS", "/items/1", preflight(allowedOrigin, "DELETE", "authorization"), 204, allowedOrigin, false},
		{"disallowed preflight", "OPTIONS", "/items/1", preflight("https://evil.test", "DELETE", ""), 403, "", false},
		{"preflight with forbidden header", "OPTIONS", "/items/1", preflight(allowedOrigin, "GET", "x-origin-verify"), 403, "", false},
		{"allowed actual", "GET", "/items/1", map[string]string{"Origin": allowedOrigin}, 200, allowedOrigin, true},
		{"no origin", "GET", "/items/1", nil, 200, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.backend.all())
			resp := f.do(t, tt.method, tt.target, tt.header)
			if resp.status != tt.status {
				t.Fatalf("status = %d, want %d (body %q)", resp.status, tt.status, resp.body)
			}
			if got := resp.header.Get("Access-Control-Allow-Origin"); got != tt.allowOK {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tt.allowOK)
			}
			if reached := len(f.backend.all()) > before; reached != tt.reaching {
				t.Errorf("backend reached = %v, want %v", reached, tt.reaching)
			}
		})
	}

	// The backend's own CORS headers and request id never reach the client.
	for _, origin := range []string{allowedOrigin, ""} {
		h := map[string]string{}
		if origin != "" {
			h["Origin"] = origin
		}
		resp := f.do(t, "GET", "/cors-echo", h)
		if resp.status != 200 || resp.header.Get("X-Backend") != "yes" {
			t.Fatalf("status = %d, X-Backend = %q", resp.status, resp.header.Get("X-Backend"))
		}
		if got := resp.header.Values("Access-Control-Allow-Origin"); strings.Join(got, "|") != origin {
			t.Errorf("origin %q: Access-Control-Allow-Origin = %q, want only the gateway's", origin, got)
		}
		for _, name := range []string{"Access-Control-Allow-Credentials", "Access-Control-Max-Age"} {
			if got := resp.header.Values(name); len(got) != 0 {
				t.Errorf("origin %q: backend's %s = %q leaked", origin, name, got)
			}
		}
		if got := resp.header.Values("X-Request-Id"); len(got) != 1 || got[0] == "backend-id" {
			t.Errorf("X-Request-Id = %q, want the gateway's only", got)
		}
	}
}

func TestAccessLog(t *testing.T) {
	f := newFixture(t)
	resp := f.do(t, "GET", "/items/9?token=query-secret", map[string]string{"Authorization": "Bearer header-secret"})
	if resp.status != 200 {
		t.Fatalf("status = %d", resp.status)
	}
	id := resp.header.Get("X-Request-Id")
	// The line is written after the response is sent, so poll for it.
	var found map[string]any
	waitFor(t, func() bool {
		for _, line := range strings.Split(f.logs.String(), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) == nil && e["msg"] == "request" && e["request_id"] == id {
				found = e
				return true
			}
		}
		return false
	})
	for k, want := range map[string]any{"method": "GET", "path": "/items/9", "status": float64(200), "route": "/items/{id}", "gateway": "test"} {
		if found[k] != want {
			t.Errorf("log %s = %v, want %v", k, found[k], want)
		}
	}
	if _, ok := found["duration"]; !ok {
		t.Error("log has no duration")
	}
	for _, s := range []string{"header-secret", "query-secret", f.secret} {
		if strings.Contains(f.logs.String(), s) {
			t.Errorf("logs contain %q", s)
		}
	}
}

func TestNewRejects(t *testing.T) {
	ok := config.Route{Path: "/a", Methods: []string{"GET"}, Integration: config.Integration{URL: "http://127.0.0.1:1"}}
	tests := map[string]config.Gateway{
		"missing keyring": {Routes: []config.Route{ok}, RequestHeaders: []config.HeaderMapping{{Name: "X-V", Value: mustTemplate(t, "${secret:nope}")}}},
		"bad template":    {Routes: []config.Route{{Path: "/a/{id", Methods: []string{"GET"}, Integration: ok.Integration}}},
		"partial param":   {Routes: []config.Route{{Path: "/a/x{id}", Methods: []string{"GET"}, Integration: ok.Integration}}},
		"dup method":      {Routes: []config.Route{ok, {Path: "/a", Methods: []string{"get"}, Integration: ok.Integration}}},
		"dup shape":       {Routes: []config.Route{{Path: "/a/{x}", Methods: []string{"GET"}, Integration: ok.Integration}, {Path: "/a/{y}", Methods: []string{"GET"}, Integration: ok.Integration}}},
		"bad url":         {Routes: []config.Route{{Path: "/a", Methods: []string{"GET"}, Integration: config.Integration{URL: "ftp://x"}}}},
		"dotdot template": {Routes: []config.Route{{Path: "/a/../b", Methods: []string{"GET"}, Integration: ok.Integration}}},
		"bad cors":        {Routes: []config.Route{ok}, CORS: config.CORS{Mode: "nope"}},
	}
	for name, cfg := range tests {
		if _, err := New(cfg, nil, nil); err == nil {
			t.Errorf("%s: New succeeded, want error", name)
		}
	}
}

// waitFor polls cond until it holds, failing the test after two seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 2s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMappedHeaderUnderscoreSpelling sends, over a raw socket, client copies of mapped headers
// spelled with "_" for "-" (which CGI, WSGI, Rack and PHP backends read as the same HTTP_X_USER).
// The backend must get only the gateway's values, and unrelated underscore headers intact.
func TestMappedHeaderUnderscoreSpelling(t *testing.T) {
	f := newFixture(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.gw.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw := "GET /whoami HTTP/1.1\r\n" +
		"Host: gateway.test\r\n" +
		"X_User: admin\r\n" +
		"x_user: admin2\r\n" +
		"X-user_: not-the-same\r\n" +
		"X_Origin_Verify: client-1\r\n" +
		"x-origin_verify: client-2\r\n" +
		"X_Other_Thing: kept\r\n" +
		"\r\n"
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	seen := f.backend.all()
	if len(seen) != 1 {
		t.Fatalf("backend received %d requests, want 1", len(seen))
	}
	cgi := func(k string) string { return strings.ToUpper(strings.ReplaceAll(k, "-", "_")) }
	var users, verify []string
	for k, v := range seen[0].Header {
		switch cgi(k) {
		case "X_USER":
			users = append(users, v...)
		case "X_ORIGIN_VERIFY":
			verify = append(verify, v...)
		}
	}
	if len(users) != 0 {
		t.Errorf("backend got client X-User values %q; X-User is mapped (empty here), so none may pass", users)
	}
	if len(verify) != 1 || verify[0] != f.secret {
		t.Errorf("backend got %d X-Origin-Verify spellings (a client value among them: %v), want only the keyring's secret",
			len(verify), slices.ContainsFunc(verify, func(v string) bool { return strings.HasPrefix(v, "client-") }))
	}
	if got := seen[0].Header.Get("X_other_thing"); got != "kept" {
		t.Errorf("unrelated X_Other_Thing = %q, want kept", got)
	}
	if got := seen[0].Header.Get("X-User_"); got != "not-the-same" {
		t.Errorf("X-User_ (another name) = %q, want it kept", got)
	}
}
