package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/rampart-edge/rampart/internal/ratelimit/redistest"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Two gateway processes that share one Redis admit the configured limit together, not twice it.
func TestTwoGatewayProcessesShareRedisLimit(t *testing.T) {
	srv := redistest.Start(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	t.Cleanup(backend.Close)
	dir := t.TempDir()
	a, b := freePort(t), freePort(t)
	gw := func(name, listen string) string {
		return fmt.Sprintf(`  - name: %s
    listen: %s
    rate_limit_store: "%s"
    on_store_error: deny
    throttle: [{rate: 0.001, burst: 10}]
    routes:
      - {path: /items, methods: [GET], integration: {url: "%s"}}
`, name, listen, srv.URL(), backend.URL)
	}
	// Two replicas: the same gateway (buckets are per gateway name) on two addresses, as two
	// hosts would run it.
	for i, addr := range []string{a, b} {
		cfg := "version: 1\ngateways:\n" + gw("public-api", addr)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("replica%d.yaml", i)), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pa := start(t, dir, "gateway", "-c", "replica0.yaml")
	pb := start(t, dir, "gateway", "-c", "replica1.yaml")
	// waitHTTP's probe is a request too: it goes to /healthz-less paths that 404 before any
	// throttle, so it spends no token.
	waitHTTP(t, pa, "http://"+a+"/nothing")
	waitHTTP(t, pb, "http://"+b+"/nothing")
	admitted := map[string]int{}
	for i := range 30 {
		addr := a
		if i%2 == 1 {
			addr = b
		}
		r := do(t, "GET", "http://"+addr+"/items", "")
		switch r.status {
		case 200:
			admitted[addr]++
		case 429:
			if r.header.Get("Retry-After") == "" || r.header.Get("RateLimit-Remaining") != "0" {
				t.Fatalf("429 headers %v", r.header)
			}
		default:
			t.Fatalf("status %d %s", r.status, r.body)
		}
	}
	if admitted[a]+admitted[b] != 10 || admitted[a] == 0 || admitted[b] == 0 {
		t.Fatalf("admitted %v: want 10 in all, from both processes", admitted)
	}
}
