package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
)

// BenchmarkProxyServeHTTP measures the proxy's own per-request work (rewrite, forwarded headers,
// copying the response) against an in-process backend, without the client's network round trip.
func BenchmarkProxyServeHTTP(b *testing.B) {
	body := strings.Repeat("x", 64)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	defer be.Close()
	u, _ := url.Parse(be.URL)
	tr, _ := NewTransport("")
	p := New(Options{Transport: tr, Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		SetForwarded(pr, true)
	}})
	req := httptest.NewRequest("GET", "http://edge.example/items", nil)
	req.RemoteAddr = "127.0.0.1:40000"
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		p.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
	}
}
