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

// BenchmarkHop compares the two ways a gateway reaches a load balancer: a loopback connection
// through the tuned Transport (two processes, or `rampart run --loopback-hop`), and InProcess
// (`rampart run`). The handler answers 64 bytes; each iteration is one whole request, read to the
// end. Run with -cpu 1 to compare CPU cost per request on one core.
func BenchmarkHop(b *testing.B) {
	body := strings.Repeat("x", 64)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	tr, _ := NewTransport("")
	defer tr.CloseIdleConnections()
	var local LocalHandlers
	if err := local.Add(srv.Listener.Addr().String(), h); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		rt   http.RoundTripper
	}{{"loopback", tr}, {"in-process", local.Transport(u, tr, nil)}} {
		for _, post := range []bool{false, true} {
			name := c.name + "/get64"
			if post {
				name = c.name + "/post4k"
			}
			b.Run(name, func(b *testing.B) {
				payload := strings.Repeat("p", 4096)
				b.ReportAllocs()
				for b.Loop() {
					req, _ := http.NewRequest("GET", srv.URL+"/items", nil)
					if post {
						req, _ = http.NewRequest("POST", srv.URL+"/items", strings.NewReader(payload))
					}
					res, err := c.rt.RoundTrip(req)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, res.Body)
					_ = res.Body.Close()
				}
			})
		}
	}
}
