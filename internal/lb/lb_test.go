package lb

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/originverify"
	"github.com/rampart-edge/rampart/internal/waf"
)

const secret = "lb-test-secret-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// backend is a test target: it answers its name, records what it saw, and serves /healthz with a
// status the test controls.
type backend struct {
	name         string
	srv          *httptest.Server
	healthStatus atomic.Int32
	healthHits   atomic.Int32

	mu            sync.Mutex
	lastHeader    http.Header
	lastHost      string
	remotes       []string // RemoteAddr of every request, health checks included
	healthRemotes []string
}

func newBackend(t *testing.T, name, listen string) *backend {
	t.Helper()
	b := &backend{name: name}
	b.healthStatus.Store(http.StatusOK)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", listen, err)
	}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.remotes = append(b.remotes, r.RemoteAddr)
		if r.URL.Path == "/healthz" {
			b.healthRemotes = append(b.healthRemotes, r.RemoteAddr)
			b.mu.Unlock()
			b.healthHits.Add(1)
			w.WriteHeader(int(b.healthStatus.Load()))
			return
		}
		b.lastHeader = r.Header.Clone()
		b.lastHost = r.Host
		b.mu.Unlock()
		io.WriteString(w, name)
	}))
	b.srv.Listener.Close()
	b.srv.Listener = ln
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) addr() string { return b.srv.Listener.Addr().String() }

func testHealthCheck(interval time.Duration) config.HealthCheck {
	return config.HealthCheck{
		Path:               "/healthz",
		Interval:           config.Duration{Duration: interval},
		Timeout:            config.Duration{Duration: time.Second},
		HealthyThreshold:   2,
		UnhealthyThreshold: 2,
		Matcher:            "200-399",
	}
}

func group(name string, targets ...*backend) config.TargetGroup {
	tg := config.TargetGroup{Name: name, Algorithm: config.RoundRobin, HealthCheck: testHealthCheck(10 * time.Millisecond)}
	for _, b := range targets {
		tg.Targets = append(tg.Targets, b.addr())
	}
	return tg
}

func forward(group string) config.Action {
	return config.Action{Forward: &config.Forward{TargetGroup: group}}
}

func fixed(status int, body string) config.Action {
	return config.Action{FixedResponse: &config.FixedResponse{Status: status, Body: body}}
}

