package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/observe"
	"github.com/rampart-edge/rampart/internal/originverify"
	"github.com/rampart-edge/rampart/internal/topology"
)

func freePort(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// deployment describes a test topology written to a config file.
type deployment struct {
	mode     string // static or signed
	noVerify bool   // the misconfiguration: a web ACL without the origin-verify rule
	tls      *originverify.CertFiles
}

// writeDeployment writes a gateway → lb → app topology on free 127.0.0.x ports and returns the
// config file, the parsed config and the gateway's URL.
func writeDeployment(t *testing.T, dir string, d deployment) (string, *config.Config, string) {
	t.Helper()
	gw, lbAddr, app := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1"), freePort(t, "127.0.0.2")
	ref := "${secret:origin-verify}"
	if d.mode == config.OriginVerifySigned {
		ref = "${signed:origin-verify}"
	}
	rule := fmt.Sprintf(`
      - name: require-origin-verify
        priority: 0
        action: block
        statement: {not: {origin_verify: {header: X-Origin-Verify, secret: origin-verify, mode: %s}}}`, d.mode)
	if d.noVerify {
		rule = `
      - name: only-a-header-check
        priority: 0
        action: block
        statement: {byte_match: {header: X-Forbidden, positional_constraint: EXACTLY, search_string: "yes"}}`
	}
	scheme, integrationTLS, listenerTLS := "http", "", ""
	if d.tls != nil {
		scheme = "https"
		integrationTLS = fmt.Sprintf(", tls: {ca_file: %s, cert_file: %s, key_file: %s}", d.tls.CA, d.tls.Gateway, d.tls.GatewayKey)
		listenerTLS = fmt.Sprintf("\n        tls: {cert_file: %s, key_file: %s, client_ca_file: %s, require_client_cert: true}", d.tls.LB, d.tls.LBKey, d.tls.CA)
	}
	yaml := fmt.Sprintf(`version: 1
secrets:
  origin-verify: {file: %[1]s/ov.keys}
gateways:
  - name: gw
    listen: %[2]s
    cors: {allow_origins: ["http://127.0.0.1:3000"]}
    request_headers:
      X-Origin-Verify: "%[5]s"
    routes:
      - {path: /items, methods: [GET], integration: {url: "%[8]s://%[3]s"%[9]s}}
      - {path: "/items/{id}", methods: [GET], integration: {url: "%[8]s://%[3]s"%[9]s}}
load_balancers:
  - name: lb
    egress: 127.0.0.3
    listeners:
      - listen: %[3]s
        web_acl: gateway-only%[10]s
        rules:
          - {priority: 1, conditions: {path: ["/items", "/items/*"]}, action: {forward: {target_group: app}}}
    target_groups:
      - name: app
        targets: ["%[4]s"]
        health_check: {path: /healthz, interval: 100ms, timeout: 50ms, healthy_threshold: 2, unhealthy_threshold: 2}
web_acls:
  - name: gateway-only
    rules:%[6]s
apps:
  - name: items
    listen: ["%[4]s"]
    allow_from: ["127.0.0.3/32"]
    database: "sqlite:%[1]s/items.db"
`, dir, gw, lbAddr, app, ref, rule, d.mode, scheme, integrationTLS, listenerTLS)
	file := filepath.Join(dir, "rampart.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return file, cfg, "http://" + gw
}

// serveDeployment runs every component of cfg in-process until the test ends, and waits until a
// request through the gateway succeeds. Logs go to logs.
func serveDeployment(t *testing.T, cfg *config.Config, gatewayURL string, logs *syncBuffer) {
	t.Helper()
	red := &observe.Redactor{}
	logger, err := observe.NewLogger(logs, "json", slog.LevelDebug, red)
	if err != nil {
		t.Fatal(err)
	}
	sel := topology.Selection{Kinds: map[topology.Kind]bool{topology.KindGateway: true, topology.KindLB: true, topology.KindApp: true}}
	ctx, cancel := context.WithCancel(context.Background())
	topo, err := topology.Build(ctx, cfg, sel, topology.Options{Logger: logger, Redactor: red})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := topo.Listen(); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- topo.Serve(ctx, time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(gatewayURL + "/items")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deployment never answered 200 through the gateway: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for the servers' goroutines and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type probeReport struct {
	Failed  int           `json:"failed"`
	Results []probeResult `json:"results"`
}

func runProbe(t *testing.T, file string) (int, probeReport, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := probeCmd(context.Background(), []string{"-c", file, "--json"}, &out, &errb)
	var rep probeReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("probe --json output is not JSON: %v\n%s\n%s", err, out.String(), errb.String())
	}
	return code, rep, out.String()
}

func TestProbe(t *testing.T) {
	for _, tt := range []struct {
		name      string
		d         deployment
		wantCode  int
		wantFails []string // checks that must fail
	}{
		{"static", deployment{mode: config.OriginVerifyStatic}, 0, nil},
		{"signed", deployment{mode: config.OriginVerifySigned}, 0, nil},
		{"mtls and signed", deployment{mode: config.OriginVerifySigned, tls: certs(t)}, 0, nil},
		{"no origin-verify rule", deployment{mode: config.OriginVerifyStatic, noVerify: true}, 1,
			[]string{"direct, without X-Origin-Verify", "direct, wrong X-Origin-Verify"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file, cfg, gw := writeDeployment(t, dir, tt.d)
			var logs syncBuffer
			serveDeployment(t, cfg, gw, &logs)
			code, rep, out := runProbe(t, file)
			if code != tt.wantCode {
				t.Fatalf("exit code %d, want %d\n%s", code, tt.wantCode, out)
			}
			failed := map[string]bool{}
			for _, r := range rep.Results {
				if r.Status == probeFail {
					failed[r.Check] = true
				}
			}
			for _, c := range tt.wantFails {
				if !failed[c] {
					t.Errorf("check %q did not fail\n%s", c, out)
				}
			}
			if tt.wantFails == nil && len(failed) > 0 {
				t.Errorf("failed checks on a sound deployment: %v\n%s", failed, out)
			}
			var skipped []string
			staticKeySkipped := false
			for _, r := range rep.Results {
				if r.Status != probeSkip {
					continue
				}
				// Over plain HTTP the probe never sends the signing key itself.
				if r.Check == "direct, static key in signed mode" {
					staticKeySkipped = true
					continue
				}
				skipped = append(skipped, r.Check)
			}
			if tt.d.mode == config.OriginVerifySigned && tt.d.tls == nil {
				if len(skipped) > 0 {
					t.Errorf("signed mode skipped %v\n%s", skipped, out)
				}
				if !staticKeySkipped {
					t.Errorf("the probe sent the signing key over plain HTTP\n%s", out)
				}
			}
			// Every kind of check ran.
			for _, want := range []string{"direct connection to the private tier", "preflight from a disallowed origin", "request from a disallowed origin"} {
				if !strings.Contains(out, want) {
					t.Errorf("no %q check\n%s", want, out)
				}
			}
			if tt.d.tls != nil && !strings.Contains(out, "refused (TLS handshake)") {
				t.Errorf("direct calls to the mTLS listener were not refused at the handshake\n%s", out)
			}
			if tt.d.mode == config.OriginVerifySigned && !strings.Contains(out, "replayed signed token") {
				t.Errorf("no replay check\n%s", out)
			}
			// Nothing the probe prints is a key.
			kr, err := originverify.LoadOrCreate("origin-verify", filepath.Join(dir, "ov.keys"))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range kr.Secrets() {
				if strings.Contains(out, s) || strings.Contains(logs.String(), s) {
					t.Fatal("a key appears in the probe output or the logs")
				}
			}
		})
	}
}

// certs makes a private CA and the gateway and load balancer certificates.
func certs(t *testing.T) *originverify.CertFiles {
	t.Helper()
	files, err := originverify.WriteCertificates(filepath.Join(t.TempDir(), "certs"), originverify.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &files
}
