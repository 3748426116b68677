package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"
)

// TestJWKSIgnoresProxyEnv fetches a JWKS with HTTP_PROXY and HTTPS_PROXY pointing at a server of
// the test's: the fetch must not go through it. net/http reads the proxy variables once per
// process, so the check runs in a child test process that starts with them set.
func TestJWKSIgnoresProxyEnv(t *testing.T) {
	if os.Getenv("RAMPART_JWKS_PROXY_CHILD") != "" {
		src, err := newJWKSSource("", "http://jwks.invalid/.well-known/jwks.json", time.Minute, 2*time.Second, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if err := src.load(context.Background()); err == nil {
			t.Fatal("JWKS fetched from jwks.invalid: it went through the proxy of the environment")
		}
		return
	}
	var hits atomic.Int64
	proxySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	defer proxySrv.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestJWKSIgnoresProxyEnv$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RAMPART_JWKS_PROXY_CHILD=1",
		"HTTP_PROXY="+proxySrv.URL, "HTTPS_PROXY="+proxySrv.URL, "http_proxy="+proxySrv.URL, "NO_PROXY=", "no_proxy=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the proxy of the environment got %d JWKS requests, want 0", n)
	}
}
