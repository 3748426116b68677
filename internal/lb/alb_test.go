package lb

import (
	"bufio"
	"fmt"
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
)

// serve starts the load balancer's first listener over a real socket through its WrapListener
// guard, as the topology does.
func serve(t *testing.T, cfg config.LoadBalancer, logger *slog.Logger, opts ...Option) (*LoadBalancer, string) {
	t.Helper()
	lb, err := New(cfg, nil, logger, opts...)
	if err != nil {
		t.Fatal(err)
	}
	h := lb.Handler(0)
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = h.(interface {
		WrapListener(net.Listener) net.Listener
	}).WrapListener(srv.Listener)
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		lb.Close()
	})
	return lb, srv.URL
}

func do(t *testing.T, method, url string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
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
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(body)}
}

// tryGet is do for goroutines other than the test's: a failure is a status of 0, not t.Fatal.
func tryGet(url string) response {
	resp, err := http.Get(url)
	if err != nil {
		return response{body: err.Error()}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(body)}
}

func TestRuleConditions(t *testing.T) {
	cfg := config.LoadBalancer{
		Name: "alb",
		Listeners: []config.Listener{{
			Rules: []config.Rule{
				{Priority: 1, Conditions: config.Conditions{Method: []string{"DELETE", "PATCH"}}, Action: fixed(200, "method")},
				{Priority: 2, Conditions: config.Conditions{Header: map[string][]string{"x-env": {"beta", "canary-*"}, "X-Team": {"a?"}}}, Action: fixed(200, "header")},
				{Priority: 3, Conditions: config.Conditions{Query: map[string]string{"version": "v2", "*": "preview"}}, Action: fixed(200, "query")},
				{Priority: 4, Conditions: config.Conditions{SourceIP: []string{"10.0.0.0/8", "192.0.2.1"}}, Action: fixed(200, "far")},
				{Priority: 5, Conditions: config.Conditions{SourceIP: []string{"127.0.0.0/8"}, Path: []string{"/local"}}, Action: fixed(200, "local")},
			},
			DefaultAction: fixed(404, "default"),
		}},
	}
	_, url := serve(t, cfg, nil)
	tests := []struct {
		method, path string
		header       []string
		body         string
	}{
		{"DELETE", "/", nil, "method"},
		{"PATCH", "/", nil, "method"},
		{"delete", "/", nil, "default"}, // methods are case-sensitive
		{"GET", "/", []string{"X-Env", "beta", "X-Team", "ab"}, "header"},
		{"GET", "/", []string{"X-Env", "CANARY-7", "X-Team", "a1"}, "header"},               // values case-insensitive
		{"GET", "/", []string{"X-Env", "other", "X-Env", "beta", "X-Team", "ax"}, "header"}, // any copy
		{"GET", "/", []string{"X-Env", "beta"}, "default"},                                  // names are ANDed
		{"GET", "/", []string{"X-Env", "beta", "X-Team", "abc"}, "default"},
		{"GET", "/?version=v2", nil, "query"},
		{"GET", "/?Version=V2&x=1", nil, "query"},
		{"GET", "/?anything=preview", nil, "query"}, // * key
		{"GET", "/?version=v3", nil, "default"},
		{"GET", "/?version", nil, "default"},
		{"GET", "/local", []string{"X-Forwarded-For", "10.1.2.3"}, "local"}, // the TCP peer, not XFF
		{"GET", "/", []string{"X-Forwarded-For", "10.1.2.3"}, "default"},
	}
	for _, tt := range tests {
		got := do(t, tt.method, url+tt.path, tt.header...)
		if got.body != tt.body {
			t.Errorf("%s %s %v = %d %q, want %q", tt.method, tt.path, tt.header, got.status, got.body, tt.body)
		}
	}
}

