package lb

import (
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
)

// tlsTarget is an HTTPS target (httptest's certificate names 127.0.0.1 and example.com) that
// counts its health checks and the requests that reached it over TLS; caFile verifies it.
type tlsTarget struct {
	srv          *httptest.Server
	caFile       string
	healthHits   atomic.Int64
	tlsRequests  atomic.Int64
	plainRequest atomic.Int64
}

func newTLSTarget(t *testing.T) *tlsTarget {
	t.Helper()
	tt := &tlsTarget{}
	tt.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			tt.plainRequest.Add(1)
		}
		if r.URL.Path == "/healthz" {
			tt.healthHits.Add(1)
			return
		}
		tt.tlsRequests.Add(1)
		io.WriteString(w, "secure")
	}))
	t.Cleanup(tt.srv.Close)
	tt.caFile = filepath.Join(t.TempDir(), "target-ca.pem")
	if err := os.WriteFile(tt.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tt.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tt
}

func (tt *tlsTarget) addr() string { return tt.srv.Listener.Addr().String() }

func TestHTTPSTargets(t *testing.T) {
	target := newTLSTarget(t)
	for _, tc := range []struct {
		name       string
		caFile     string
		serverName string
		status     int
	}{
		{"CA file, IP address verified", target.caFile, "", 200},
		{"CA file and server_name", target.caFile, "example.com", 200},
		{"server_name not in the certificate", target.caFile, "other.example", 502},
		{"no CA file: system roots do not know the target", "", "", 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := newLogRecorder(nil)
			g := config.TargetGroup{Name: "g", Targets: []string{target.addr()}, HealthCheck: testHealthCheck(20 * time.Millisecond),
				Protocol: config.ProtocolHTTPS, CAFile: tc.caFile, ServerName: tc.serverName}
			lb, url := serve(t, forwardAll(g, ""), slog.New(logs))
			got := do(t, "GET", url+"/")
			if got.status != tc.status || (tc.status == 200 && got.body != "secure") {
				t.Fatalf("GET = %d %q, want %d", got.status, got.body, tc.status)
			}
			if tc.status != 200 {
				if l := logs.find("access"); len(l) == 0 || l[0]["error_reason"] != reasonConnectError {
					t.Errorf("access log = %v, want error_reason %s (a failed handshake is a failed connection)", l, reasonConnectError)
				}
				return
			}
			// Health checks go over HTTPS too.
			before := target.healthHits.Load()
			runHealthChecks(t, lb)
			waitFor(t, "health checks over HTTPS", func() bool { return target.healthHits.Load() >= before+2 })
			if !lb.TargetHealth()["g"][target.addr()] {
				t.Error("the HTTPS target is not healthy")
			}
		})
	}
	if n := target.plainRequest.Load(); n != 0 {
		t.Errorf("%d requests reached the HTTPS target without TLS", n)
	}
}

func TestHTTPSTargetHealthCheckFails(t *testing.T) {
	target := newTLSTarget(t)
	// Without the CA the checks fail their handshakes, so the target turns unhealthy.
	g := config.TargetGroup{Name: "g", Targets: []string{target.addr()}, HealthCheck: testHealthCheck(20 * time.Millisecond), Protocol: config.ProtocolHTTPS}
	lb, _ := serve(t, forwardAll(g, ""), nil)
	runHealthChecks(t, lb)
	waitFor(t, "unverifiable target unhealthy", func() bool { return !lb.TargetHealth()["g"][target.addr()] })
}

// An HTTPS target named by DNS is verified against that name: httptest's certificate names
// example.com, not other.test, though both resolve to it.
func TestHTTPSTargetVerifiedAgainstDNSName(t *testing.T) {
	target := newTLSTarget(t)
	_, port, _ := net.SplitHostPort(target.addr())
	dns := newTestDNS(t)
	dns.set("example.com", "127.0.0.1")
	dns.set("other.test", "127.0.0.1")
	for _, tc := range []struct {
		name   string
		status int
	}{{"example.com", 200}, {"other.test", 502}} {
		g := config.TargetGroup{Name: "g", Targets: []string{tc.name + ":" + port}, HealthCheck: testHealthCheck(time.Hour), Protocol: config.ProtocolHTTPS, CAFile: target.caFile}
		_, url := serve(t, forwardAll(g, ""), nil, WithResolver(dns.resolver()))
		if got := do(t, "GET", url+"/"); got.status != tc.status {
			t.Errorf("target %s: %d %q, want %d", tc.name, got.status, got.body, tc.status)
		}
	}
}
