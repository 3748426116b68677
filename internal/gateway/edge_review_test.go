package gateway

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
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/originverify"
)

// A path segment that a backend reads as ".." once it drops a ";params" suffix (Tomcat, Jetty,
// Spring) or reads "\" as "/" (IIS, some Node and Python servers) would let a client climb out
// of the backend prefix a route (or its integration.path) puts it under. Such paths are refused
// like a plain "..", before any backend sees them.
func TestPathDotSegmentVariantsRefused(t *testing.T) {
	f, _ := edgeFixture(t, integrationYAML, nil)
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/v1/items/..;", 400},
		{"/v1/items/..;jsessionid=x", 400},
		{"/v1/items/%2e%2e;x", 400},
		{"/v1/items/..%5Cadmin", 400},
		{"/v1/items/a%5C..%5C..%5Cadmin", 400},
		{"/v1/items/..%3B", 400}, // url.URL writes ";" unescaped: the backend sees "..;"
		{"/v1/items/..%00.txt", 400},
		{"/v1/things/..;/x", 400}, // refused before routing, whatever the shape
		{"/v1/items/a;b", 200},    // a ";" elsewhere is ordinary text
		{"/v1/items/..a", 200},    // not a dot segment
		{"/v1/items/.well", 200},  // not a dot segment
		{"/v1/items/a%5Cb", 200},  // a backslash alone is ordinary text
		{"/v1/items/...", 200},    // three dots are a name
		{"/v1/items/a..;b", 200},  // not a dot segment even without the parameter
	} {
		t.Run(tc.path, func(t *testing.T) {
			r := send(t, "GET", f.url+tc.path, "")
			if r.status != tc.status {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tc.status)
			}
		})
	}
}

// A request that asks for an upgrade but gets an ordinary answer is an ordinary request: the
// route's timeout bounds its whole exchange, the streamed body included, as for any request.
// Only a switched (101) connection outlives it.
func TestUpgradeHeaderDoesNotLiftTimeout(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(200)
		for i := 0; i < 50; i++ {
			if _, err := io.WriteString(w, "x"); err != nil {
				return
			}
			http.NewResponseController(w).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}))
	t.Cleanup(backend.Close)
	f := &accessFixture{t: t, logs: &syncBuffer{}, dir: t.TempDir()}
	f.start(parseGateway(t, f.dir, backend.URL, `
gateways:
  - name: api
    listen: 127.0.0.1:0
    routes: [{path: /stream, methods: [GET], integration: {url: "%BACKEND%", timeout: 300ms}}]
`))
	for _, upgrade := range []bool{false, true} {
		start := time.Now()
		req, _ := http.NewRequest("GET", f.url+"/stream", nil)
		if upgrade {
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
		}
		res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("upgrade=%v: the response streamed for %s; the route's timeout is 300ms", upgrade, d)
		}
	}
}

