package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lbCA issues the test's certificates and writes them as PEM files into dir.
type lbCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
	pool *x509.CertPool
}

func newLBCA(t *testing.T, dir string) *lbCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &lbCA{cert: cert, key: key, dir: dir, pool: x509.NewCertPool()}
	ca.pool.AddCert(cert)
	return ca
}

// issue writes name.pem and name.key, a server certificate for name.
func (ca *lbCA) issue(t *testing.T, name string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	for file, block := range map[string]*pem.Block{name + ".pem": {Type: "CERTIFICATE", Bytes: der}, name + ".key": {Type: "PRIVATE KEY", Bytes: kder}} {
		if err := os.WriteFile(filepath.Join(ca.dir, file), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// rawResponses writes raw on conn and reads responses until the connection ends (at most two).
func rawResponses(t *testing.T, c net.Conn, raw string) []*http.Response {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	var out []*http.Response
	for range 2 {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			break
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, resp)
	}
	return out
}

// TestLBEdge runs the binary with a gateway and a load balancer on free ports: the gateway's
// listener has the desync guard, the HTTPS listener picks its certificate by SNI, speaks HTTP/2
// and is guarded too, and the HTTP listener redirects to it.
func TestLBEdge(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		fmt.Fprintf(w, "app %s proto=%s", r.URL.Path, r.Header.Get("X-Forwarded-Proto"))
	}))
	t.Cleanup(app.Close)
	dir := t.TempDir()
	ca := newLBCA(t, dir)
	for _, n := range []string{"default.test", "a.test", "b.test"} {
		ca.issue(t, n)
	}
	gw, https, http1 := freePort(t), freePort(t), freePort(t)
	_, httpsPort, _ := net.SplitHostPort(https)
	cfg := fmt.Sprintf(`version: 1
gateways:
  - name: gw
    listen: %[1]s
    routes:
      - {path: /items, methods: [GET, POST], integration: {url: "%[4]s"}}
      - {path: /smuggled, methods: [GET], integration: {url: "%[4]s"}}
load_balancers:
  - name: alb
    listeners:
      - listen: %[2]s
        tls:
          cert_file: default.test.pem
          key_file: default.test.key
          certificates:
            - {cert_file: a.test.pem, key_file: a.test.key}
            - {cert_file: b.test.pem, key_file: b.test.key}
        default_action: {forward: {target_group: app}}
      - listen: %[3]s
        default_action: {redirect: {protocol: HTTPS, port: "%[5]s", status_code: 301}}
    target_groups:
      - name: app
        targets: ["%[6]s"]
        health_check: {path: /healthz, interval: 1s, timeout: 500ms, healthy_threshold: 2, unhealthy_threshold: 2}
`, gw, https, http1, app.URL, httpsPort, app.Listener.Addr().String())
	if err := os.WriteFile(filepath.Join(dir, "edge.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(binary, "validate", "-c", filepath.Join(dir, "edge.yaml")).CombinedOutput(); err != nil {
		t.Fatalf("rampart validate: %v\n%s", err, out)
	}
	p := start(t, dir, "run", "-c", "edge.yaml")
	waitHTTP(t, p, "http://"+gw+"/nothing")
	// The redirect listener's answer points at the HTTPS one, whose certificate names no IP:
	// wait for the redirect itself.
	noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	eventually(t, 30*time.Second, func() error {
		resp, err := noFollow.Get("http://" + http1 + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})

	t.Run("gateway desync guard", func(t *testing.T) {
		smuggled := "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
		for _, tt := range []struct {
			name, raw string
			status    int
		}{
			{"both TE and CL", "POST /items HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 200},
			{"different Content-Lengths", "POST /items HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy" + smuggled, 400},
		} {
			c, err := net.Dial("tcp", gw)
			if err != nil {
				t.Fatal(err)
			}
			got := rawResponses(t, c, tt.raw)
			c.Close()
			if len(got) != 1 || got[0].StatusCode != tt.status || !got[0].Close {
				t.Errorf("%s: %d responses %v, want one %d with Connection: close", tt.name, len(got), got, tt.status)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, p := range paths {
			if p == "/smuggled" {
				t.Error("the smuggled request reached the backend")
			}
		}
	})

	t.Run("SNI", func(t *testing.T) {
		for _, tt := range []struct{ sni, want string }{{"a.test", "a.test"}, {"b.test", "b.test"}, {"unknown.test", "default.test"}} {
			c, err := tls.Dial("tcp", https, &tls.Config{ServerName: tt.sni, InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := c.ConnectionState().PeerCertificates[0].Subject.CommonName; got != tt.want {
				t.Errorf("SNI %s: certificate %s, want %s", tt.sni, got, tt.want)
			}
			c.Close()
		}
		if _, err := tls.Dial("tcp", https, &tls.Config{ServerName: "a.test", RootCAs: ca.pool, MaxVersion: tls.VersionTLS11}); err == nil {
			t.Error("TLS 1.1 accepted")
		}
	})

	t.Run("HTTP/2", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: "a.test", RootCAs: ca.pool}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + https + "/h2")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || string(body) != "app /h2 proto=https" {
			t.Errorf("%s %q, want HTTP/2 and the app's answer", resp.Proto, body)
		}
	})

	t.Run("HTTPS listener desync guard", func(t *testing.T) {
		c, err := tls.Dial("tcp", https, &tls.Config{ServerName: "a.test", RootCAs: ca.pool, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		got := rawResponses(t, c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxyGET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if len(got) != 1 || got[0].StatusCode != 400 {
			t.Errorf("%d responses %v, want one 400", len(got), got)
		}
	})

	t.Run("HTTP to HTTPS redirect", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+http1+"/shop/item%201?id=7&x=y", nil)
		req.Host = "shop.test"
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := "https://shop.test:" + httpsPort + "/shop/item%201?id=7&x=y"
		if resp.StatusCode != 301 || resp.Header.Get("Location") != want {
			t.Errorf("redirect %d %q, want 301 %q", resp.StatusCode, resp.Header.Get("Location"), want)
		}
	})
	if strings.Contains(p.output(), "panic") {
		t.Errorf("the process panicked:\n%s", p.output())
	}
}