func TestRedirect(t *testing.T) {
	redirect := func(r config.Redirect) config.Action { return config.Action{Redirect: &r} }
	cfg := config.LoadBalancer{
		Name: "alb",
		Listeners: []config.Listener{{
			Rules: []config.Rule{
				{Priority: 1, Conditions: config.Conditions{Path: []string{"/old/*"}}, Action: redirect(config.Redirect{Host: "new.#{host}", Port: "8443", Protocol: "HTTPS", Path: "/v2/#{path}", Query: "#{query}&from=old", Status: 302})},
				{Priority: 2, Conditions: config.Conditions{Path: []string{"/moved"}}, Action: redirect(config.Redirect{Host: "example.org", Path: "/", Query: "p=#{port}"})},
			},
			// The HTTP → HTTPS listener: everything else goes to the same URL over HTTPS.
			DefaultAction: redirect(config.Redirect{Protocol: "HTTPS", Port: "443", Query: "#{query}"}),
		}},
	}
	_, url := serve(t, cfg, nil)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(url, "http://"))
	tests := []struct {
		path, host string
		status     int
		location   string
	}{
		{"/old/a/b?x=1", "shop.example.com", 302, "https://new.shop.example.com:8443/v2/old/a/b?x=1&from=old"},
		{"/moved?q=1", "shop.example.com", 301, "http://example.org:" + port + "/?p=" + port},
		{"/any/path%20x?y=2", "shop.example.com:" + port, 301, "https://shop.example.com/any/path%20x?y=2"},
		{"/", "shop.example.com", 301, "https://shop.example.com/"},
	}
	for _, tt := range tests {
		got := do(t, "GET", url+tt.path, "Host", tt.host)
		if got.status != tt.status || got.header.Get("Location") != tt.location {
			t.Errorf("GET %s (Host %s) = %d %q, want %d %q", tt.path, tt.host, got.status, got.header.Get("Location"), tt.status, tt.location)
		}
	}
}

func TestWeightedForwardAndGroupStickiness(t *testing.T) {
	blue, green := newBackend(t, "blue", "127.0.0.1:0"), newBackend(t, "green", "127.0.0.1:0")
	cfg := config.LoadBalancer{
		Name: "alb",
		Listeners: []config.Listener{{
			Rules: []config.Rule{{Priority: 1, Conditions: config.Conditions{Path: []string{"/sticky"}}, Action: config.Action{Forward: &config.Forward{
				TargetGroups: []config.WeightedTargetGroup{{Name: "blue", Weight: 1}, {Name: "green", Weight: 1}},
				Stickiness:   &config.GroupStickiness{Duration: config.Duration{Duration: time.Hour}},
			}}}},
			DefaultAction: config.Action{Forward: &config.Forward{TargetGroups: []config.WeightedTargetGroup{{Name: "blue", Weight: 0}, {Name: "green", Weight: 5}}}},
		}},
		TargetGroups: []config.TargetGroup{group("blue", blue), group("green", green)},
	}
	_, url := serve(t, cfg, nil)
	for range 20 {
		if got := do(t, "GET", url+"/"); got.body != "green" {
			t.Fatalf("weight 0 group got a request: %q", got.body)
		}
	}
	first := do(t, "GET", url+"/sticky")
	cookie := first.header.Get("Set-Cookie")
	if !strings.HasPrefix(cookie, "RampartLBTG-0-1="+first.body) {
		t.Fatalf("group stickiness cookie = %q (answered by %s)", cookie, first.body)
	}
	for range 20 {
		if got := do(t, "GET", url+"/sticky", "Cookie", strings.SplitN(cookie, ";", 2)[0]); got.body != first.body {
			t.Fatalf("sticky request went to %q, want %q", got.body, first.body)
		}
	}
}

// countingBackends starts n plain backends that answer their index.
func countingBackends(t *testing.T, n int) []*backend {
	var bs []*backend
	for i := range n {
		bs = append(bs, newBackend(t, fmt.Sprint(i), "127.0.0.1:0"))
	}
	return bs
}

// echoTransport answers every proxied request in memory with the target's address, so that
// distribution tests run thousands of requests through the whole handler without sockets.
type echoTransport struct{}

func (echoTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{},
		Body: io.NopCloser(strings.NewReader(r.URL.Host)), ContentLength: int64(len(r.URL.Host)), Request: r}, nil
}

func inMemory(lb *LoadBalancer) *LoadBalancer {
	for _, g := range lb.groups {
		g.proxy.Transport = echoTransport{}
	}
	return lb
}