// The API key file mounted from a Kubernetes Secret is a symlink into a ..data directory that
// the kubelet swaps atomically: no event ever names the file itself. The reload must see it.
func TestAPIKeyFileReloadKubernetesSwap(t *testing.T) {
	dir := t.TempDir()
	const keyGlobex = "k_live_globex_0123456789abcdef"
	writeVersion := func(name, content string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "api-keys.json"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeVersion("..v1", fmt.Sprintf(`{"keys": [{"id": "acme", "value": %q}]}`, keyAcme))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("..v1", filepath.Join(dir, "..data")))
	must(os.Symlink("..data/api-keys.json", filepath.Join(dir, "api-keys.json")))

	backend := echoBackend(t)
	gc := parseGateway(t, dir, backend.URL, `
secrets: {api-keys: {file: "%DIR%/api-keys.json"}}
gateways:
  - name: api
    listen: 127.0.0.1:0
    api_keys: {secret: api-keys, required: true}
    usage_plans: [{name: gold, keys: [acme, globex]}]
    routes: [{path: /items, methods: [GET], integration: {url: "%BACKEND%"}}]
`)
	logs := &syncBuffer{}
	gw, err := New(gc, nil, slog.New(slog.NewJSONHandler(logs, nil)))
	must(err)
	srv := httptest.NewServer(gw)
	t.Cleanup(func() { srv.Close(); gw.Close() })
	status := func(key string) int { return send(t, "GET", srv.URL+"/items", "", "X-Api-Key", key).status }
	if status(keyAcme) != 200 || status(keyGlobex) != 403 {
		t.Fatal("initial keys")
	}

	// What the kubelet does: a new timestamped directory, a new ..data_tmp link to it, renamed
	// over ..data.
	writeVersion("..v2", fmt.Sprintf(`{"keys": [{"id": "globex", "value": %q}]}`, keyGlobex))
	must(os.Symlink("..v2", filepath.Join(dir, "..data_tmp")))
	must(os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))

	deadline := time.Now().Add(5 * time.Second)
	for !(status(keyGlobex) == 200 && status(keyAcme) == 403) {
		if time.Now().After(deadline) {
			t.Fatalf("the swapped key file was not loaded within 5s\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Changes elsewhere in the directory do not reload (nor log) an unchanged file.
	n := strings.Count(logs.String(), "API key file reloaded")
	must(os.WriteFile(filepath.Join(dir, "unrelated.txt"), []byte("x"), 0o600))
	time.Sleep(4 * keysReloadDelay)
	if got := strings.Count(logs.String(), "API key file reloaded"); got != n {
		t.Fatalf("an unrelated file reloaded the keys (%d reload lines, was %d)", got, n)
	}
}

// testCert writes a self-signed certificate for names and its key as PEM files in dir.
func testCert(t *testing.T, dir, base string, names ...string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, base+".pem"), filepath.Join(dir, base+"-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// The gateway's tls takes the load balancer listener's keys: certificates chosen by SNI (the
// first one is the default when cert_file is left out) and min_version, over a real TLS socket.
func TestGatewayTLSCertificatesAndMinVersion(t *testing.T) {
	dir := t.TempDir()
	testCert(t, dir, "a", "a.test")
	testCert(t, dir, "b", "b.test")
	backend := echoBackend(t)
	for _, tc := range []struct {
		name, tls string
		minTLS13  bool
	}{
		{"certificates only", `{certificates: [{cert_file: "%DIR%/a.pem", key_file: "%DIR%/a-key.pem"}, {cert_file: "%DIR%/b.pem", key_file: "%DIR%/b-key.pem"}]}`, false},
		{"cert_file and certificates, 1.3", `{cert_file: "%DIR%/a.pem", key_file: "%DIR%/a-key.pem", min_version: "1.3", certificates: [{cert_file: "%DIR%/b.pem", key_file: "%DIR%/b-key.pem"}]}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gc := parseGateway(t, dir, backend.URL, `
gateways:
  - name: api
    listen: 127.0.0.1:0
    tls: `+tc.tls+`
    routes: [{path: /items, methods: [GET], integration: {url: "%BACKEND%"}}]
`)
			gw, err := New(gc, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(gw.Close)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: gw}
			go func() { _ = srv.Serve(tls.NewListener(ln, gw.ServerTLS())) }()
			t.Cleanup(func() { _ = srv.Close() })

			dial := func(serverName string, maxVersion uint16) (*tls.ConnectionState, error) {
				c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: serverName, InsecureSkipVerify: true, MaxVersion: maxVersion, NextProtos: []string{"h2", "http/1.1"}})
				if err != nil {
					return nil, err
				}
				defer c.Close()
				cs := c.ConnectionState()
				return &cs, nil
			}
			for _, want := range []string{"a.test", "b.test"} {
				cs, err := dial(want, 0)
				if err != nil {
					t.Fatalf("SNI %s: %v", want, err)
				}
				if got := cs.PeerCertificates[0].Subject.CommonName; got != want {
					t.Errorf("SNI %s: got the certificate of %s", want, got)
				}
				if cs.NegotiatedProtocol != "h2" {
					t.Errorf("ALPN %q, want h2", cs.NegotiatedProtocol)
				}
			}
			if cs, err := dial("other.test", 0); err != nil || cs.PeerCertificates[0].Subject.CommonName != "a.test" {
				t.Errorf("an unknown name must get the default certificate (a.test): %v", err)
			}
			_, err = dial("a.test", tls.VersionTLS12)
			if tc.minTLS13 && err == nil {
				t.Error("min_version 1.3 accepted a TLS 1.2 handshake")
			}
			if !tc.minTLS13 && err != nil {
				t.Errorf("TLS 1.2 refused without min_version: %v", err)
			}
		})
	}
}

const schemaYAML = `
gateways:
  - name: api
    listen: 127.0.0.1:0
    routes:
      - path: /items
        methods: [POST]
        request_validation:
          body_schema:
            type: object
            properties:
              a: {type: string, pattern: "^[a-z]+$"}
              b: {type: string, pattern: "^[a-z]+$"}
        integration: {url: "%BACKEND%"}
`

// A failing value is quoted in its error ("'…' does not match pattern"): each error is cut short,
// so that a 400 never echoes a large body back (JSON escaping would even multiply it: "<" is
// written \u003c).
func TestValidationErrorsAreShort(t *testing.T) {
	f, _ := edgeFixture(t, schemaYAML, nil)
	big := strings.Repeat("<", 100_000)
	r := send(t, "POST", f.url+"/items", `{"a":"`+big+`","b":"`+big+`"}`, "Content-Type", "application/json")
	if r.status != 400 {
		t.Fatalf("status %d", r.status)
	}
	e := decodeError(t, r)
	if len(e.Errors) != 2 || e.Errors[0].Field != "/a" || !strings.Contains(e.Errors[0].Error, "does not match pattern") && !strings.HasSuffix(e.Errors[0].Error, "…") {
		t.Fatalf("errors %+v", e.Errors)
	}
	if len(r.body) > 4096 { // two errors of at most 200 bytes, each at most 6 bytes once JSON-escaped
		t.Fatalf("a %d-byte body for a 200 KB request", len(r.body))
	}
}

// A body that is not JSON is refused at once, before the gateway buffers a byte of it: a client
// cannot make a schema route hold max_body_bytes of text/plain, nor wait for a body that never
// ends.
func TestValidationRefusesContentTypeBeforeReading(t *testing.T) {
	f, _ := edgeFixture(t, schemaYAML, nil)
	c, err := net.Dial("tcp", strings.TrimPrefix(f.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "POST /items HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer while the body is still open: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 400 {
		t.Fatalf("status %d", res.StatusCode)
	}
}

// An open WebSocket tunnel never outlives its gateway: Close (a config reload retiring the
// generation that admitted it, or shutdown) ends it, so that a revoked key, a changed authorizer
// or web ACL cannot keep a connection open, and no goroutine is left copying. Its access line
// says 101, not 200.
func TestCloseEndsWebSocketTunnels(t *testing.T) {
	backend := echoBackend(t)
	logs := &syncBuffer{}
	gw, err := New(parseGateway(t, t.TempDir(), backend.URL, `
gateways:
  - name: api
    listen: 127.0.0.1:0
    cors: {allow_origins: ["http://client.test"]}
    routes: [{path: /ws, methods: [GET], integration: {url: "%BACKEND%"}}]
`), nil, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	c, err := websocket.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", "", "http://client.test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := websocket.Message.Send(c, "hi"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := websocket.Message.Receive(c, &got); err != nil || got != "hi" {
		t.Fatalf("echo %q %v", got, err)
	}
	gw.Close()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	err = websocket.Message.Receive(c, &got)
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the tunnel is still open after Close: %v", err)
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), `"status":101`) })
}

// The origin-verify secret reaches the backend only: not a response header template reading the
// request (which reads the client's request, never the forwarded one), not a gateway response,
// not a log line.
func TestOriginVerifySecretStaysInbound(t *testing.T) {
	backend := echoBackend(t)
	kr, err := originverify.LoadOrCreate("origin-verify", filepath.Join(t.TempDir(), "ov.keys"))
	if err != nil {
		t.Fatal(err)
	}
	secret := kr.Current().Secret
	cfg := config.Gateway{
		Name:           "g",
		CORS:           config.CORS{Mode: config.CORSEnforce, AllowOrigins: []string{"http://ok.test"}, AllowMethods: []string{"GET"}},
		RequestHeaders: []config.HeaderMapping{{Name: "X-Origin-Verify", Value: mustTemplate(t, "${secret:origin-verify}")}},
		ResponseHeaders: &config.ResponseHeaders{Set: []config.HeaderMapping{
			{Name: "X-Echo", Value: mustTemplate(t, "v=${request.header.X-Origin-Verify}")},
		}},
		GatewayResponses: map[string]config.GatewayResponse{config.RespDefault5XX: {Headers: map[string]string{"X-Error": "${context.error.message}"}}},
		Routes: []config.Route{
			{Path: "/items", Methods: []string{"GET"}, Integration: config.Integration{URL: backend.URL}},
			{Path: "/down", Methods: []string{"GET"}, Integration: config.Integration{URL: closedURL(t)}},
		},
	}
	logs := &syncBuffer{}
	gw, err := New(cfg, map[string]*originverify.Keyring{"origin-verify": kr}, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(func() { srv.Close(); gw.Close() })

	r := send(t, "GET", srv.URL+"/items", "", "Origin", "http://ok.test")
	if r.status != 200 || !strings.Contains(r.body, secret) {
		t.Fatalf("the backend did not get the secret: %d", r.status) // the echo backend shows what it got
	}
	if got := r.header.Get("X-Echo"); got != "v=" {
		t.Fatalf("X-Echo %q: a response template read the forwarded request", got)
	}
	for _, path := range []string{"/down", "/nothing", "/items/../x"} {
		r := send(t, "GET", srv.URL+path, "", "Origin", "http://ok.test")
		if strings.Contains(r.body, secret) || strings.Contains(fmt.Sprint(r.header), secret) {
			t.Fatalf("%s: the secret is in the response", path)
		}
	}
	if strings.Contains(logs.String(), secret) {
		t.Fatal("the secret is in the log")
	}
}
