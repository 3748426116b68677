package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/observe"
)

// TestCountThrottleLevels: the level label comes from the rule that refused, whatever the
// gateway is called.
func TestCountThrottleLevels(t *testing.T) {
	for _, gw := range []string{"api", "route-api", "p"} {
		m := observe.NewMetrics()
		a := &access{gateway: gw, metrics: m}
		limit := []config.Throttle{{Rate: 1, Burst: 1}}
		open, _ := compileThrottles(gw, "gateway", limit)
		a.countThrottle(&open[0])
		open, _ = compileThrottles(gw, "route3 /items", limit)
		a.countThrottle(&open[0])
		a.countThrottle(&throttleRule{prefix: "p|" + gw + "|gold|1/1|"})
		a.countQuota(&apiKey{id: "acme", plan: &plan{name: "gold"}})
		for _, want := range []map[string]string{
			{"__name__": "rampart_throttle_rejections_total", "gateway": gw, "level": "gateway"},
			{"__name__": "rampart_throttle_rejections_total", "gateway": gw, "level": "route"},
			{"__name__": "rampart_throttle_rejections_total", "gateway": gw, "level": "plan"},
			{"__name__": "rampart_quota_rejections_total", "gateway": gw, "plan": "gold"},
		} {
			if got := gathered(t, m, want); got != 1 {
				t.Errorf("%v = %v, want 1", want, got)
			}
		}
	}
}

// gathered is the value of the counter whose name and labels are want, or -1.
func gathered(t *testing.T, m *observe.Metrics, want map[string]string) float64 {
	t.Helper()
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != want["__name__"] {
			continue
		}
	metrics:
		for _, mt := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if k != "__name__" && labels[k] != v {
					continue metrics
				}
			}
			return mt.GetCounter().GetValue()
		}
	}
	return -1
}

// BenchmarkGatewayInstrumentation measures the gateway's own work for a routed request that a
// throttle refuses (no backend call: request id, access log, CORS, routing, throttle, 429) with
// instrumentation off and on, and with the access log's level off. The differences are the
// per-request cost of metrics, tracing and logging.
func BenchmarkGatewayInstrumentation(b *testing.B) {
	gc := parseGateway(b, b.TempDir(), "", `
gateways:
  - name: api
    listen: 127.0.0.1:0
    cors: {allow_origins: ["http://localhost:3000"]}
    routes:
      - {path: "/items/{id}", methods: [GET], throttle: [{rate: 0.000001, burst: 1}], integration: {url: "http://127.0.0.1:1"}}
`)
	info := slog.New(slog.NewJSONHandler(io.Discard, nil))
	off := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter()))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	for _, tc := range []struct {
		name   string
		logger *slog.Logger
		opts   []Option
	}{
		{"log=info/metrics=off", info, nil},
		{"log=info/metrics=on", info, []Option{WithMetrics(observe.NewMetrics())}},
		{"log=info/metrics=on/tracing=on", info, []Option{WithMetrics(observe.NewMetrics()), WithTracer(tp.Tracer("bench"))}},
		{"log=off/metrics=off", off, nil},
		{"log=off/metrics=on", off, []Option{WithMetrics(observe.NewMetrics())}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			g, err := New(gc, nil, tc.logger, tc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			req := httptest.NewRequest("GET", "http://api.test/items/42", nil)
			req.RemoteAddr = "192.0.2.1:40000"
			req.Header.Set("Origin", "http://localhost:3000")
			serve := func() int {
				w := httptest.NewRecorder()
				g.ServeHTTP(w, req)
				return w.Code
			}
			serve() // the one request the bucket lets through (to a closed port: 502)
			b.ReportAllocs()
			for b.Loop() {
				if code := serve(); code != http.StatusTooManyRequests {
					b.Fatalf("status %d", code)
				}
			}
		})
	}
}