// distribution sends n requests in-process through h and counts the answers.
func distribution(h http.Handler, n int, header ...string) map[string]int {
	seen := map[string]int{}
	for range n {
		req := httptest.NewRequest("GET", "/", nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		seen[rec.Body.String()]++
	}
	return seen
}

func TestAlgorithmDistribution(t *testing.T) {
	const n = 10000
	for _, algo := range []string{config.RoundRobin, config.WeightedRandom, config.LeastOutstandingRequests} {
		t.Run(algo, func(t *testing.T) {
			g := config.TargetGroup{Name: "g", Algorithm: algo, HealthCheck: testHealthCheck(time.Second), Targets: []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}}
			// Sequential requests leave no request outstanding, so least_outstanding_requests
			// breaks its ties by weight too.
			g.Weights = map[string]int{"10.0.0.1:80": 1, "10.0.0.2:80": 3, "10.0.0.3:80": 6}
			lb, err := New(forwardAll(g, ""), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer lb.Close()
			seen := distribution(inMemory(lb).Handler(0), n)
			for i, want := range []float64{0.1, 0.3, 0.6} {
				got := float64(seen[fmt.Sprintf("10.0.0.%d:80", i+1)]) / n
				if got < want-0.05 || got > want+0.05 {
					t.Errorf("target weight %.0f%% got %.1f%% of %d requests (%v)", want*100, got*100, n, seen)
				}
			}
		})
	}
}

// slowBackend holds every request until release is closed.
type slowBackend struct {
	*httptest.Server
	started atomic.Int32
	release chan struct{}
}

func newSlowBackend(t *testing.T, name string) *slowBackend {
	sb := &slowBackend{release: make(chan struct{})}
	sb.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		sb.started.Add(1)
		<-sb.release
		io.WriteString(w, name)
	}))
	t.Cleanup(func() {
		select {
		case <-sb.release:
		default:
			close(sb.release)
		}
		sb.Close()
	})
	return sb
}

func (sb *slowBackend) addr() string { return sb.Listener.Addr().String() }

func TestLeastOutstandingRequests(t *testing.T) {
	slow, fast := newSlowBackend(t, "slow"), newSlowBackend(t, "fast")
	g := group("g")
	g.Targets = []string{fast.addr(), slow.addr()}
	g.Algorithm = config.LeastOutstandingRequests
	lb, url := serve(t, forwardAll(g, ""), nil)
	release := func(sb *slowBackend) {
		select {
		case <-sb.release:
		default:
			close(sb.release)
		}
	}
	// Registered after serve, so it runs before the server's Close, which waits for them.
	t.Cleanup(func() { release(fast); release(slow) })
	inFlight := func(addr string) int64 {
		targets, _ := lb.Targets("g")
		for _, ts := range targets {
			if ts.Address == addr {
				return ts.InFlight
			}
		}
		return -1
	}
	// Both targets hold their requests at first, so the counts of outstanding requests are
	// exact and the slow target holds two by the fourth request, whatever the timing.
	var wg sync.WaitGroup
	var sent int32
	waitFor(t, "two requests parked on the slow target", func() bool {
		if slow.started.Load() < 2 {
			sent++
			wg.Go(func() { tryGet(url + "/") })
			time.Sleep(5 * time.Millisecond)
			return false
		}
		return true
	})
	waitFor(t, "every request at a target", func() bool { return slow.started.Load()+fast.started.Load() == sent })
	release(fast)
	waitFor(t, "the fast target idle", func() bool { return inFlight(fast.addr()) == 0 })
	for range 20 {
		if got := do(t, "GET", url+"/"); got.body != "fast" {
			t.Fatalf("request went to %q while the slow target has outstanding requests", got.body)
		}
	}
	release(slow)
	wg.Wait()
}

