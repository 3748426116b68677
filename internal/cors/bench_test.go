package cors

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rampart-edge/rampart/internal/config"
)

// BenchmarkMatch is the per-request origin check against an exact origin and a wildcard.
func BenchmarkMatch(b *testing.B) {
	m, err := NewMatcher([]string{"http://127.0.0.1:3000", "http://localhost:3000", "https://*.example.com"})
	if err != nil {
		b.Fatal(err)
	}
	for _, origin := range []string{"http://127.0.0.1:3000", "https://a.b.example.com", "https://evil.example"} {
		b.Run(origin, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m.Match(origin)
			}
		})
	}
}

// BenchmarkPolicy is the whole CORS stage for an allowed actual request and a preflight.
func BenchmarkPolicy(b *testing.B) {
	p, err := New(config.CORS{
		Mode:         config.CORSEnforce,
		AllowOrigins: []string{"http://127.0.0.1:3000"},
		AllowMethods: []string{"GET", "POST"},
		AllowHeaders: []string{"Content-Type"},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	h := p.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	get := httptest.NewRequest("GET", "/items", nil)
	get.Header.Set("Origin", "http://127.0.0.1:3000")
	pre := httptest.NewRequest("OPTIONS", "/items", nil)
	pre.Header.Set("Origin", "http://127.0.0.1:3000")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("Access-Control-Request-Headers", "content-type")
	for name, req := range map[string]*http.Request{"actual": get, "preflight": pre} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