// gatewayOnly compiles the default topology's gateway-only web ACL (examples/rampart.yaml).
func gatewayOnly(t *testing.T) map[string]*waf.WebACL {
	t.Helper()
	kr, err := originverify.Parse("origin-verify", []byte(`{"version":1,"keys":[{"id":"k1","secret":"`+secret+`","state":"current"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	acl, err := waf.New(config.WebACL{
		Name:          "gateway-only",
		DefaultAction: config.ActionAllow,
		Rules: []config.WAFRule{{
			Name: "require-origin-verify", Priority: 0, Action: config.ActionBlock,
			Statement: config.Statement{Not: &config.Statement{OriginVerify: &config.OriginVerifyStatement{Header: "X-Origin-Verify", Secret: "origin-verify"}}},
		}},
	}, map[string]*originverify.Keyring{"origin-verify": kr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*waf.WebACL{"gateway-only": acl}
}

// start builds the load balancer and serves its first listener.
func start(t *testing.T, cfg config.LoadBalancer, acls map[string]*waf.WebACL, logger *slog.Logger) (*LoadBalancer, *httptest.Server) {
	t.Helper()
	lb, err := New(cfg, acls, logger)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(lb.Handler(0))
	t.Cleanup(func() {
		srv.Close()
		lb.Close()
	})
	return lb, srv
}

// runHealthChecks runs lb.Run until the test ends, and checks that Run returns on cancel.
func runHealthChecks(t *testing.T, lb *LoadBalancer) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		lb.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context was cancelled")
		}
	})
}

type response struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, url string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
			continue
		}
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(body)}
}

// waitFor polls cond until it holds or five seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestRules(t *testing.T) {
	items := newBackend(t, "items", "127.0.0.1:0")
	cfg := config.LoadBalancer{
		Name: "alb",
		Listeners: []config.Listener{{
			Rules: []config.Rule{
				// Out of order on purpose: evaluation follows priority.
				{Priority: 20, Conditions: config.Conditions{Path: []string{"/both"}}, Action: fixed(200, "priority-20")},
				{Priority: 10, Conditions: config.Conditions{Path: []string{"/items", "/items/*"}}, Action: forward("items")},
				{Priority: 5, Conditions: config.Conditions{Path: []string{"/both", "/x"}}, Action: fixed(200, "priority-5")},
				{Priority: 7, Conditions: config.Conditions{Path: []string{"/api/*"}, Host: []string{"*.Example.com", "example.org"}}, Action: fixed(200, "api")},
				{Priority: 8, Conditions: config.Conditions{Path: []string{"/v?/ping"}}, Action: fixed(200, "ping")},
				{Priority: 9, Conditions: config.Conditions{Host: []string{"admin.example.net"}}, Action: fixed(200, "admin")},
			},
			DefaultAction: fixed(404, "default"),
		}},
		TargetGroups: []config.TargetGroup{group("items", items)},
	}
	_, srv := start(t, cfg, nil, nil)

	tests := []struct {
		path   string
		header []string
		status int
		body   string
	}{
		{"/items", nil, 200, "items"},
		{"/items/42", nil, 200, "items"},
		{"/items/a/b", nil, 200, "items"}, // * crosses /
		{"/itemsX", nil, 404, "default"},
		{"/ITEMS", nil, 404, "default"}, // paths are case-sensitive
		{"/both", nil, 200, "priority-5"},
		{"/x", nil, 200, "priority-5"},
		{"/api/users", []string{"Host", "shop.example.com"}, 200, "api"},
		{"/api/users", []string{"Host", "SHOP.EXAMPLE.COM:8443"}, 200, "api"}, // case and port ignored
		{"/api/users", []string{"Host", "example.org"}, 200, "api"},
		{"/api/users", []string{"Host", "example.com"}, 404, "default"},  // *. needs a subdomain
		{"/other", []string{"Host", "shop.example.com"}, 404, "default"}, // conditions are ANDed
		{"/v1/ping", nil, 200, "ping"},
		{"/v12/ping", nil, 404, "default"}, // ? is one character
		{"/v/ping", nil, 404, "default"},
		{"/anything", []string{"Host", "Admin.Example.Net"}, 200, "admin"},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+strings.Join(tt.header, "="), func(t *testing.T) {
			got := get(t, srv.URL+tt.path, tt.header...)
			if got.status != tt.status || got.body != tt.body {
				t.Errorf("GET %s = %d %q, want %d %q", tt.path, got.status, got.body, tt.status, tt.body)
			}
		})
	}
}

func TestFixedResponse(t *testing.T) {
	cfg := config.LoadBalancer{
		Name: "alb",
		Listeners: []config.Listener{{
			Rules: []config.Rule{
				{Priority: 1, Conditions: config.Conditions{Path: []string{"/json"}}, Action: config.Action{FixedResponse: &config.FixedResponse{Status: 418, ContentType: "application/json", Body: `{"tea":true}`}}},
				{Priority: 2, Conditions: config.Conditions{Path: []string{"/text"}}, Action: fixed(503, "down for maintenance")},
			},
			DefaultAction: fixed(404, ""),
		}},
	}
	_, srv := start(t, cfg, nil, nil)
	tests := []struct {
		path, contentType, body string
		status                  int
	}{
		{"/json", "application/json", `{"tea":true}`, 418},
		{"/text", "text/plain; charset=utf-8", "down for maintenance", 503},
		{"/none", "", "", 404},
	}
	for _, tt := range tests {
		got := get(t, srv.URL+tt.path)
		if got.status != tt.status || got.body != tt.body || got.header.Get("Content-Type") != tt.contentType {
			t.Errorf("GET %s = %d %q %q, want %d %q %q", tt.path, got.status, got.header.Get("Content-Type"), got.body, tt.status, tt.contentType, tt.body)
		}
	}
}

func TestWebACLBeforeRules(t *testing.T) {
	items := newBackend(t, "items", "127.0.0.1:0")
	cfg := config.LoadBalancer{
		Name: "alb",
		Listeners: []config.Listener{{
			WebACL: "gateway-only",
			Rules: []config.Rule{
				{Priority: 1, Conditions: config.Conditions{Path: []string{"/fixed"}}, Action: fixed(200, "fixed")},
				{Priority: 2, Conditions: config.Conditions{Path: []string{"/items"}}, Action: forward("items")},
			},
			DefaultAction: fixed(404, "default"),
		}},
		TargetGroups: []config.TargetGroup{group("items", items)},
	}
	_, srv := start(t, cfg, gatewayOnly(t), nil)
	tests := []struct {
		path   string
		header []string
		status int
		body   string
	}{
		{"/fixed", nil, 403, `{"message":"Forbidden"}` + "\n"},
		{"/nowhere", nil, 403, `{"message":"Forbidden"}` + "\n"},
		{"/items", []string{"X-Origin-Verify", "wrong"}, 403, `{"message":"Forbidden"}` + "\n"},
		{"/fixed", []string{"X-Origin-Verify", secret}, 200, "fixed"},
		{"/nowhere", []string{"X-Origin-Verify", secret}, 404, "default"},
		{"/items", []string{"X-Origin-Verify", secret}, 200, "items"},
	}
	for _, tt := range tests {
		got := get(t, srv.URL+tt.path, tt.header...)
		if got.status != tt.status || got.body != tt.body {
			t.Errorf("GET %s %v = %d %q, want %d %q", tt.path, tt.header, got.status, got.body, tt.status, tt.body)
		}
	}
}

func forwardAll(groupCfg config.TargetGroup, acl string) config.LoadBalancer {
	return config.LoadBalancer{
		Name:         "alb",
		Listeners:    []config.Listener{{WebACL: acl, DefaultAction: forward(groupCfg.Name)}},
		TargetGroups: []config.TargetGroup{groupCfg},
	}
}

func TestRoundRobin(t *testing.T) {
	a, b := newBackend(t, "a", "127.0.0.1:0"), newBackend(t, "b", "127.0.0.1:0")
	_, srv := start(t, forwardAll(group("g", a, b), ""), nil, nil)

	prev := ""
	for i := range 6 {
		got := get(t, srv.URL+"/").body
		if got != "a" && got != "b" {
			t.Fatalf("request %d answered by %q", i, got)
		}
		if got == prev {
			t.Fatalf("request %d went to %q again; round robin must alternate", i, got)
		}
		prev = got
	}

	// Concurrent requests: the shared counter gives each target exactly half.
	const n = 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	for range n {
		wg.Go(func() {
			resp, err := http.Get(srv.URL + "/")
			if err != nil {
				t.Error(err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			mu.Lock()
			counts[string(body)]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if counts["a"] != n/2 || counts["b"] != n/2 {
		t.Errorf("concurrent split = %v, want %d each", counts, n/2)
	}
}

// logRecorder is a slog handler that keeps every record's message and attributes, including the
// ones added with Logger.With.
type logRecorder struct {
	mu      *sync.Mutex
	records *[]map[string]string
	with    []slog.Attr
	hook    func(map[string]string) // called synchronously for each record
}

func newLogRecorder(hook func(map[string]string)) *logRecorder {
	return &logRecorder{mu: &sync.Mutex{}, records: &[]map[string]string{}, hook: hook}
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }
func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.with = append(append([]slog.Attr(nil), h.with...), as...)
	return &c
}
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message, "level": r.Level.String()}
	for _, a := range h.with {
		m[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	if h.hook != nil {
		h.hook(m)
	}
	h.mu.Lock()
	*h.records = append(*h.records, m)
	h.mu.Unlock()
	return nil
}

func (h *logRecorder) find(msg string) []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]string
	for _, r := range *h.records {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

func TestStoppedTargetBecomesUnhealthy(t *testing.T) {
	a, b := newBackend(t, "a", "127.0.0.1:0"), newBackend(t, "b", "127.0.0.1:0")
	logs := newLogRecorder(nil)
	lb, srv := start(t, forwardAll(group("g", a, b), ""), nil, slog.New(logs))
	if h := lb.TargetHealth(); !h["g"][a.addr()] || !h["g"][b.addr()] {
		t.Fatalf("targets must start healthy: %v", h)
	}
	runHealthChecks(t, lb)

	bAddr := b.addr()
	b.srv.Close()
	waitFor(t, "b to be marked unhealthy", func() bool { return !lb.TargetHealth()["g"][bAddr] })
	if !lb.TargetHealth()["g"][a.addr()] {
		t.Fatal("a was marked unhealthy too")
	}
	for i := range 10 {
		if got := get(t, srv.URL+"/"); got.status != 200 || got.body != "a" {
			t.Fatalf("request %d after b stopped = %d %q, want 200 from a", i, got.status, got.body)
		}
	}
	changes := logs.find("target health changed")
	if len(changes) != 1 || changes[0]["group"] != "g" || changes[0]["target"] != bAddr || changes[0]["state"] != "unhealthy" {
		t.Errorf("health change logs = %v, want one for %s unhealthy", changes, bAddr)
	}
}

// TestHealthThresholds checks the exact number of consecutive results that flip a target. The log
// hook runs in the checking goroutine right after the deciding probe, so the backend's probe
// count at that moment is exact.
func TestHealthThresholds(t *testing.T) {
	a := newBackend(t, "a", "127.0.0.1:0")
	tg := group("g", a)
	tg.HealthCheck.UnhealthyThreshold = 3
	tg.HealthCheck.HealthyThreshold = 2
	tg.HealthCheck.Matcher = "200,302"

	var markHits atomic.Int32 // health hits when the current phase started
	type change struct {
		state string
		hits  int32
	}
	changes := make(chan change, 10)
	logs := newLogRecorder(func(m map[string]string) {
		if m["msg"] == "target health changed" {
			changes <- change{m["state"], a.healthHits.Load() - markHits.Load()}
		}
	})
	lb, _ := start(t, forwardAll(tg, ""), nil, slog.New(logs))

	// 302 matches "200,302" (and is not followed): the target stays healthy.
	a.healthStatus.Store(http.StatusFound)
	runHealthChecks(t, lb)
	waitFor(t, "a few probes", func() bool { return a.healthHits.Load() >= 4 })
	if !lb.TargetHealth()["g"][a.addr()] {
		t.Fatal("302 made the target unhealthy")
	}

	// 301 does not match. Probes keep running; mark where the failing phase starts. A probe
	// that saw the old status may still be in flight, so allow one extra.
	markHits.Store(a.healthHits.Load())
	a.healthStatus.Store(http.StatusMovedPermanently)
	c := <-changes
	if c.state != "unhealthy" || c.hits < 3 || c.hits > 4 {
		t.Fatalf("change %+v, want unhealthy after 3 failing probes", c)
	}
	markHits.Store(a.healthHits.Load())
	a.healthStatus.Store(http.StatusOK)
	c = <-changes
	if c.state != "healthy" || c.hits < 2 || c.hits > 3 {
		t.Fatalf("change %+v, want healthy after 2 passing probes", c)
	}
	if !lb.TargetHealth()["g"][a.addr()] {
		t.Error("TargetHealth does not show the recovery")
	}
}

func TestFailOpen(t *testing.T) {
	a, b := newBackend(t, "a", "127.0.0.1:0"), newBackend(t, "b", "127.0.0.1:0")
	a.healthStatus.Store(http.StatusInternalServerError)
	b.healthStatus.Store(http.StatusInternalServerError)
	logs := newLogRecorder(nil)
	lb, srv := start(t, forwardAll(group("g", a, b), ""), nil, slog.New(logs))
	runHealthChecks(t, lb)
	waitFor(t, "both targets unhealthy", func() bool {
		h := lb.TargetHealth()["g"]
		return !h[a.addr()] && !h[b.addr()]
	})
	seen := map[string]int{}
	for range 4 {
		got := get(t, srv.URL+"/")
		if got.status != 200 {
			t.Fatalf("status %d with every target unhealthy; want fail-open", got.status)
		}
		seen[got.body]++
	}
	if seen["a"] != 2 || seen["b"] != 2 {
		t.Errorf("fail-open split = %v, want both targets used", seen)
	}
	if w := logs.find("every target is unhealthy; failing open to all targets"); len(w) != 1 || w[0]["group"] != "g" || w[0]["level"] != "WARN" {
		t.Errorf("fail-open log = %v", w)
	}
}

func TestNoTargets(t *testing.T) {
	_, srv := start(t, forwardAll(config.TargetGroup{Name: "empty", HealthCheck: testHealthCheck(time.Second)}, ""), nil, nil)
	got := get(t, srv.URL+"/")
	if got.status != 503 || got.header.Get("Content-Type") != "application/json" || got.body != `{"message":"Service Unavailable"}`+"\n" {
		t.Errorf("empty group = %d %q %q, want 503 JSON", got.status, got.header.Get("Content-Type"), got.body)
	}
}

func TestUnreachableTarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	tg := config.TargetGroup{Name: "g", Targets: []string{addr}, HealthCheck: testHealthCheck(time.Second)}
	_, srv := start(t, forwardAll(tg, ""), nil, nil)
	got := get(t, srv.URL+"/")
	if got.status != 502 || got.body != `{"message":"Bad Gateway"}`+"\n" {
		t.Errorf("refused target = %d %q, want 502 JSON", got.status, got.body)
	}
}

func TestForwardedHeadersAndSecretRemoval(t *testing.T) {
	a := newBackend(t, "a", "127.0.0.1:0")
	_, srv := start(t, forwardAll(group("g", a), "gateway-only"), gatewayOnly(t), nil)
	got := get(t, srv.URL+"/items?x=1",
		"X-Origin-Verify", secret,
		"X-Forwarded-For", "203.0.113.7",
		"X-Request-Id", "req-123",
		"Host", "api.example.com")
	if got.status != 200 || got.body != "a" {
		t.Fatalf("GET = %d %q", got.status, got.body)
	}
	_, lbPort, _ := net.SplitHostPort(srv.Listener.Addr().String())
	a.mu.Lock()
	h, host := a.lastHeader, a.lastHost
	a.mu.Unlock()
	if v, ok := h["X-Origin-Verify"]; ok {
		t.Errorf("the app saw the origin-verify header (%d values)", len(v))
	}
	checks := map[string]string{
		"X-Forwarded-For":   "203.0.113.7, 127.0.0.1",
		"X-Forwarded-Proto": "http",
		"X-Forwarded-Port":  lbPort,
		"X-Forwarded-Host":  "api.example.com",
		"X-Request-Id":      "req-123",
	}
	for k, want := range checks {
		if got := strings.Join(h[k], ","); got != want {
			t.Errorf("backend %s = %q, want %q", k, got, want)
		}
	}
	if host != "api.example.com" {
		t.Errorf("backend Host = %q, want the inbound host kept", host)
	}
}

func TestEgressSourceAddress(t *testing.T) {
	a, b := newBackend(t, "a", "127.0.0.2:0"), newBackend(t, "b", "127.0.0.2:0")
	cfg := forwardAll(group("g", a, b), "")
	cfg.Egress = "127.0.0.3"
	lb, srv := start(t, cfg, nil, nil)
	runHealthChecks(t, lb)
	for range 4 {
		if got := get(t, srv.URL+"/"); got.status != 200 {
			t.Fatalf("status %d", got.status)
		}
	}
	for _, be := range []*backend{a, b} {
		waitFor(t, be.name+" health checks", func() bool { return be.healthHits.Load() > 0 })
		be.mu.Lock()
		remotes := append([]string(nil), be.remotes...)
		health := len(be.healthRemotes)
		be.mu.Unlock()
		if len(remotes) < 2+health || health == 0 {
			t.Fatalf("%s saw %d requests (%d health checks)", be.name, len(remotes), health)
		}
		for _, r := range remotes {
			if ip, _, _ := net.SplitHostPort(r); ip != "127.0.0.3" {
				t.Errorf("%s saw a connection from %s, want 127.0.0.3", be.name, r)
			}
		}
	}
}

func TestAccessLog(t *testing.T) {
	a := newBackend(t, "a", "127.0.0.1:0")
	logs := newLogRecorder(nil)
	cfg := forwardAll(group("g", a), "gateway-only")
	cfg.Listeners[0].Listen = "127.0.0.1:8081"
	_, srv := start(t, cfg, gatewayOnly(t), slog.New(logs))
	get(t, srv.URL+"/items?token=hidden", "X-Origin-Verify", secret, "X-Request-Id", "req-ok")
	get(t, srv.URL+"/items", "X-Request-Id", "req-blocked")
	get(t, srv.URL+"/items", "X-Request-Id", strings.Repeat("r", 1000)) // clipped in the log

	lines := logs.find("access")
	if len(lines) != 3 {
		t.Fatalf("got %d access log lines, want 3: %v", len(lines), lines)
	}
	want := []map[string]string{
		{"listener": "127.0.0.1:8081", "method": "GET", "path": "/items", "status": "200", "bytes": "1", "source_ip": "127.0.0.1", "request_id": "req-ok", "target": a.addr()},
		{"path": "/items", "status": "403", "request_id": "req-blocked", "target": ""},
		{"status": "403", "request_id": strings.Repeat("r", maxRequestIDLen)},
	}
	for i, w := range want {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("access line %d: %s = %q, want %q", i, k, lines[i][k], v)
			}
		}
	}
	for _, l := range lines {
		for k, v := range l {
			if strings.Contains(v, secret) || strings.Contains(v, "hidden") {
				t.Errorf("access log %s leaks %q", k, v)
			}
		}
	}
}

func TestNewErrors(t *testing.T) {
	okGroup := config.TargetGroup{Name: "g", Targets: []string{"127.0.0.1:1"}, HealthCheck: testHealthCheck(time.Second)}
	tests := []struct {
		name   string
		mutate func(*config.LoadBalancer)
		want   string
	}{
		{"bad egress", func(c *config.LoadBalancer) { c.Egress = "not-an-ip" }, `egress "not-an-ip"`},
		{"unknown group", func(c *config.LoadBalancer) { c.Listeners[0].DefaultAction = forward("nope") }, `target group "nope" is not defined`},
		{"unknown acl", func(c *config.LoadBalancer) { c.Listeners[0].WebACL = "nope" }, `web ACL "nope" is not defined`},
		{"no action", func(c *config.LoadBalancer) { c.Listeners[0].DefaultAction = config.Action{} }, "neither forward nor fixed_response"},
		{"two actions", func(c *config.LoadBalancer) {
			c.Listeners[0].Rules = []config.Rule{{Priority: 3, Action: config.Action{Forward: &config.Forward{TargetGroup: "g"}, FixedResponse: &config.FixedResponse{Status: 200}}}}
		}, "rule with priority 3: action sets both"},
		{"bad status", func(c *config.LoadBalancer) { c.Listeners[0].DefaultAction = fixed(99, "") }, "status 99"},
		{"bad algorithm", func(c *config.LoadBalancer) { c.TargetGroups[0].Algorithm = "random" }, `target group "g": algorithm "random"`},
		{"bad target", func(c *config.LoadBalancer) { c.TargetGroups[0].Targets = []string{"no-port"} }, `target "no-port"`},
		{"bad matcher", func(c *config.LoadBalancer) { c.TargetGroups[0].HealthCheck.Matcher = "200-abc" }, `matcher "200-abc"`},
		{"zero interval", func(c *config.LoadBalancer) { c.TargetGroups[0].HealthCheck.Interval = config.Duration{} }, "interval"},
		{"duplicate group", func(c *config.LoadBalancer) { c.TargetGroups = append(c.TargetGroups, okGroup) }, "defined twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := forwardAll(okGroup, "")
			cfg.TargetGroups = []config.TargetGroup{okGroup}
			cfg.TargetGroups[0].Targets = append([]string(nil), okGroup.Targets...)
			tt.mutate(&cfg)
			_, err := New(cfg, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestStatusMatcher(t *testing.T) {
	tests := []struct {
		matcher string
		yes, no []int
	}{
		{"200-399", []int{200, 302, 399}, []int{199, 400, 500}},
		{"200,302", []int{200, 302}, []int{201, 301, 404}},
		{"200, 300-302 ,404", []int{200, 300, 301, 302, 404}, []int{303, 403}},
	}
	for _, tt := range tests {
		m, err := parseStatusMatcher(tt.matcher)
		if err != nil {
			t.Fatalf("%q: %v", tt.matcher, err)
		}
		for _, c := range tt.yes {
			if !m.match(c) {
				t.Errorf("%q does not match %d", tt.matcher, c)
			}
		}
		for _, c := range tt.no {
			if m.match(c) {
				t.Errorf("%q matches %d", tt.matcher, c)
			}
		}
	}
	for _, bad := range []string{"", "abc", "200-", "-200", "399-200", "99", "600", "200,,300"} {
		if _, err := parseStatusMatcher(bad); err == nil {
			t.Errorf("parseStatusMatcher(%q) succeeded", bad)
		}
	}
}

func TestHandlerPanicsOnUnknownListener(t *testing.T) {
	lb, err := New(config.LoadBalancer{Name: "alb"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Handler(0) on a load balancer without listeners did not panic")
		}
	}()
	lb.Handler(0)
}