func TestStickiness(t *testing.T) {
	t.Run("lb_cookie", func(t *testing.T) {
		bs := countingBackends(t, 3)
		g := group("g", bs...)
		g.Stickiness = &config.Stickiness{Type: config.StickinessLBCookie, Duration: config.Duration{Duration: time.Minute}}
		lb, url := serve(t, forwardAll(g, ""), nil)
		first := do(t, "GET", url+"/")
		c := first.header.Get("Set-Cookie")
		if !strings.HasPrefix(c, "RampartLB-g=") || !strings.Contains(c, "Max-Age=60") || strings.Contains(c, "127.0.0.1") {
			t.Fatalf("stickiness cookie = %q", c)
		}
		pair := strings.SplitN(c, ";", 2)[0]
		for range 10 {
			if got := do(t, "GET", url+"/", "Cookie", pair); got.body != first.body {
				t.Fatalf("sticky request went to %q, want %q", got.body, first.body)
			}
		}
		// A draining target loses its sticky clients.
		idx := first.body[0] - '0'
		if err := lb.Deregister("g", bs[idx].addr()); err != nil {
			t.Fatal(err)
		}
		got := do(t, "GET", url+"/", "Cookie", pair)
		if got.body == first.body || got.header.Get("Set-Cookie") == c {
			t.Errorf("after deregistration the sticky client got %q with cookie %q", got.body, got.header.Get("Set-Cookie"))
		}
	})
	t.Run("app_cookie", func(t *testing.T) {
		var bs []*httptest.Server
		for i := range 2 {
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/login" {
					http.SetCookie(w, &http.Cookie{Name: "SESSION", Value: "s"})
				}
				fmt.Fprint(w, i)
			}))
			t.Cleanup(s.Close)
			bs = append(bs, s)
		}
		g := config.TargetGroup{Name: "g", HealthCheck: testHealthCheck(time.Second), Targets: []string{bs[0].Listener.Addr().String(), bs[1].Listener.Addr().String()},
			Stickiness: &config.Stickiness{Type: config.StickinessAppCookie, CookieName: "SESSION", Duration: config.Duration{Duration: time.Hour}}}
		_, url := serve(t, forwardAll(g, ""), nil)
		if c := do(t, "GET", url+"/").header.Values("Set-Cookie"); len(c) != 0 {
			t.Fatalf("no app cookie, yet the load balancer set %q", c)
		}
		login := do(t, "GET", url+"/login")
		var lbCookie string
		for _, c := range login.header.Values("Set-Cookie") {
			if strings.HasPrefix(c, "RampartLBAPP-g=") {
				lbCookie = strings.SplitN(c, ";", 2)[0]
			}
		}
		if lbCookie == "" {
			t.Fatalf("login set cookies %q, want RampartLBAPP-g too", login.header.Values("Set-Cookie"))
		}
		for range 10 {
			if got := do(t, "GET", url+"/", "Cookie", "SESSION=s; "+lbCookie); got.body != login.body {
				t.Fatalf("sticky request went to %q, want %q", got.body, login.body)
			}
		}
	})
}

func TestSlowStart(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	g := config.TargetGroup{Name: "g", HealthCheck: testHealthCheck(time.Second), Targets: []string{"10.0.0.1:80"}}
	g.SlowStart = config.Duration{Duration: 100 * time.Second}
	lb, err := New(forwardAll(g, ""), nil, nil, WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	inMemory(lb)
	if err := lb.Register("g", "10.0.0.2:80", 1); err != nil {
		t.Fatal(err)
	}
	share := func() float64 { return float64(distribution(lb.Handler(0), 1000)["10.0.0.2:80"]) / 1000 }
	for _, step := range []struct {
		at       time.Duration
		lo, hi   float64
		inRampUp bool
	}{
		{0, 0, 0.02, true},                   // weight 1% of the old target's
		{25 * time.Second, 0.17, 0.23, true}, // 0.25/(1+0.25) = 20%
		{50 * time.Second, 0.30, 0.37, true}, // 0.5/1.5 = 33%
		{100 * time.Second, 0.47, 0.53, false},
	} {
		clock.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Add(step.at).UnixNano())
		got := share()
		if got < step.lo || got > step.hi {
			t.Errorf("at %s into slow start the new target got %.1f%%, want %.0f-%.0f%%", step.at, got*100, step.lo*100, step.hi*100)
		}
		ts, _ := lb.Targets("g")
		if ts[1].SlowStart != step.inRampUp {
			t.Errorf("at %s Targets says slow_start=%v", step.at, ts[1].SlowStart)
		}
	}
}

