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
	"errors"
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
	"testing"
	"time"
)

// gwEdgeCert writes a self-signed certificate for 127.0.0.1 into dir and returns its pool.
func gwEdgeCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rampart-e2e"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("gw.crt", "CERTIFICATE", der)
	write("gw.key", "EC PRIVATE KEY", kder)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// startEdgeGateway writes cfg (with %LISTEN% and %BACKEND% filled) and runs `rampart gateway`.
func startEdgeGateway(t *testing.T, dir, cfg string) (addr string, p *proc) {
	t.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend saw %s", r.Proto)
	}))
	t.Cleanup(backend.Close)
	addr = freePort(t)
	cfg = strings.NewReplacer("%LISTEN%", addr, "%BACKEND%", backend.URL).Replace(cfg)
	if err := os.WriteFile(filepath.Join(dir, "gw.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return addr, start(t, dir, "gateway", "-c", "gw.yaml")
}

// The gateway serves HTTPS from certificate files, with HTTP/2 for clients that offer it and
// HTTP/1.1 for the others.
func TestGatewayHTTPSAndHTTP2(t *testing.T) {
	dir := t.TempDir()
	pool := gwEdgeCert(t, dir)
	addr, p := startEdgeGateway(t, dir, `version: 1
gateways:
  - name: tls-api
    listen: %LISTEN%
    tls: {cert_file: gw.crt, key_file: gw.key}
    routes: [{path: /items, methods: [GET], integration: {url: "%BACKEND%"}}]
`)
	h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	h1 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}}}
	url := "https://" + addr + "/items"
	eventually(t, 60*time.Second, func() error {
		select {
		case <-p.done:
			t.Fatalf("rampart exited: %s", p.output())
		default:
		}
		res, err := h2.Get(url)
		if err != nil {
			return err
		}
		res.Body.Close()
		return nil
	})
	for _, tc := range []struct {
		name  string
		c     *http.Client
		major int
	}{{"h2", h2, 2}, {"http/1.1", h1, 1}} {
		res, err := tc.c.Get(url)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || res.ProtoMajor != tc.major || res.TLS == nil || !strings.HasPrefix(string(body), "backend saw") {
			t.Fatalf("%s: %d proto %s body %q", tc.name, res.StatusCode, res.Proto, body)
		}
		if res.Header.Get("X-Request-Id") == "" {
			t.Fatalf("%s: no request id", tc.name)
		}
	}
	// Plain HTTP on the TLS port gets nothing useful.
	if r, err := tryDo("GET", "http://"+addr+"/items", ""); err == nil && r.status == 200 {
		t.Fatal("plain HTTP was served on the TLS listener")
	}
}

// A client that sends its headers slower than read_header_timeout has its connection closed; an
// idle keep-alive connection is closed after idle_timeout; headers over max_header_bytes get 431
// whether the gateway or net/http sees them first.
func TestGatewayListenerLimits(t *testing.T) {
	dir := t.TempDir()
	addr, p := startEdgeGateway(t, dir, `version: 1
gateways:
  - name: slow-api
    listen: %LISTEN%
    cors: {allow_origins: ["http://ok.test"]}
    read_header_timeout: 500ms
    read_timeout: 2s
    idle_timeout: 700ms
    max_header_bytes: 4096
    routes: [{path: /items, methods: [GET, POST], integration: {url: "%BACKEND%"}}]
`)
	waitHTTP(t, p, "http://"+addr+"/nothing")

	t.Run("slowloris", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		if _, err := io.WriteString(c, "GET /items HTTP/1.1\r\nHost: x\r\n"); err != nil {
			t.Fatal(err)
		}
		// One header line every 150ms, never the blank line that ends the headers.
		closed := make(chan time.Duration, 1)
		go func() {
			buf := make([]byte, 1024)
			for {
				if _, err := c.Read(buf); err != nil {
					closed <- time.Since(start)
					return
				}
			}
		}()
		for i := 0; ; i++ {
			select {
			case d := <-closed:
				if d < 400*time.Millisecond || d > 3*time.Second {
					t.Fatalf("closed after %s; read_header_timeout is 500ms", d)
				}
				return
			case <-time.After(150 * time.Millisecond):
			}
			if _, err := fmt.Fprintf(c, "X-Slow-%d: 1\r\n", i); err != nil {
				// The server closed it and the write noticed first: the close must still have
				// come from the header timeout, not from refusing the slow client at once.
				if d := time.Since(start); d < 400*time.Millisecond {
					t.Fatalf("connection closed after %s, before read_header_timeout (500ms)", d)
				}
				return
			}
			if time.Since(start) > 10*time.Second {
				t.Fatal("a slow client held the connection for 10s")
			}
		}
	})

	t.Run("idle keep-alive", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := io.WriteString(c, "GET /items HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%v %v", res, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		idle := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = br.ReadByte()
		if d := time.Since(idle); err == nil || errors.Is(err, os.ErrDeadlineExceeded) || d < 500*time.Millisecond || d > 5*time.Second {
			t.Fatalf("idle connection: %v after %s; idle_timeout is 700ms", err, d)
		}
	})

	t.Run("max_header_bytes", func(t *testing.T) {
		for _, size := range []int{5000, 20000} {
			r := do(t, "GET", "http://"+addr+"/items", "", "Origin", "http://ok.test", "X-Big", strings.Repeat("b", size))
			if r.status != 431 {
				t.Fatalf("%d-byte header: %d, want 431", size, r.status)
			}
			if size == 5000 && (r.header.Get("Access-Control-Allow-Origin") != "http://ok.test" || !strings.Contains(r.body, "Request Header Fields Too Large")) {
				t.Fatalf("the gateway's 431 lacks its JSON body or CORS headers: %v %s", r.header, r.body)
			}
		}
		if r := do(t, "GET", "http://"+addr+"/items", "", "X-Big", strings.Repeat("b", 3000)); r.status != 200 {
			t.Fatalf("headers under the limit: %d", r.status)
		}
	})
}

// `rampart validate` reports the gateway's new keys' mistakes with file:line, and accepts the
// example that uses all of them.
func TestValidateGatewayEdgeConfig(t *testing.T) {
	dir := t.TempDir()
	bad := `version: 1
gateways:
  - name: api
    listen: 127.0.0.1:0
    max_header_bytes: 10
    read_timeout: 0s
    gateway_responses:
      THROTLED: {status: 429}
      DEFAULT_5XX: {status: 404}
    routes:
      - path: "/v1/items/{id}"
        methods: [GET]
        integration: {url: "http://127.0.0.1:1", path: "/items/{idd}"}
        request_validation:
          body_schema: {type: objekt}
`
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary, "validate", "-c", filepath.Join(dir, "bad.yaml")).CombinedOutput()
	if err == nil {
		t.Fatalf("validate accepted a bad file:\n%s", out)
	}
	for _, want := range []string{
		"bad.yaml:5:", "max_header_bytes",
		"bad.yaml:6:", "read_timeout",
		"bad.yaml:8:", `did you mean "THROTTLED"`,
		"bad.yaml:9:", "DEFAULT_5XX cannot set a status",
		"bad.yaml:13:", `did you mean "id"`,
		"bad.yaml:15:", "invalid schema",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
	out, err = exec.Command(binary, "validate", "-c", "../examples/api-gateway.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("examples/api-gateway.yaml: %v\n%s", err, out)
	}
}
