package desync

import (
	"context"
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
	"strings"
	"testing"
	"time"
)

// serveGuarded serves h behind g on a fresh loopback listener (TLS when cfg is set) with the
// settings internal/server uses, and returns the address.
func serveGuarded(t *testing.T, g *Guard, cfg *tls.Config, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	srv := &http.Server{Handler: g.Handler(h), ReadHeaderTimeout: 5 * time.Second, DisableGeneralOptionsHandler: true}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(g.Wrap(ln))
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return addr
}

// classHandler answers "served" with the verdict it saw in X-Class ("none" without one).
func classHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		class := "none"
		if v := FromContext(r.Context()); v != nil {
			class = v.Class.String()
		}
		w.Header().Set("X-Class", class)
		w.Header().Set("X-TLS", map[bool]string{true: "yes", false: "no"}[r.TLS != nil])
		io.WriteString(w, "served")
	})
}

func TestGuardModes(t *testing.T) {
	for _, mode := range []string{Monitor, Defensive, Strictest} {
		t.Run(mode, func(t *testing.T) {
			addr := serveGuarded(t, &Guard{Mode: mode}, nil, classHandler())
			for _, tt := range desyncCases {
				blocked := tt.goRejects || (mode == Strictest && tt.class > Compliant) || (mode == Defensive && tt.class == Severe)
				closeAfter := mode == Defensive && tt.class == Ambiguous
				resp, body, closed := rawExchange(t, addr, tt.raw)
				head := strings.HasPrefix(tt.raw, "HEAD")
				switch {
				case resp == nil:
					t.Errorf("%s: no response", tt.name)
				case blocked && (resp.StatusCode != 400 || (body != `{"message":"Bad Request"}`+"\n" && !head) || !closed):
					t.Errorf("%s: = %d %q closed=%v, want a JSON 400 and the connection closed", tt.name, resp.StatusCode, body, closed)
				case !blocked && (resp.StatusCode != 200 || (body != "served" && !head)):
					t.Errorf("%s: = %d %q, want it served", tt.name, resp.StatusCode, body)
				case !blocked && resp.Header.Get("X-Class") != tt.class.String():
					t.Errorf("%s: the handler saw class %q, want %s", tt.name, resp.Header.Get("X-Class"), tt.class)
				case !blocked && closed != (closeAfter || resp.Close):
					t.Errorf("%s: connection closed=%v, want %v", tt.name, closed, closeAfter)
				}
			}
		})
	}
}

func TestGuardBadChunkSize(t *testing.T) {
	for _, tt := range []struct {
		mode     string
		wantBody bool
	}{{Defensive, false}, {Monitor, true}} {
		addr := serveGuarded(t, &Guard{Mode: tt.mode}, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := io.ReadAll(r.Body); err != nil {
				http.Error(w, "bad body", http.StatusBadRequest)
				return
			}
			io.WriteString(w, "read")
		}))
		resp, _, _ := rawExchange(t, addr, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n")
		if resp != nil && resp.StatusCode == 200 {
			t.Errorf("%s: a bad chunk size was read as a body", tt.mode)
		}
		if tt.wantBody != (resp != nil) {
			t.Errorf("%s: response %v; want one only in monitor mode (net/http's chunked reader fails)", tt.mode, resp)
		}
	}
}

// selfSigned returns a certificate for names, valid now.
func selfSigned(t *testing.T, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// The guard works on TLS listeners: HTTP/1 plaintext is classified after the handshake (and the
// handler still sees Request.TLS), HTTP/2 negotiated by ALPN goes to net/http unchanged, and a
// client that never finishes its handshake does not hold up the others.
func TestGuardTLS(t *testing.T) {
	cfg := &tls.Config{Certificates: []tls.Certificate{selfSigned(t, "localhost")}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}
	addr := serveGuarded(t, &Guard{HandshakeTimeout: 5 * time.Second}, cfg, classHandler())

	// A client that connects and stays silent: its handshake must not block the accept loop.
	stall, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stall.Close()

	dialTLS := func(proto string) net.Conn {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{proto}})
		if err != nil {
			t.Fatalf("TLS dial while another handshake is pending: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	for _, tt := range []struct {
		name, raw string
		status    int
		class     string
		closed    bool
	}{
		{"compliant", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 200, "Compliant", false},
		{"both TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 200, "Ambiguous", true},
		{"different Content-Lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", 400, "", true},
	} {
		c := dialTLS("http/1.1")
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, tt.raw+"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
		r := newReader(c)
		resp, body := readResponse(r)
		if resp == nil || resp.StatusCode != tt.status {
			t.Fatalf("%s over TLS: %v %q, want %d", tt.name, resp, body, tt.status)
		}
		if tt.status == 200 && (resp.Header.Get("X-Class") != tt.class || resp.Header.Get("X-TLS") != "yes") {
			t.Errorf("%s over TLS: class %q, Request.TLS %q; want %s, yes", tt.name, resp.Header.Get("X-Class"), resp.Header.Get("X-TLS"), tt.class)
		}
		if next, _ := readResponse(r); (next == nil) != tt.closed {
			t.Errorf("%s over TLS: connection closed = %v, want %v", tt.name, next == nil, tt.closed)
		}
	}

	// HTTP/2: negotiated by ALPN and served by net/http's HTTP/2 server, with no verdict.
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.Header.Get("X-Class") != "none" || resp.Header.Get("X-TLS") != "yes" {
		t.Errorf("h2: proto %s, class %q, TLS %q; want HTTP/2, none, yes", resp.Proto, resp.Header.Get("X-Class"), resp.Header.Get("X-TLS"))
	}
}

func TestGuardIdleTimeout(t *testing.T) {
	addr := serveGuarded(t, &Guard{IdleTimeout: 100 * time.Millisecond}, nil, classHandler())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	r := newReader(c)
	if resp, _ := readResponse(r); resp == nil || resp.StatusCode != 200 {
		t.Fatalf("response %v", resp)
	}
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read = %v, want EOF", err)
	}
}
