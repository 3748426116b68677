package lb

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/observe"
)

// scrapeLB reads the metrics exposition.
func scrapeLB(t *testing.T, m *observe.Metrics) string {
	t.Helper()
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(w.Body)
	return string(b)
}

// TestLBMetricsOverSockets sends requests to a load balancer over a real listener: forwarded by
// rule 10 to a live target, answered by the default action, and blocked by the web ACL; it then
// stops one target and watches its health gauge drop.
func TestLBMetricsOverSockets(t *testing.T) {
	up, down := newBackend(t, "up", "127.0.0.1:0"), newBackend(t, "down", "127.0.0.1:0")
	cfg := config.LoadBalancer{
		Name: "alb",
		Listeners: []config.Listener{{
			WebACL:        "gateway-only",
			Rules:         []config.Rule{{Priority: 10, Conditions: config.Conditions{Path: []string{"/items"}}, Action: forward("items")}},
			DefaultAction: fixed(404, "no"),
		}},
		TargetGroups: []config.TargetGroup{group("items", up, down)},
	}
	m := observe.NewMetrics()
	lb, err := New(cfg, gatewayOnly(t), nil, WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(lb.Handler(0))
	t.Cleanup(func() {
		srv.Close()
		lb.Close()
	})
	for range 4 {
		if r := get(t, srv.URL+"/items", "X-Origin-Verify", secret); r.status != 200 {
			t.Fatalf("GET /items: %d %s", r.status, r.body)
		}
	}
	if r := get(t, srv.URL+"/other", "X-Origin-Verify", secret); r.status != 404 {
		t.Fatalf("GET /other: %d", r.status)
	}
	if r := get(t, srv.URL+"/items"); r.status != 403 {
		t.Fatalf("GET /items without the secret: %d", r.status)
	}
	wants := []string{
		`rampart_requests_total{code="2xx",component="lb",method="GET",name="alb",route="10"} 4`,
		`rampart_requests_total{code="4xx",component="lb",method="GET",name="alb",route="default"} 1`,
		`rampart_requests_total{code="4xx",component="lb",method="GET",name="alb",route="none"} 1`,
		`rampart_request_duration_seconds_count{component="lb",name="alb"} 6`,
		`rampart_target_duration_seconds_count{group="items",lb="alb",target="` + up.addr() + `"} 2`,
		`rampart_target_duration_seconds_count{group="items",lb="alb",target="` + down.addr() + `"} 2`,
		`rampart_target_healthy{group="items",lb="alb",target="` + down.addr() + `"} 1`,
		`rampart_target_outstanding_requests{group="items",lb="alb",target="` + up.addr() + `"} 0`,
	}
	waitFor(t, "the metrics of six requests", func() bool {
		body := scrapeLB(t, m)
		for _, w := range wants {
			if !strings.Contains(body, w+"\n") {
				return false
			}
		}
		return true
	})
	if body := scrapeLB(t, m); strings.Contains(body, secret) {
		t.Fatal("the exposition holds the origin-verify secret")
	}

	down.healthStatus.Store(http.StatusServiceUnavailable)
	runHealthChecks(t, lb)
	waitFor(t, "the stopped target's gauge to read 0", func() bool {
		body := scrapeLB(t, m)
		return strings.Contains(body, `rampart_target_healthy{group="items",lb="alb",target="`+down.addr()+`"} 0`) &&
			strings.Contains(body, `rampart_target_healthy{group="items",lb="alb",target="`+up.addr()+`"} 1`)
	})

	// Closing the load balancer (a reload replaced it) removes its target series.
	lb.Close()
	if strings.Contains(scrapeLB(t, m), "rampart_target_healthy{") {
		t.Error("a closed load balancer still reports its targets")
	}
}

// BenchmarkLBInstrumentation measures a request the default action answers (no target call)
// with metrics off and on, and with the access log's level off.
func BenchmarkLBInstrumentation(b *testing.B) {
	cfg := config.LoadBalancer{Name: "alb", Listeners: []config.Listener{{
		Rules:         []config.Rule{{Priority: 10, Conditions: config.Conditions{Path: []string{"/x"}}, Action: fixed(200, "ok")}},
		DefaultAction: fixed(404, "no"),
	}}}
	info := slog.New(slog.NewJSONHandler(io.Discard, nil))
	off := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for _, tc := range []struct {
		name   string
		logger *slog.Logger
		opts   []Option
	}{
		{"log=info/metrics=off", info, nil},
		{"log=info/metrics=on", info, []Option{WithMetrics(observe.NewMetrics())}},
		{"log=off/metrics=off", off, nil},
		{"log=off/metrics=on", off, []Option{WithMetrics(observe.NewMetrics())}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			lb, err := New(cfg, nil, tc.logger, tc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer lb.Close()
			h := lb.Handler(0)
			req := httptest.NewRequest("GET", "http://alb.test/x", nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
