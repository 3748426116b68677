package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/originverify"
)

// memoryTransport answers every request with a fixed 64-byte 200 without a network: what is left
// in allocs/op is the gateway's own work plus ReverseProxy's (and this fake response, 4 allocs).
type memoryTransport struct{ body string }

func (m memoryTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{
		StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"text/plain"}},
		Body:          io.NopCloser(strings.NewReader(m.body)),
		ContentLength: int64(len(m.body)), Request: r,
	}, nil
}

// BenchmarkGatewayServeHTTP runs whole requests through Gateway.ServeHTTP with
// bench/rampart-chain.yaml's gateway (CORS enforce with an allowed Origin, origin-verify and
// request id injection, logs at warn): "memory" answers from an in-memory RoundTripper, so that
// allocs/op is the gateway and ReverseProxy alone; "loopback" calls a real backend over loopback
// (its server and the transport count too). The listener's desync guard is not in the path (no
// connection): BenchmarkChainAllInOne in internal/topology has it.
//
//	go test -run '^$' -bench GatewayServeHTTP -benchmem ./internal/gateway/
func BenchmarkGatewayServeHTTP(b *testing.B) {
	answer := strings.Repeat("x", 63) + "\n"
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, answer)
	}))
	defer be.Close()
	kr, err := originverify.LoadOrCreate("origin-verify", filepath.Join(b.TempDir(), "ov.keys"))
	if err != nil {
		b.Fatal(err)
	}
	cfg := config.Gateway{
		Name:   "bench-gw",
		Listen: "127.0.0.1:0",
		CORS: config.CORS{Mode: config.CORSEnforce, AllowOrigins: []string{"http://bench.example"},
			AllowMethods: []string{"GET", "POST"}, AllowHeaders: []string{"Content-Type"}},
		RequestHeaders: []config.HeaderMapping{
			{Name: "X-Origin-Verify", Value: benchTemplate(b, "${secret:origin-verify}")},
			{Name: "X-Request-Id", Value: benchTemplate(b, "${context.requestId}")},
		},
		Routes: []config.Route{{Path: "/items", Methods: []string{"GET", "POST"}, Integration: config.Integration{URL: be.URL}}},
	}
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for _, backend := range []string{"memory", "loopback"} {
		b.Run(backend, func(b *testing.B) {
			g, err := New(cfg, map[string]*originverify.Keyring{"origin-verify": kr}, logger)
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			if backend == "memory" {
				for _, rt := range g.routes {
					rt.proxy.Transport = memoryTransport{body: answer}
				}
			}
			req := httptest.NewRequest("GET", "http://api.test/items", nil)
			req.RemoteAddr = "192.0.2.1:40000"
			req.Header.Set("Origin", "http://bench.example")
			req.Header.Set("User-Agent", "wrk")
			w := &benchWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				w.status = 0
				g.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Fatalf("status %d", w.status)
				}
			}
		})
	}
}

// benchWriter is a ResponseWriter that allocates nothing per request (httptest.ResponseRecorder
// clones the header map on WriteHeader), so that allocs/op is the handler's.
type benchWriter struct {
	h      http.Header
	status int
}

func (w *benchWriter) Header() http.Header { return w.h }
func (w *benchWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *benchWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}

func benchTemplate(b *testing.B, s string) config.Template {
	tmpl, err := config.ParseTemplate(s, func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	return tmpl
}