func TestOutlierEjection(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
		io.WriteString(w, "bad")
	}))
	defer bad.Close()
	good := newBackend(t, "good", "127.0.0.1:0")
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	g := group("g", good)
	g.Targets = append(g.Targets, bad.Listener.Addr().String())
	g.OutlierDetection = &config.OutlierDetection{Consecutive5xx: 3, EjectionTime: config.Duration{Duration: time.Minute}, MaxEjectionPercent: 50}
	logs := newLogRecorder(nil)
	lb, url := serve(t, forwardAll(g, ""), slog.New(logs), WithClock(now))
	fails := 0
	for range 10 {
		if do(t, "GET", url+"/").status == 500 {
			fails++
		}
	}
	if fails != 3 {
		t.Errorf("%d requests reached the failing target, want 3 before ejection", fails)
	}
	if ts, _ := lb.Targets("g"); ts[1].State != "ejected" {
		t.Errorf("failing target state = %q, want ejected", ts[1].State)
	}
	if len(logs.find("target ejected")) != 1 {
		t.Errorf("ejection not logged: %v", logs.find("target ejected"))
	}
	failing.Store(false)
	clock.Add(int64(time.Minute)) // the ejection ends
	seen := map[string]int{}
	for range 4 {
		seen[do(t, "GET", url+"/").body]++
	}
	if seen["bad"] != 2 {
		t.Errorf("after ejection_time the target got %v, want it back in rotation", seen)
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	var bs []string
	for range 2 {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
		defer s.Close()
		bs = append(bs, s.Listener.Addr().String())
	}
	g := config.TargetGroup{Name: "g", Targets: bs, HealthCheck: testHealthCheck(time.Second),
		OutlierDetection: &config.OutlierDetection{Consecutive5xx: 1, EjectionTime: config.Duration{Duration: time.Minute}, MaxEjectionPercent: 50}}
	lb, url := serve(t, forwardAll(g, ""), nil)
	for range 6 {
		do(t, "GET", url+"/")
	}
	ejected := 0
	ts, _ := lb.Targets("g")
	for _, st := range ts {
		if st.State == "ejected" {
			ejected++
		}
	}
	if ejected != 1 {
		t.Errorf("%d of 2 targets ejected with max_ejection_percent 50: %v", ejected, ts)
	}
}

