package server

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/originverify"
)

// TestMutualTLS serves a listener that requires client certificates from the private CA of
// `rampart certs init` and dials it over real sockets with the gateway's certificate, without one,
// with one from another CA, and with a subject the listener does not admit.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	good, err := originverify.WriteCertificates(filepath.Join(dir, "good"), originverify.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := originverify.WriteCertificates(filepath.Join(dir, "other"), originverify.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	serve := func(t *testing.T, subjects []string) string {
		cfg, err := ServerTLSConfig(TLSOptions{CertFile: good.LB, KeyFile: good.LBKey, ClientCAFile: good.CA, RequireClientCert: true, ClientSubjects: subjects})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := Listen("127.0.0.1:0", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.TLS.PeerCertificates[0].Subject.String())
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- Serve(ctx, []Unit{{Name: "lb", Listener: tls.NewListener(ln, cfg), Handler: h}}, time.Second, nil)
		}()
		t.Cleanup(func() { cancel(); <-done })
		return "https://" + ln.Addr().String() + "/"
	}
	get := func(url, ca, cert, key string) (string, error) {
		cfg, err := ClientTLSConfig(ca, cert, key)
		if err != nil {
			t.Fatal(err)
		}
		c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		resp, err := c.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}

	url := serve(t, nil)
	body, err := get(url, good.CA, good.Gateway, good.GatewayKey)
	if err != nil || body != "CN=rampart-gateway,O=Rampart" {
		t.Fatalf("gateway certificate: %q, %v", body, err)
	}
	for name, c := range map[string][3]string{
		"no client certificate":        {good.CA, "", ""},
		"certificate of another CA":    {good.CA, other.Gateway, other.GatewayKey},
		"server signed by wrong CA":    {other.CA, good.Gateway, good.GatewayKey}, // the client refuses the server
		"server certificate as client": {good.CA, good.LB, good.LBKey},            // not for client auth
	} {
		if body, err := get(url, c[0], c[1], c[2]); err == nil {
			t.Errorf("%s: got a response %q, want the handshake refused", name, body)
		}
	}

	// Subjects: the right CA is not enough when the subject is not listed.
	strict := serve(t, []string{"CN=someone-else,O=Rampart"})
	if _, err := get(strict, good.CA, good.Gateway, good.GatewayKey); err == nil {
		t.Fatal("a certificate with a subject not listed was admitted")
	}
	admitted := serve(t, []string{"CN=rampart-gateway,O=Rampart"})
	if _, err := get(admitted, good.CA, good.Gateway, good.GatewayKey); err != nil {
		t.Fatalf("listed subject: %v", err)
	}
}
