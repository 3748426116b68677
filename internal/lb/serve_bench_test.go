package lb

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/originverify"
	"github.com/rampart-edge/rampart/internal/waf"
)

// memoryTransport answers every request with a fixed 64-byte 200 without a network: what is left
// in allocs/op is the load balancer's own work plus ReverseProxy's (and this fake response).
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

// BenchmarkLBServeHTTP runs whole requests through a listener's handler with
// bench/rampart-chain.yaml's load balancer (gateway-only web ACL verifying X-Origin-Verify, a
// path rule, a round-robin group, logs at warn): "memory" answers from an in-memory RoundTripper,
// so that allocs/op is the load balancer and ReverseProxy alone; "loopback" calls a real target.
// The listener's desync guard sees no connection here: BenchmarkChainAllInOne in
// internal/topology has it.
//
//	go test -run '^$' -bench LBServeHTTP -benchmem ./internal/lb/
func BenchmarkLBServeHTTP(b *testing.B) {
	answer := strings.Repeat("x", 63) + "\n"
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, answer)
	}))
	defer be.Close()
	const secret = "bench-origin-verify-secret-0123456789abcdef"
	kr, err := originverify.Parse("origin-verify", []byte(`{"version":1,"keys":[{"id":"k1","secret":"`+secret+`","state":"current"}]}`))
	if err != nil {
		b.Fatal(err)
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
		b.Fatal(err)
	}
	cfg := config.LoadBalancer{
		Name: "bench-lb",
		Listeners: []config.Listener{{
			Listen: "127.0.0.1:0", WebACL: "gateway-only",
			Rules: []config.Rule{{Priority: 10, Conditions: config.Conditions{Path: []string{"/items"}},
				Action: config.Action{Forward: &config.Forward{TargetGroup: "backend"}}}},
			DefaultAction: config.Action{FixedResponse: &config.FixedResponse{Status: 404}},
		}},
		TargetGroups: []config.TargetGroup{{Name: "backend", Algorithm: config.RoundRobin,
			HealthCheck: testHealthCheck(5 * time.Second), Targets: []string{strings.TrimPrefix(be.URL, "http://")}}},
	}
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for _, backend := range []string{"memory", "loopback"} {
		b.Run(backend, func(b *testing.B) {
			lb, err := New(cfg, map[string]*waf.WebACL{"gateway-only": acl}, logger)
			if err != nil {
				b.Fatal(err)
			}
			defer lb.Close()
			if backend == "memory" {
				for _, g := range lb.groups {
					g.proxy.Transport = memoryTransport{body: answer}
				}
			}
			h := lb.Handler(0)
			// What the gateway sends: its forwarding headers, request id and the secret.
			req := httptest.NewRequest("GET", "http://127.0.0.1:9111/items", nil)
			req.RemoteAddr = "127.0.0.1:40000"
			for k, v := range map[string]string{
				"Origin": "http://bench.example", "User-Agent": "wrk", "X-Origin-Verify": secret,
				"X-Request-Id": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "X-Forwarded-For": "127.0.0.1",
				"X-Forwarded-Host": "127.0.0.1:9110", "X-Forwarded-Proto": "http", "X-Forwarded-Port": "9110",
			} {
				req.Header.Set(k, v)
			}
			w := &benchWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				w.status = 0
				r := req.Clone(req.Context()) // the pipeline sets the trace header on the request
				h.ServeHTTP(w, r)
				if w.status != http.StatusOK {
					b.Fatalf("status %d", w.status)
				}
			}
		})
	}
}

// benchWriter is a ResponseWriter that allocates nothing per request, so that allocs/op is the
// handler's.
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
