package lb

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
)

// dnsOnlyCert issues a server certificate that names name only: no IP SAN, so a check that
// verifies against the target's IP address fails.
func (ca *testCA) dnsOnlyCert(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// A DNS target's health checks on another port (health_check.port) verify the certificate
// against the DNS name too, as its proxied requests do: the check's address (IP:check port) is
// no registered target, and the name used to fall back to the bare IP address.
func TestHTTPSDNSTargetHealthCheckPort(t *testing.T) {
	ca := newTestCA(t)
	cert := ca.dnsOnlyCert(t, "svc.test")
	var checks atomic.Int64
	start := func(h http.HandlerFunc) *httptest.Server {
		s := httptest.NewUnstartedServer(h)
		s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.StartTLS()
		t.Cleanup(s.Close)
		return s
	}
	traffic := start(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "secure") })
	health := start(func(w http.ResponseWriter, r *http.Request) { checks.Add(1) })
	_, port, _ := net.SplitHostPort(traffic.Listener.Addr().String())
	_, hport, _ := net.SplitHostPort(health.Listener.Addr().String())
	hp, _ := strconv.Atoi(hport)

	dns := newTestDNS(t)
	dns.set("svc.test", "127.0.0.1")
	hc := testHealthCheck(20 * time.Millisecond)
	hc.Port = hp
	g := config.TargetGroup{Name: "g", Targets: []string{"svc.test:" + port}, HealthCheck: hc, Protocol: config.ProtocolHTTPS, CAFile: ca.file}
	lb, url := serve(t, forwardAll(g, ""), nil, WithResolver(dns.resolver()))
	if got := do(t, "GET", url+"/"); got.status != 200 || got.body != "secure" {
		t.Fatalf("GET = %d %q, want 200 secure (verified against svc.test)", got.status, got.body)
	}
	runHealthChecks(t, lb)
	waitFor(t, "health checks on the check port, verified against svc.test", func() bool { return checks.Load() >= 2 })
}