func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestRetries(t *testing.T) {
	var hits503, hitsOK atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits503.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer flaky.Close()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hitsOK.Add(1)
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "ok %s", b)
	}))
	defer ok.Close()
	dead := deadAddr(t)

	t.Run("connect failure", func(t *testing.T) {
		g := config.TargetGroup{Name: "g", Targets: []string{dead, ok.Listener.Addr().String()}, HealthCheck: testHealthCheck(time.Second),
			Retry: &config.Retry{Attempts: 2, Methods: config.DefaultRetryMethods()}}
		logs := newLogRecorder(nil)
		_, url := serve(t, forwardAll(g, ""), slog.New(logs))
		for range 4 {
			if got := do(t, "GET", url+"/"); got.status != 200 {
				t.Fatalf("GET with a dead target = %d %q, want a retry to succeed", got.status, got.body)
			}
		}
		retried := 0
		for _, l := range logs.find("access") {
			if l["retries"] == "1" {
				retried++
			}
		}
		if retried != 2 {
			t.Errorf("%d access lines with retries=1, want 2 (round robin hits the dead target every other time)", retried)
		}
	})
	t.Run("POST is not retried", func(t *testing.T) {
		g := config.TargetGroup{Name: "g", Targets: []string{dead, ok.Listener.Addr().String()}, HealthCheck: testHealthCheck(time.Second),
			Retry: &config.Retry{Attempts: 2, Methods: config.DefaultRetryMethods()}}
		_, url := serve(t, forwardAll(g, ""), nil)
		statuses := map[int]int{}
		for range 4 {
			resp, err := http.Post(url+"/", "text/plain", strings.NewReader("x"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			statuses[resp.StatusCode]++
		}
		if statuses[502] != 2 || statuses[200] != 2 {
			t.Errorf("POST statuses = %v, want 2×502 (never retried) and 2×200", statuses)
		}
	})
	t.Run("reset before any response", func(t *testing.T) {
		// A target that dies mid-request: it reads the request, then closes the connection
		// without a byte of response (as when its process is killed).
		var resets atomic.Int32
		dying := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			resets.Add(1)
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.(*net.TCPConn).SetLinger(0) // RST, not FIN
				c.Close()
			}
		}))
		defer dying.Close()
		g := config.TargetGroup{Name: "g", Targets: []string{dying.Listener.Addr().String(), ok.Listener.Addr().String()}, HealthCheck: testHealthCheck(time.Second),
			Retry: &config.Retry{Attempts: 2, Methods: config.DefaultRetryMethods()}}
		_, url := serve(t, forwardAll(g, ""), nil)
		for range 4 {
			if got := do(t, "GET", url+"/"); got.status != 200 {
				t.Fatalf("GET reset by a dying target = %d %q, want a retry on the other", got.status, got.body)
			}
		}
		if resets.Load() == 0 {
			t.Fatal("the dying target was never tried; the test proves nothing")
		}
		// POST is not idempotent: the target may have acted on it, so the reset is the answer.
		statuses := map[int]int{}
		for range 4 {
			resp, err := http.Post(url+"/", "text/plain", strings.NewReader("x"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			statuses[resp.StatusCode]++
		}
		if statuses[502] == 0 {
			t.Errorf("POST statuses = %v, want a 502 when the target resets it (never retried)", statuses)
		}
	})
	t.Run("status with body replay", func(t *testing.T) {
		hits503.Store(0)
		g := config.TargetGroup{Name: "g", Targets: []string{flaky.Listener.Addr().String(), ok.Listener.Addr().String()}, HealthCheck: testHealthCheck(time.Second),
			Retry: &config.Retry{Attempts: 3, OnStatus: []int{503}, Methods: []string{"PUT"}}}
		_, url := serve(t, forwardAll(g, ""), nil)
		for range 4 {
			req, _ := http.NewRequest("PUT", url+"/", strings.NewReader("payload"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "ok payload" {
				t.Fatalf("PUT = %d %q, want the retry to deliver the same body", resp.StatusCode, b)
			}
		}
		if hits503.Load() != 2 {
			t.Errorf("the 503 target saw %d requests, want 2", hits503.Load())
		}
		// GET is not in methods: the 503 goes back to the client.
		statuses := map[int]int{}
		for range 2 {
			statuses[do(t, "GET", url+"/").status]++
		}
		if statuses[503] != 1 {
			t.Errorf("GET statuses = %v, want one 503 (GET not retried)", statuses)
		}
	})
	t.Run("last target answers", func(t *testing.T) {
		g := config.TargetGroup{Name: "g", Targets: []string{flaky.Listener.Addr().String()}, HealthCheck: testHealthCheck(time.Second),
			Retry: &config.Retry{Attempts: 3, OnStatus: []int{503}, Methods: []string{"GET"}}}
		_, url := serve(t, forwardAll(g, ""), nil)
		if got := do(t, "GET", url+"/"); got.status != 503 {
			t.Errorf("single target with retries = %d, want its own 503", got.status)
		}
	})
}

func TestErrorsLikeALB(t *testing.T) {
	slow := newSlowBackend(t, "slow")
	logs := newLogRecorder(nil)
	cases := []struct {
		name   string
		group  config.TargetGroup
		status int
		body   string
		reason string
	}{
		{"timeout", config.TargetGroup{Name: "g", Targets: []string{slow.addr()}, HealthCheck: testHealthCheck(time.Second), RequestTimeout: config.Duration{Duration: 100 * time.Millisecond}}, 504, `{"message":"Gateway Timeout"}` + "\n", reasonTargetTimeout},
		{"refused", config.TargetGroup{Name: "g", Targets: []string{deadAddr(t)}, HealthCheck: testHealthCheck(time.Second)}, 502, `{"message":"Bad Gateway"}` + "\n", reasonConnectError},
		{"no targets", config.TargetGroup{Name: "g", HealthCheck: testHealthCheck(time.Second)}, 503, `{"message":"Service Unavailable"}` + "\n", reasonNoTargets},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			*logs = *newLogRecorder(nil)
			_, url := serve(t, forwardAll(tt.group, ""), slog.New(logs))
			got := do(t, "GET", url+"/")
			if got.status != tt.status || got.body != tt.body || got.header.Get("Content-Type") != "application/json" {
				t.Errorf("= %d %q, want %d %q", got.status, got.body, tt.status, tt.body)
			}
			if l := logs.find("access"); len(l) != 1 || l[0]["error_reason"] != tt.reason {
				t.Errorf("access log = %v, want error_reason %s", l, tt.reason)
			}
		})
	}
	t.Run("reset", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				bufio.NewReader(c).ReadString('\n')
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}
		}()
		logs := newLogRecorder(nil)
		_, url := serve(t, forwardAll(config.TargetGroup{Name: "g", Targets: []string{ln.Addr().String()}, HealthCheck: testHealthCheck(time.Second)}, ""), slog.New(logs))
		if got := do(t, "GET", url+"/"); got.status != 502 {
			t.Errorf("reset target = %d, want 502", got.status)
		}
		if l := logs.find("access"); len(l) != 1 || l[0]["error_reason"] != reasonResponseError {
			t.Errorf("access log = %v", l)
		}
	})
}

