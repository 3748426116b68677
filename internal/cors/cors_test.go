package cors

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/proxy"
)

func baseConfig(mode string) config.CORS {
	return config.CORS{
		Mode:          mode,
		AllowOrigins:  []string{"http://localhost:3000", "https://*.example.com"},
		AllowMethods:  []string{"GET", "POST", "PUT", "DELETE"},
		AllowHeaders:  []string{"Content-Type", "Authorization"},
		ExposeHeaders: []string{"X-Request-Id"},
		MaxAge:        config.Duration{Duration: 10 * time.Minute},
	}
}

// syncBuffer is a log sink shared by the server's goroutines and the test.
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

type testServer struct {
	url  string
	hits atomic.Int64
	logs *syncBuffer
}

// newTestServer serves policy in front of a counting backend. The backend answers 404 JSON for
// /missing (a downstream error) and 200 otherwise. An outer handler sets "Vary: Accept-Encoding"
// first, to prove the policy adds to Vary instead of replacing it.
func newTestServer(t *testing.T, cfg config.CORS) *testServer {
	t.Helper()
	ts := &testServer{logs: &syncBuffer{}}
	logger := slog.New(slog.NewJSONHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.hits.Add(1)
		if r.URL.Path == "/missing" {
			proxy.WriteJSONError(w, http.StatusNotFound, "Not Found")
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	wrapped := p.Wrap(backend)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Accept-Encoding")
		wrapped.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	ts.url = srv.URL
	return ts
}

const absent = "<absent>"

func TestPolicy(t *testing.T) {
	credentials := baseConfig(config.CORSEnforce)
	credentials.AllowCredentials = true
	star := baseConfig(config.CORSEnforce)
	star.AllowOrigins = []string{"*"}
	requireOrigin := baseConfig(config.CORSEnforce)
	requireOrigin.RequireOrigin = true
	anyHeader := baseConfig(config.CORSEnforce)
	anyHeader.AllowHeaders = []string{"*"}

	configs := map[string]config.CORS{
		"enforce":        baseConfig(config.CORSEnforce),
		"default":        baseConfig(""),
		"standard":       baseConfig(config.CORSStandard),
		"shadow":         baseConfig(config.CORSShadow),
		"credentials":    credentials,
		"star":           star,
		"require-origin": requireOrigin,
		"any-header":     anyHeader,
	}
	preflight := func(origin, method, headers string) map[string]string {
		h := map[string]string{"Origin": origin, "Access-Control-Request-Method": method}
		if headers != "" {
			h["Access-Control-Request-Headers"] = headers
		}
		return h
	}
	allowedPreflight := map[string]string{
		"Access-Control-Allow-Origin":      "http://localhost:3000",
		"Access-Control-Allow-Methods":     "GET, POST, PUT, DELETE",
		"Access-Control-Allow-Headers":     "Content-Type, Authorization",
		"Access-Control-Max-Age":           "600",
		"Access-Control-Allow-Credentials": absent,
	}
	noCORS := map[string]string{
		"Access-Control-Allow-Origin":      absent,
		"Access-Control-Allow-Methods":     absent,
		"Access-Control-Allow-Headers":     absent,
		"Access-Control-Expose-Headers":    absent,
		"Access-Control-Allow-Credentials": absent,
	}
	preflightVary := []string{"Accept-Encoding", "Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"}
	actualVary := []string{"Accept-Encoding", "Origin"}

	tests := []struct {
		name    string
		config  string
		method  string
		path    string
		header  map[string]string
		status  int
		reached bool
		message string // JSON message of an error body
		headers map[string]string
		vary    []string
	}{
		// enforce: preflights
		{name: "preflight allowed", config: "enforce", method: "OPTIONS", path: "/items",
			header: preflight("http://localhost:3000", "PUT", "content-type, authorization"),
			status: 204, headers: allowedPreflight, vary: preflightVary},
		{name: "preflight allowed default mode", config: "default", method: "OPTIONS", path: "/items",
			header: preflight("http://localhost:3000", "PUT", "Content-Type"),
			status: 204, headers: allowedPreflight, vary: preflightVary},
		{name: "preflight wildcard subdomain", config: "enforce", method: "OPTIONS", path: "/items",
			header: preflight("https://a.b.example.com", "GET", ""),
			status: 204, headers: map[string]string{"Access-Control-Allow-Origin": "https://a.b.example.com"}, vary: preflightVary},
		{name: "preflight safelisted headers need no listing", config: "enforce", method: "OPTIONS", path: "/items",
			header: preflight("http://localhost:3000", "GET", "Accept, accept-language,Content-Language"),
			status: 204, headers: allowedPreflight},
		{name: "preflight origin refused", config: "enforce", method: "OPTIONS", path: "/items",
			header: preflight("https://evil.test", "GET", ""),
			status: 403, message: reasonOrigin, headers: noCORS, vary: preflightVary},
		{name: "preflight bare domain of wildcard refused", config: "enforce", method: "OPTIONS", path: "/items",
			header: preflight("https://example.com", "GET", ""),
			status: 403, message: reasonOrigin, headers: noCORS},
		{name: "preflight method refused", config: "enforce", method: "OPTIONS", path: "/items",
			header: preflight("http://localhost:3000", "PATCH", ""),
			status: 403, message: reasonMethod, headers: noCORS},
		{name: "preflight header refused", config: "enforce", method: "OPTIONS", path: "/items",
			header: preflight("http://localhost:3000", "GET", "content-type, x-origin-verify"),
			status: 403, message: reasonHeader, headers: noCORS},
		{name: "preflight null origin refused", config: "enforce", method: "OPTIONS", path: "/items",
			header: preflight("null", "GET", ""),
			status: 403, message: reasonOrigin, headers: noCORS},
		{name: "preflight with credentials", config: "credentials", method: "OPTIONS", path: "/items",
			header: preflight("http://localhost:3000", "POST", ""),
			status: 204, headers: map[string]string{"Access-Control-Allow-Origin": "http://localhost:3000", "Access-Control-Allow-Credentials": "true"}},
		{name: "preflight star", config: "star", method: "OPTIONS", path: "/items",
			header: preflight("https://whoever.test", "POST", ""),
			status: 204, headers: map[string]string{"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Credentials": absent}},
		{name: "preflight any header echoes", config: "any-header", method: "OPTIONS", path: "/items",
			header: preflight("http://localhost:3000", "POST", "X-Custom,  x-other"),
			status: 204, headers: map[string]string{"Access-Control-Allow-Headers": "x-custom, x-other"}},

		// enforce: actual requests
		{name: "actual allowed", config: "enforce", method: "GET", path: "/items",
			header: map[string]string{"Origin": "http://localhost:3000"}, status: 200, reached: true,
			headers: map[string]string{"Access-Control-Allow-Origin": "http://localhost:3000", "Access-Control-Expose-Headers": "X-Request-Id", "Access-Control-Allow-Methods": absent},
			vary:    actualVary},
		{name: "actual allowed keeps headers on downstream 404", config: "enforce", method: "GET", path: "/missing",
			header: map[string]string{"Origin": "https://x.example.com"}, status: 404, reached: true, message: "Not Found",
			headers: map[string]string{"Access-Control-Allow-Origin": "https://x.example.com", "Access-Control-Expose-Headers": "X-Request-Id"}},
		{name: "actual origin refused", config: "enforce", method: "POST", path: "/items",
			header: map[string]string{"Origin": "https://evil.test"}, status: 403, message: reasonOrigin, headers: noCORS, vary: actualVary},
		{name: "actual port differs refused", config: "enforce", method: "GET", path: "/items",
			header: map[string]string{"Origin": "https://a.example.com:8443"}, status: 403, message: reasonOrigin},
		{name: "actual scheme differs refused", config: "enforce", method: "GET", path: "/items",
			header: map[string]string{"Origin": "http://a.example.com"}, status: 403, message: reasonOrigin},
		{name: "actual origin with path refused", config: "enforce", method: "GET", path: "/items",
			header: map[string]string{"Origin": "http://localhost:3000/"}, status: 403, message: reasonOrigin},
		{name: "OPTIONS without request method is an actual request", config: "enforce", method: "OPTIONS", path: "/items",
			header: map[string]string{"Origin": "http://localhost:3000"}, status: 200, reached: true,
			headers: map[string]string{"Access-Control-Allow-Origin": "http://localhost:3000"}},
		{name: "no origin passes", config: "enforce", method: "GET", path: "/items",
			status: 200, reached: true, headers: noCORS, vary: actualVary},
		{name: "no origin refused when required", config: "require-origin", method: "GET", path: "/items",
			status: 403, message: reasonOriginRequired},
		{name: "actual with credentials", config: "credentials", method: "GET", path: "/items",
			header: map[string]string{"Origin": "http://localhost:3000"}, status: 200, reached: true,
			headers: map[string]string{"Access-Control-Allow-Origin": "http://localhost:3000", "Access-Control-Allow-Credentials": "true"}},
		{name: "actual star", config: "star", method: "GET", path: "/items",
			header: map[string]string{"Origin": "https://whoever.test"}, status: 200, reached: true,
			headers: map[string]string{"Access-Control-Allow-Origin": "*"}},
		{name: "star refuses null", config: "star", method: "GET", path: "/items",
			header: map[string]string{"Origin": "null"}, status: 403, message: reasonOrigin},

		// standard
		{name: "standard preflight refused gets bare 204", config: "standard", method: "OPTIONS", path: "/items",
			header: preflight("https://evil.test", "GET", ""), status: 204, headers: noCORS, vary: preflightVary},
		{name: "standard preflight allowed", config: "standard", method: "OPTIONS", path: "/items",
			header: preflight("http://localhost:3000", "PUT", "authorization"), status: 204, headers: allowedPreflight},
		{name: "standard actual refused passes without headers", config: "standard", method: "POST", path: "/items",
			header: map[string]string{"Origin": "https://evil.test"}, status: 200, reached: true, headers: noCORS, vary: actualVary},
		{name: "standard actual allowed", config: "standard", method: "GET", path: "/items",
			header: map[string]string{"Origin": "http://localhost:3000"}, status: 200, reached: true,
			headers: map[string]string{"Access-Control-Allow-Origin": "http://localhost:3000"}},

		// shadow
		{name: "shadow preflight refused gets bare 204", config: "shadow", method: "OPTIONS", path: "/items",
			header: preflight("https://evil.test", "GET", ""), status: 204, headers: noCORS},
		{name: "shadow actual refused passes without headers", config: "shadow", method: "DELETE", path: "/items",
			header: map[string]string{"Origin": "https://evil.test"}, status: 200, reached: true, headers: noCORS},
		{name: "shadow actual allowed", config: "shadow", method: "GET", path: "/items",
			header: map[string]string{"Origin": "http://localhost:3000"}, status: 200, reached: true,
			headers: map[string]string{"Access-Control-Allow-Origin": "http://localhost:3000"}},
	}

	servers := map[string]*testServer{}
	for name, cfg := range configs {
		servers[name] = newTestServer(t, cfg)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := servers[tt.config]
			before := ts.hits.Load()
			req, err := http.NewRequest(tt.method, ts.url+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d (body %q)", resp.StatusCode, tt.status, body)
			}
			if reached := ts.hits.Load() > before; reached != tt.reached {
				t.Errorf("backend reached = %v, want %v", reached, tt.reached)
			}
			if tt.message != "" {
				var m struct{ Message string }
				if err := json.Unmarshal(body, &m); err != nil || m.Message != tt.message {
					t.Errorf("body = %q, want JSON message %q", body, tt.message)
				}
			}
			for k, want := range tt.headers {
				vs := resp.Header.Values(k)
				switch {
				case want == absent && len(vs) > 0:
					t.Errorf("%s = %q, want absent", k, vs)
				case want != absent && (len(vs) != 1 || vs[0] != want):
					t.Errorf("%s = %q, want %q", k, vs, want)
				}
			}
			if tt.vary != nil {
				if got := varyTokens(resp.Header); !slices.Equal(got, tt.vary) {
					t.Errorf("Vary = %q, want %q", got, tt.vary)
				}
			}
		})
	}
}

