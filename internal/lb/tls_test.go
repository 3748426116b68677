package lb

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/desync"
)

// testCA signs certificates for tests and writes them as PEM files.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
	file string // the CA certificate, PEM
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, dir: t.TempDir(), pool: x509.NewCertPool()}
	ca.pool.AddCert(cert)
	ca.file = filepath.Join(ca.dir, "ca.pem")
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// leaf issues a server certificate for names (and 127.0.0.1) and returns its PEM files.
func (ca *testCA) leaf(t *testing.T, names ...string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(ca.dir, names[0]+".pem"), filepath.Join(ca.dir, names[0]+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", kder)
	return certFile, keyFile
}

func writePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// serveTLS serves the load balancer's first listener over HTTPS with ListenerTLSConfig, the way
// the topology does: TLS listener, then the listener's desync guard. It returns the address.
func serveTLS(t *testing.T, cfg config.LoadBalancer) string {
	t.Helper()
	tc, err := ListenerTLSConfig(cfg.Listeners[0].TLS)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := lb.Handler(0)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(h.(desync.ListenerWrapper).WrapListener(tls.NewListener(ln, tc)))
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
		lb.Close()
	})
	return ln.Addr().String()
}

func TestHTTPSListener(t *testing.T) {
	ca := newTestCA(t)
	defCert, defKey := ca.leaf(t, "default.example.com")
	aCert, aKey := ca.leaf(t, "a.example.com")
	bCert, bKey := ca.leaf(t, "b.example.com", "*.b.example.com")
	be := newBackend(t, "app", "127.0.0.1:0")
	cfg := forwardAll(group("g", be), "")
	cfg.Listeners[0].TLS = &config.ListenerTLS{
		CertFile: defCert, KeyFile: defKey,
		Certificates: []config.TLSCertificate{{CertFile: aCert, KeyFile: aKey}, {CertFile: bCert, KeyFile: bKey}},
	}
	addr := serveTLS(t, cfg)

	t.Run("SNI", func(t *testing.T) {
		for _, tt := range []struct{ sni, want string }{
			{"a.example.com", "a.example.com"},
			{"b.example.com", "b.example.com"},
			{"x.b.example.com", "b.example.com"},
			{"unknown.example.net", "default.example.com"},
			{"", "default.example.com"}, // no SNI at all (an IP address)
		} {
			c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: tt.sni, InsecureSkipVerify: tt.sni == "", RootCAs: ca.pool, VerifyConnection: func(tls.ConnectionState) error { return nil }})
			if err != nil && tt.sni != "unknown.example.net" {
				t.Fatalf("SNI %q: %v", tt.sni, err)
			}
			if tt.sni == "unknown.example.net" {
				// The default certificate does not name it: verification fails, as it should.
				c, err = tls.Dial("tcp", addr, &tls.Config{ServerName: tt.sni, InsecureSkipVerify: true})
				if err != nil {
					t.Fatal(err)
				}
			}
			if got := c.ConnectionState().PeerCertificates[0].Subject.CommonName; got != tt.want {
				t.Errorf("SNI %q: certificate %s, want %s", tt.sni, got, tt.want)
			}
			c.Close()
		}
	})

	t.Run("old TLS refused", func(t *testing.T) {
		_, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "a.example.com", RootCAs: ca.pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		if err == nil {
			t.Fatal("a TLS 1.1 client was accepted")
		}
		c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "a.example.com", RootCAs: ca.pool, MaxVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatalf("TLS 1.2 (the default minimum) refused: %v", err)
		}
		c.Close()
	})

	t.Run("HTTP/2 and HTTP/1.1", func(t *testing.T) {
		for _, h2 := range []bool{true, false} {
			tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: "a.example.com", RootCAs: ca.pool}, ForceAttemptHTTP2: h2}
			if !h2 {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addr + "/x")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			tr.CloseIdleConnections()
			want := map[bool]int{true: 2, false: 1}[h2]
			if resp.ProtoMajor != want || resp.StatusCode != 200 || string(body) != "app" {
				t.Errorf("h2=%v: %s %d %q, want HTTP/%d 200 \"app\"", h2, resp.Proto, resp.StatusCode, body, want)
			}
			be.mu.Lock()
			proto := be.lastHeader.Get("X-Forwarded-Proto")
			be.mu.Unlock()
			if proto != "https" {
				t.Errorf("h2=%v: X-Forwarded-Proto %q, want https (Request.TLS must survive the guard)", h2, proto)
			}
		}
	})

	// The HTTPS listener has the desync guard too: it classifies the plaintext after TLS.
	t.Run("desync guard", func(t *testing.T) {
		for _, tt := range []struct {
			name, raw string
			status    int
		}{
			{"both TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 200},
			{"different Content-Lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", 400},
		} {
			c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "a.example.com", RootCAs: ca.pool, NextProtos: []string{"http/1.1"}})
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, tt.raw+"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
			r := bufio.NewReader(c)
			resp, body := readResponse(r)
			if resp == nil || resp.StatusCode != tt.status || !resp.Close {
				t.Errorf("%s over TLS: %v %q, want %d with Connection: close", tt.name, resp, body, tt.status)
			}
			if next, _ := readResponse(r); next != nil {
				t.Errorf("%s over TLS: the pipelined request was served", tt.name)
			}
			c.Close()
		}
	})
}

func TestHTTPSListenerMinVersion13(t *testing.T) {
	ca := newTestCA(t)
	cert, key := ca.leaf(t, "a.example.com")
	cfg := config.LoadBalancer{Name: "alb", Listeners: []config.Listener{{
		TLS:           &config.ListenerTLS{Certificates: []config.TLSCertificate{{CertFile: cert, KeyFile: key}}, MinVersion: config.TLSVersion13},
		DefaultAction: fixed(200, "ok"),
	}}}
	addr := serveTLS(t, cfg)
	if _, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "a.example.com", RootCAs: ca.pool, MaxVersion: tls.VersionTLS12}); err == nil {
		t.Error("a TLS 1.2 client was accepted with min_version 1.3")
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "a.example.com", RootCAs: ca.pool})
	if err != nil {
		t.Fatalf("TLS 1.3 refused: %v", err)
	}
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("version %x, want TLS 1.3", v)
	}
	c.Close()
}

func TestListenerTLSConfigErrors(t *testing.T) {
	ca := newTestCA(t)
	cert, key := ca.leaf(t, "a.example.com")
	for _, tt := range []struct {
		name string
		tls  config.ListenerTLS
		want string
	}{
		{"no certificate", config.ListenerTLS{}, "no certificate"},
		{"missing SNI certificate", config.ListenerTLS{CertFile: cert, KeyFile: key, Certificates: []config.TLSCertificate{{CertFile: "/nonexistent.pem", KeyFile: key}}}, "certificates[0]"},
		{"bad version", config.ListenerTLS{CertFile: cert, KeyFile: key, MinVersion: "1.1"}, "min_version"},
		// Without cert_file the list's own index is reported, not the index after the default.
		{"missing second certificate of the list", config.ListenerTLS{Certificates: []config.TLSCertificate{{CertFile: cert, KeyFile: key}, {CertFile: "/nonexistent.pem", KeyFile: key}}}, "certificates[1]"},
	} {
		if _, err := ListenerTLSConfig(&tt.tls); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tt.name, err, tt.want)
		}
	}
}
