package demoapp

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rampart-edge/rampart/internal/observe"
)

// TestInstrumentCountsByPattern: the route label is the mux pattern, never the raw path, so item
// ids and unknown paths do not become series.
func TestInstrumentCountsByPattern(t *testing.T) {
	m := observe.NewMetrics()
	h := Instrument(New("items-1", nil, nil), "items-1", m)
	for _, path := range []string{"/whoami", "/whoami", "/no/such/path", "/items/abc"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	body := w.Body.String()
	for _, want := range []string{
		`rampart_requests_total{code="2xx",component="app",method="GET",name="items-1",route="/whoami"} 2`,
		`rampart_requests_total{code="4xx",component="app",method="GET",name="items-1",route="/"} 1`,
		`rampart_requests_total{code="4xx",component="app",method="GET",name="items-1",route="/items/{id}"} 1`,
		`rampart_request_duration_seconds_count{component="app",name="items-1"} 4`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("no %s in:\n%s", want, body)
		}
	}
	if strings.Contains(body, "/no/such/path") || strings.Contains(body, "abc") {
		t.Error("a raw path became a label value")
	}
	if Instrument(h, "x", nil) != h {
		t.Error("Instrument without metrics wraps")
	}
}

// BenchmarkAppAccessLog is the app's access log for a request its mux answers itself (404),
// with the log level on (to a discarding JSON handler) and off: off must not pay for the line.
func BenchmarkAppAccessLog(b *testing.B) {
	for _, tc := range []struct {
		name  string
		level slog.Level
	}{{"log=info", slog.LevelInfo}, {"log=off", slog.LevelWarn}} {
		b.Run(tc.name, func(b *testing.B) {
			h := New("items-1", nil, slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: tc.level})))
			req := httptest.NewRequest("GET", "/no/such/path", nil)
			req.Header.Set("X-Request-Id", "01HZX4J8Q8Y8ZJ8Q8Y8ZJ8Q8Y8")
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