func varyTokens(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Vary") {
		for _, tok := range strings.Split(v, ",") {
			out = append(out, strings.TrimSpace(tok))
		}
	}
	return out
}

// TestShadowLogs checks that shadow mode logs what enforce would refuse, with the Origin and path
// and no other header value.
func TestShadowLogs(t *testing.T) {
	ts := newTestServer(t, baseConfig(config.CORSShadow))
	do := func(method string, header map[string]string) {
		req, _ := http.NewRequest(method, ts.url+"/items/42", nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	do("GET", map[string]string{"Origin": "http://localhost:3000", "Authorization": "Bearer allowed-token"})
	if logs := ts.logs.String(); logs != "" {
		t.Fatalf("allowed request logged: %s", logs)
	}
	do("POST", map[string]string{"Origin": "https://evil.test", "Authorization": "Bearer sekrit-token"})
	do("OPTIONS", map[string]string{"Origin": "http://localhost:3000", "Access-Control-Request-Method": "PATCH", "Access-Control-Request-Headers": "x-sekrit-header"})

	var entries []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(ts.logs.String()), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		entries = append(entries, e)
	}
	if len(entries) != 2 {
		t.Fatalf("got %d log entries, want 2: %v", len(entries), entries)
	}
	want := []struct{ origin, reason string }{{"https://evil.test", reasonOrigin}, {"http://localhost:3000", reasonMethod}}
	for i, e := range entries {
		if e["level"] != "WARN" || e["origin"] != want[i].origin || e["path"] != "/items/42" || e["reason"] != want[i].reason {
			t.Errorf("entry %d = %v, want WARN with origin %q, path /items/42, reason %q", i, e, want[i].origin, want[i].reason)
		}
	}
	for _, secret := range []string{"sekrit", "PATCH"} {
		if strings.Contains(ts.logs.String(), secret) {
			t.Errorf("logs contain header value %q: %s", secret, ts.logs.String())
		}
	}
}

func TestNewRejects(t *testing.T) {
	starCreds := baseConfig(config.CORSEnforce)
	starCreds.AllowOrigins = []string{"*"}
	starCreds.AllowCredentials = true
	badMode := baseConfig("block")
	badOrigin := baseConfig(config.CORSEnforce)
	badOrigin.AllowOrigins = []string{"https://example.com/app"}
	badHeader := baseConfig(config.CORSEnforce)
	badHeader.AllowHeaders = []string{"X Bad"}
	for name, cfg := range map[string]config.CORS{"star with credentials": starCreds, "mode": badMode, "origin": badOrigin, "header": badHeader} {
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("%s: New succeeded, want error", name)
		}
	}
}

func TestTwoOriginHeadersRefused(t *testing.T) {
	ts := newTestServer(t, baseConfig(config.CORSEnforce))
	req, _ := http.NewRequest("GET", ts.url+"/items", nil)
	req.Header.Add("Origin", "http://localhost:3000")
	req.Header.Add("Origin", "http://localhost:3000")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || ts.hits.Load() != 0 {
		t.Errorf("status = %d, backend hits = %d; want 403 and none", resp.StatusCode, ts.hits.Load())
	}
}