func TestHeaderHandling(t *testing.T) {
	a := newBackend(t, "a", "127.0.0.1:0")
	for _, tt := range []struct {
		mode string
		in   []string
		want []string // nil: header absent
	}{
		{config.XFFAppend, []string{"203.0.113.7"}, []string{"203.0.113.7, 127.0.0.1"}},
		{config.XFFAppend, nil, []string{"127.0.0.1"}},
		{config.XFFPreserve, []string{"203.0.113.7"}, []string{"203.0.113.7"}},
		{config.XFFPreserve, nil, nil},
		{config.XFFRemove, []string{"203.0.113.7"}, nil},
	} {
		cfg := forwardAll(group("g", a), "")
		cfg.XForwardedFor = tt.mode
		_, url := serve(t, cfg, nil)
		var h []string
		for _, v := range tt.in {
			h = append(h, "X-Forwarded-For", v)
		}
		do(t, "GET", url+"/", h...)
		a.mu.Lock()
		got := a.lastHeader["X-Forwarded-For"]
		a.mu.Unlock()
		if strings.Join(got, "|") != strings.Join(tt.want, "|") || (got == nil) != (tt.want == nil) {
			t.Errorf("x_forwarded_for %s with %q: target saw %q, want %q", tt.mode, tt.in, got, tt.want)
		}
	}

	cfg := forwardAll(group("g", a), "")
	cfg.DropInvalidHeaderFields = true
	logs := newLogRecorder(nil)
	_, url := serve(t, cfg, slog.New(logs))
	do(t, "GET", url+"/", "X_Forwarded_For", "1.2.3.4", "X-Good", "1")
	a.mu.Lock()
	h := a.lastHeader
	a.mu.Unlock()
	if _, ok := h["X_forwarded_for"]; ok || h.Get("X-Good") != "1" {
		t.Errorf("drop_invalid_header_fields: target saw %v", h)
	}
	trace := h.Get(traceHeader)
	if !strings.HasPrefix(trace, "Root=1-") || len(trace) != len("Root=1-")+8+1+24 {
		t.Errorf("new trace header = %q", trace)
	}
	if l := logs.find("access"); len(l) != 1 || l[0]["trace_id"] != trace {
		t.Errorf("access log trace_id = %v, want %q", l, trace)
	}
	do(t, "GET", url+"/", traceHeader, "Root=1-5759e988-bd862e3fe1be46a994272793;Self=1-old;Sampled=1")
	a.mu.Lock()
	trace = a.lastHeader.Get(traceHeader)
	a.mu.Unlock()
	if !strings.HasPrefix(trace, "Self=1-") || !strings.HasSuffix(trace, ";Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1") || strings.Contains(trace, "Self=1-old") {
		t.Errorf("extended trace header = %q", trace)
	}
}

func TestDraining(t *testing.T) {
	slow := newSlowBackend(t, "slow")
	other := newBackend(t, "other", "127.0.0.1:0")
	g := group("g", other)
	g.Targets = []string{slow.addr()}
	g.DeregistrationDelay = config.Duration{Duration: time.Minute}
	logs := newLogRecorder(nil)
	lb, url := serve(t, forwardAll(g, ""), slog.New(logs))

	// Ten requests in flight on the only target.
	const inflight = 10
	results := make(chan response, inflight)
	for range inflight {
		go func() { results <- tryGet(url + "/") }()
	}
	waitFor(t, "requests in flight", func() bool { return slow.started.Load() == inflight })
	if err := lb.Register("g", other.addr(), 1); err != nil {
		t.Fatal(err)
	}
	if err := lb.Deregister("g", slow.addr()); err != nil {
		t.Fatal(err)
	}
	if ts, _ := lb.Targets("g"); ts[0].State != "draining" || ts[0].InFlight != inflight {
		t.Fatalf("after Deregister: %+v", ts)
	}
	// New requests go to the other target only.
	for range 5 {
		if got := do(t, "GET", url+"/"); got.body != "other" {
			t.Fatalf("a new request reached the draining target: %q", got.body)
		}
	}
	close(slow.release)
	for range inflight {
		if got := <-results; got.status != 200 || got.body != "slow" {
			t.Errorf("an in-flight request failed while draining: %d %q", got.status, got.body)
		}
	}
	waitFor(t, "drained target removed", func() bool {
		ts, _ := lb.Targets("g")
		return len(ts) == 1 && ts[0].Address == other.addr()
	})
	if l := logs.find("target deregistered"); len(l) != 1 || l[0]["reason"] != "in-flight requests finished" {
		t.Errorf("deregistration log = %v", l)
	}
	if err := lb.Deregister("g", slow.addr()); err == nil {
		t.Error("deregistering a removed target succeeded")
	}
}

