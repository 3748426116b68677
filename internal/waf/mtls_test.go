package waf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/originverify"
	"github.com/rampart-edge/rampart/internal/server"
)

// TestMTLSStatement serves web ACLs with mtls statements on real TLS listeners and connects with
// the gateway's client certificate, with a certificate of another subject, without one, and over
// a listener that verifies no client certificate.
func TestMTLSStatement(t *testing.T) {
	dir := t.TempDir()
	good, err := originverify.WriteCertificates(filepath.Join(dir, "good"), originverify.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Another CA, which the listener also trusts, issues a client certificate for "intruder":
	// verified, but not the listed subject.
	other, err := originverify.WriteCertificates(filepath.Join(dir, "other"), originverify.CertOptions{GatewayName: "intruder"})
	if err != nil {
		t.Fatal(err)
	}
	bothCAs := filepath.Join(dir, "both-ca.pem")
	a, _ := os.ReadFile(good.CA)
	b, _ := os.ReadFile(other.CA)
	if err := os.WriteFile(bothCAs, append(a, b...), 0o600); err != nil {
		t.Fatal(err)
	}
	untrusted, err := originverify.WriteCertificates(filepath.Join(dir, "untrusted"), originverify.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}

	acl := func(subjects ...string) config.WebACL {
		return config.WebACL{Name: "mtls", DefaultAction: config.ActionAllow, Rules: []config.WAFRule{{
			Name: "gateway-cert", Action: config.ActionBlock,
			Statement: config.Statement{Not: &config.Statement{MTLS: &config.MTLSStatement{Subjects: subjects}}},
		}, {
			// Logs the subject of every admitted certificate.
			Name: "cert-seen", Priority: 1, Action: config.ActionCount,
			Statement: config.Statement{MTLS: &config.MTLSStatement{}},
		}}}
	}
	var logs bytes.Buffer
	serve := func(t *testing.T, cfg config.WebACL, o *server.TLSOptions) string {
		a, err := New(cfg, nil, slog.New(slog.NewJSONHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Close)
		srv := httptest.NewUnstartedServer(a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "app")
		})))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
		if o == nil {
			srv.Start()
		} else {
			srv.TLS, err = server.ServerTLSConfig(*o)
			if err != nil {
				t.Fatal(err)
			}
			srv.StartTLS()
		}
		t.Cleanup(srv.Close)
		return srv.URL
	}
	get := func(t *testing.T, url, cert, key string) (int, error) {
		cfg, err := server.ClientTLSConfig(good.CA, cert, key)
		if err != nil {
			t.Fatal(err)
		}
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(url + "/items")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	verifying := &server.TLSOptions{CertFile: good.LB, KeyFile: good.LBKey, ClientCAFile: bothCAs}

	t.Run("listed subject", func(t *testing.T) {
		url := serve(t, acl("CN=rampart-gateway,O=Rampart"), verifying)
		for _, c := range []struct {
			name      string
			cert, key string
			want      int
			handshake bool // the handshake itself must fail
		}{
			{name: "gateway certificate", cert: good.Gateway, key: good.GatewayKey, want: http.StatusOK},
			{name: "verified certificate of another subject", cert: other.Gateway, key: other.GatewayKey, want: http.StatusForbidden},
			{name: "no certificate", want: http.StatusForbidden},
			{name: "certificate of an untrusted CA", cert: untrusted.Gateway, key: untrusted.GatewayKey, handshake: true},
		} {
			code, err := get(t, url, c.cert, c.key)
			switch {
			case c.handshake && err == nil:
				t.Errorf("%s: got status %d, want the handshake refused", c.name, code)
			case !c.handshake && (err != nil || code != c.want):
				t.Errorf("%s: status %d, error %v; want %d", c.name, code, err, c.want)
			}
		}
	})
	t.Run("any verified certificate", func(t *testing.T) {
		url := serve(t, acl(), verifying)
		if code, err := get(t, url, other.Gateway, other.GatewayKey); err != nil || code != http.StatusOK {
			t.Errorf("verified certificate: status %d, error %v; want 200", code, err)
		}
		if code, err := get(t, url, "", ""); err != nil || code != http.StatusForbidden {
			t.Errorf("no certificate: status %d, error %v; want 403", code, err)
		}
	})
	t.Run("listener that verifies no client certificate", func(t *testing.T) {
		// The server does not ask for a certificate, so none is verified: never a match.
		url := serve(t, acl(), &server.TLSOptions{CertFile: good.LB, KeyFile: good.LBKey})
		if code, err := get(t, url, good.Gateway, good.GatewayKey); err != nil || code != http.StatusForbidden {
			t.Errorf("TLS without client_ca_file: status %d, error %v; want 403", code, err)
		}
		plain := serve(t, acl(), nil)
		resp, err := http.Get(plain + "/items")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("plain HTTP: status %d, want 403", resp.StatusCode)
		}
	})
	if !strings.Contains(logs.String(), `"field":"client_cert_subject","value":"CN=rampart-gateway,O=Rampart"`) {
		t.Errorf("no WAF log line names the client certificate subject:\n%s", logs.String())
	}
}

// TestMTLSStatementForgedState checks that a request whose TLS state lists peer certificates but
// no verified chain (a listener without client_ca_file, which Go fills all the same) never matches.
func TestMTLSStatementForgedState(t *testing.T) {
	dir := t.TempDir()
	good, err := originverify.WriteCertificates(dir, originverify.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(good.Gateway, good.GatewayKey)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mtlsCond(config.MTLSStatement{}, "statement.mtls")
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if pair.Leaf == nil {
		t.Fatal("tls.LoadX509KeyPair did not parse the leaf")
	}
	r.TLS = &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{pair.Leaf}}
	if m(&evalCtx{r: r}) {
		t.Fatal("matched a certificate that no listener verified")
	}
	if _, err := mtlsCond(config.MTLSStatement{Subjects: []string{"rampart-gateway"}}, "statement.mtls"); err == nil {
		t.Fatal("accepted a subject that is not a distinguished name")
	}
}
