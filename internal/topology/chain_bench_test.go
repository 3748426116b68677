package topology

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/observe"
)

// BenchmarkChainAllInOne is bench/chain.sh's all-in-one configuration without wrk and without
// process boundaries: client → gateway → load balancer → backend over loopback in this process,
// with the default security on (CORS enforce with an allowed Origin, origin-verify injection at
// the gateway, the gateway-only web ACL at the load balancer, round robin) and logs at warn, as
// bench/rampart-chain.yaml runs. allocs/op and B/op count the whole request: the client, both
// Rampart hops and the backend (BenchmarkChainBackendOnly is the client + backend share, to
// subtract). gc/10k-req is the number of GC cycles per 10 000 requests and heap-MiB the heap in
// use at the end: rerun with GOGC=200 or 400 to see what a less eager collector changes.
//
//	go test -run '^$' -bench Chain -benchmem ./internal/topology/
func BenchmarkChainAllInOne(b *testing.B) {
	be := newBenchBackend(b)
	url := startBenchChain(b, be.Listener.Addr().String(), nil, false)
	b.Run("get64", func(b *testing.B) { benchRequests(b, url, "", false) })
	b.Run("post4k", func(b *testing.B) { benchRequests(b, url, benchPostBody, false) })
	b.Run("get64-parallel", func(b *testing.B) { benchRequests(b, url, "", true) })
	// As `rampart run` serves: with the Prometheus metrics every serving command turns on.
	withMetrics := startBenchChain(b, be.Listener.Addr().String(), observe.NewMetrics(), false)
	b.Run("get64-metrics", func(b *testing.B) { benchRequests(b, withMetrics, "", false) })
	// The gateway → load balancer hop over a loopback connection (rampart run --loopback-hop), as
	// between two processes, instead of in-process.
	loopback := startBenchChain(b, be.Listener.Addr().String(), nil, true)
	b.Run("get64-loopback", func(b *testing.B) { benchRequests(b, loopback, "", false) })
	b.Run("post4k-loopback", func(b *testing.B) { benchRequests(b, loopback, benchPostBody, false) })
}

// BenchmarkChainBackendOnly is the client and backend share of BenchmarkChainAllInOne: the same
// requests straight to the backend.
func BenchmarkChainBackendOnly(b *testing.B) {
	be := newBenchBackend(b)
	url := be.URL + "/items"
	b.Run("get64", func(b *testing.B) { benchRequests(b, url, "", false) })
	b.Run("post4k", func(b *testing.B) { benchRequests(b, url, benchPostBody, false) })
}

var benchPostBody = `{"name":"bench","note":"` + strings.Repeat("a", 4070) + `"}`

// newBenchBackend is bench/backend: a 64-byte answer after reading the whole body.
func newBenchBackend(b *testing.B) *httptest.Server {
	answer := []byte(strings.Repeat("x", 63) + "\n")
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(answer)
	}))
	b.Cleanup(be.Close)
	return be
}

// benchFreePort returns a loopback port that was free a moment ago.
func benchFreePort(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startBenchChain serves bench/rampart-chain.yaml's topology (gateway and load balancer in one
// topology, on free ports) in front of backend, and returns the gateway's URL.
func startBenchChain(b *testing.B, backend string, metrics *observe.Metrics, loopbackHop bool) string {
	gw, lbAddr := benchFreePort(b), benchFreePort(b)
	yaml := fmt.Sprintf(`version: 1
secrets:
  origin-verify:
    file: "%[1]s/origin-verify.keys"
gateways:
  - name: bench-gw
    listen: %[2]s
    cors:
      mode: enforce
      allow_origins: ["http://bench.example"]
      allow_methods: [GET, POST]
      allow_headers: [Content-Type]
    request_headers:
      X-Origin-Verify: "${secret:origin-verify}"
      X-Request-Id: "${context.requestId}"
    routes:
      - {path: /items, methods: [GET, POST], integration: {url: "http://%[3]s"}}
load_balancers:
  - name: bench-lb
    listeners:
      - listen: %[3]s
        web_acl: gateway-only
        rules:
          - priority: 10
            conditions: {path: ["/items"]}
            action: {forward: {target_group: backend}}
        default_action: {fixed_response: {status: 404}}
    target_groups:
      - name: backend
        algorithm: round_robin
        targets: ["%[4]s"]
        health_check: {path: /healthz, interval: 5s, timeout: 2s, healthy_threshold: 2, unhealthy_threshold: 2}
web_acls:
  - name: gateway-only
    default_action: allow
    rules:
      - name: require-origin-verify
        priority: 0
        action: block
        statement: {not: {origin_verify: {header: X-Origin-Verify, secret: origin-verify}}}
`, b.TempDir(), gw, lbAddr, backend)
	cfg, err := config.Parse("bench.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	sel := Selection{Kinds: map[Kind]bool{KindGateway: true, KindLB: true}}
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	topo, err := Build(ctx, cfg, sel, Options{Logger: logger, Metrics: metrics, LoopbackHop: loopbackHop})
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	if err := topo.Listen(); err != nil {
		cancel()
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- topo.Serve(ctx, time.Second) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Serve: %v", err)
		}
	})
	return "http://" + gw + "/items"
}

// benchRequests sends b.N requests (GET, or POST with body) with an allowed Origin over
// keep-alive connections, one at a time or from GOMAXPROCS×4 goroutines, and reports GC cycles
// per 10 000 requests and the heap in use at the end.
func benchRequests(b *testing.B, url, body string, parallel bool) {
	tr := &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	do := func() error {
		method := http.MethodGet
		var rd io.Reader
		if body != "" {
			method, rd = http.MethodPost, strings.NewReader(body)
		}
		req, err := http.NewRequest(method, url, rd)
		if err != nil {
			return err
		}
		req.Header.Set("Origin", "http://bench.example")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	}
	// Warm up: connection pools filled, the heap sized.
	for range 200 {
		if err := do(); err != nil {
			b.Fatal(err)
		}
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	gcCPU := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/user:cpu-seconds"}}
	metrics.Read(gcCPU)
	gcBefore, userBefore := gcCPU[0].Value.Float64(), gcCPU[1].Value.Float64()
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := do(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		for i := 0; i < b.N; i++ {
			if err := do(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	metrics.Read(gcCPU)
	b.ReportMetric(float64(after.NumGC-before.NumGC)*10000/float64(b.N), "gc/10k-req")
	// CPU time, not wall-clock: the runtime's estimate of the GC's share (mark assists, workers,
	// pauses) and of the program's own, per request; steadier than ns/op on a busy machine.
	gcSec, userSec := gcCPU[0].Value.Float64()-gcBefore, gcCPU[1].Value.Float64()-userBefore
	b.ReportMetric(gcSec*1e6/float64(b.N), "gc-cpu-µs/req")
	b.ReportMetric(userSec*1e6/float64(b.N), "user-cpu-µs/req")
	b.ReportMetric(float64(after.HeapInuse)/(1<<20), "heap-MiB")
}