func TestDeregistrationDelay(t *testing.T) {
	slow := newSlowBackend(t, "slow")
	g := config.TargetGroup{Name: "g", Targets: []string{slow.addr()}, HealthCheck: testHealthCheck(time.Second), DeregistrationDelay: config.Duration{Duration: 50 * time.Millisecond}}
	lb, url := serve(t, forwardAll(g, ""), nil)
	done := make(chan response)
	go func() { done <- tryGet(url + "/") }()
	waitFor(t, "request in flight", func() bool { return slow.started.Load() == 1 })
	if err := lb.Deregister("g", slow.addr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "removal after the delay", func() bool { ts, _ := lb.Targets("g"); return len(ts) == 0 })
	if got := do(t, "GET", url+"/"); got.status != 503 {
		t.Errorf("group without targets = %d, want 503", got.status)
	}
	close(slow.release)
	if got := <-done; got.status != 200 {
		t.Errorf("the request in flight when the delay ended = %d %q", got.status, got.body)
	}
}

func TestRegisterWhileChecking(t *testing.T) {
	a, b := newBackend(t, "a", "127.0.0.1:0"), newBackend(t, "b", "127.0.0.1:0")
	lb, url := serve(t, forwardAll(group("g", a), ""), nil)
	runHealthChecks(t, lb)
	if err := lb.Register("g", b.addr(), 2); err != nil {
		t.Fatal(err)
	}
	if err := lb.Register("g", b.addr(), 2); err == nil {
		t.Error("registering a target twice succeeded")
	}
	waitFor(t, "new target healthy after its checks", func() bool { return lb.TargetHealth()["g"][b.addr()] })
	seen := map[string]int{}
	for range 6 {
		seen[do(t, "GET", url+"/").body]++
	}
	if seen["a"] != 2 || seen["b"] != 4 {
		t.Errorf("weights 1:2 gave %v", seen)
	}
	if b.healthHits.Load() == 0 {
		t.Error("the registered target was never health checked")
	}
}

func TestHealthCheckPort(t *testing.T) {
	app := newBackend(t, "app", "127.0.0.1:0")
	mgmt := newBackend(t, "mgmt", "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(mgmt.addr())
	g := group("g", app)
	fmt.Sscan(port, &g.HealthCheck.Port)
	lb, _ := serve(t, forwardAll(g, ""), nil)
	runHealthChecks(t, lb)
	waitFor(t, "checks on the health check port", func() bool { return mgmt.healthHits.Load() >= 2 })
	if app.healthHits.Load() != 0 {
		t.Errorf("the traffic port got %d health checks", app.healthHits.Load())
	}
}

func TestIdleTimeout(t *testing.T) {
	cfg := config.LoadBalancer{Name: "alb", IdleTimeout: config.Duration{Duration: 100 * time.Millisecond}, Listeners: []config.Listener{{DefaultAction: fixed(200, "ok")}}}
	_, url := serve(t, cfg, nil)
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read = %v, want EOF from the idle timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("idle connection closed after %s", d)
	}
}

// TestAlgorithmDistributionOverSockets is TestAlgorithmDistribution end to end: requests over
// real connections to the listener and from it to three real targets weighted 1:3:6. Each
// algorithm's shares are within 5 points of the weights (1 000 requests keep the random one 5
// standard deviations inside; TestAlgorithmDistribution runs 10 000 through the same handler in
// memory); smooth round robin's are exact. 10 000 here took 46 s under -race.
func TestAlgorithmDistributionOverSockets(t *testing.T) {
	const n = 1000
	bs := countingBackends(t, 3)
	for _, algo := range []string{config.RoundRobin, config.WeightedRandom, config.LeastOutstandingRequests} {
		t.Run(algo, func(t *testing.T) {
			g := group("g", bs...)
			g.Algorithm = algo
			g.Weights = map[string]int{bs[0].addr(): 1, bs[1].addr(): 3, bs[2].addr(): 6}
			_, url := serve(t, forwardAll(g, ""), nil)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			seen := map[string]int{}
			for range n {
				resp, err := client.Get(url + "/")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				seen[string(body)]++
			}
			for i, want := range []float64{0.1, 0.3, 0.6} {
				got := float64(seen[fmt.Sprint(i)]) / n
				if got < want-0.05 || got > want+0.05 || (algo == config.RoundRobin && seen[fmt.Sprint(i)] != int(want*n)) {
					t.Errorf("target weight %.0f%% got %.2f%% of %d requests (%v)", want*100, got*100, n, seen)
				}
			}
			t.Logf("%s: %v", algo, seen)
		})
	}
}
