package topology

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/originverify"
)

// freePort returns a port that was free on host a moment ago.
func freePort(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).AddrPort().String()
}

// edgeConfig is a gateway → load balancer (gateway-only web ACL) → app topology on free ports.
func edgeConfig(t *testing.T, dir, mode string) (*config.Config, string) {
	t.Helper()
	gw, lbAddr, app := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	ref := "${secret:origin-verify}"
	if mode == config.OriginVerifySigned {
		ref = "${signed:origin-verify}"
	}
	yaml := fmt.Sprintf(`version: 1
secrets:
  origin-verify: {file: %[1]s/ov.keys}
gateways:
  - name: gw
    listen: %[2]s
    request_headers:
      X-Origin-Verify: "%[5]s"
    routes:
      - {path: /items, methods: [GET], integration: {url: "http://%[3]s"}}
load_balancers:
  - name: lb
    listeners:
      - listen: %[3]s
        web_acl: gateway-only
        rules:
          - {priority: 1, conditions: {path: ["/items"]}, action: {forward: {target_group: app}}}
    target_groups:
      - name: app
        targets: ["%[4]s"]
        health_check: {path: /healthz, interval: 100ms, timeout: 50ms, healthy_threshold: 2, unhealthy_threshold: 2}
web_acls:
  - name: gateway-only
    rules:
      - name: require-origin-verify
        priority: 0
        action: block
        statement: {not: {origin_verify: {header: X-Origin-Verify, secret: origin-verify, mode: %[6]s}}}
apps:
  - name: items
    listen: ["%[4]s"]
    database: "sqlite:%[1]s/items.db"
`, dir, gw, lbAddr, app, ref, mode)
	cfg, err := config.Parse("edge.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, gw
}

// syncBuffer collects log output from several goroutines.
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

// startTopology builds, listens and serves the selected kinds until the test ends.
func startTopology(t *testing.T, cfg *config.Config, logs io.Writer, kinds ...Kind) *Topology {
	t.Helper()
	sel := Selection{Kinds: map[Kind]bool{}}
	for _, k := range kinds {
		sel.Kinds[k] = true
	}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	topo := serveTopology(t, cfg, sel, Options{Logger: logger})
	return topo
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRotationUnderLoad runs the gateway and the load balancer as two topologies with their own
// keyring watchers (as two processes would be), drives continuous traffic through them, rotates
// the shared keyring file with the four-step protocol and requires that no request fails.
func TestRotationUnderLoad(t *testing.T) {
	for _, mode := range []string{config.OriginVerifyStatic, config.OriginVerifySigned} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			cfg, gwAddr := edgeConfig(t, dir, mode)
			logs := &syncBuffer{}
			startTopology(t, cfg, logs, KindGateway)
			back := startTopology(t, cfg, logs, KindLB, KindApp)
			url := "http://" + gwAddr + "/items"
			client := &http.Client{Timeout: 5 * time.Second}
			get := func() (int, error) {
				resp, err := client.Get(url)
				if err != nil {
					return 0, err
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode, nil
			}
			waitFor(t, "the app to be healthy behind the load balancer", func() bool {
				code, err := get()
				return err == nil && code == http.StatusOK
			})
			kr := back.Keyring("origin-verify")
			oldID := kr.Current().ID

			// The load generator: bounded by a request cap and by the rotation's end.
			const workers, maxRequests = 4, 20000
			var sent, failed atomic.Int64
			var firstFailure atomic.Value
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						if sent.Add(1) > maxRequests {
							return
						}
						code, err := get()
						if err != nil || code != http.StatusOK {
							failed.Add(1)
							firstFailure.CompareAndSwap(nil, fmt.Sprintf("status %d, error %v", code, err))
						}
					}
				})
			}
			err := originverify.Rotate(context.Background(), filepath.Join(dir, "ov.keys"), originverify.RotateOptions{
				Propagation: 300 * time.Millisecond, Grace: 300 * time.Millisecond,
			})
			time.Sleep(100 * time.Millisecond) // traffic after the old key's retirement too
			close(stop)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if n := failed.Load(); n != 0 {
				t.Fatalf("%d of %d requests failed during the rotation; first: %v", n, sent.Load(), firstFailure.Load())
			}
			newID := kr.Current().ID
			if newID == oldID {
				t.Fatal("the load balancer never loaded the new current key")
			}
			m := kr.Matches()
			if m[oldID] == 0 || m[newID] == 0 {
				t.Fatalf("matches per key %v: want requests verified with both %s and %s", m, oldID, newID)
			}
			t.Logf("%d requests, none failed; matches per key id: %v", min(sent.Load(), maxRequests), m)
			if _, ok := kr.Verify("not-a-key"); ok {
				t.Fatal("verified junk")
			}
			// The old key is retired now: sent straight to the load balancer it is refused.
			for _, ks := range kr.Keys() {
				if ks.ID == oldID && ks.State != originverify.StateRetired {
					t.Fatalf("old key is %s, want retired", ks.State)
				}
			}
			if strings.Contains(logs.String(), "keyring reload failed") {
				t.Fatalf("a reload failed:\n%s", logs.String())
			}
		})
	}
}

// TestSIGHUPReloadsKeyrings sends the process SIGHUP: the topology catches it (the test process
// survives) and reloads its keyrings.
func TestSIGHUPReloadsKeyrings(t *testing.T) {
	dir := t.TempDir()
	cfg, _ := edgeConfig(t, dir, config.OriginVerifyStatic)
	logs := &syncBuffer{}
	startTopology(t, cfg, logs, KindLB)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the SIGHUP reload", func() bool { return strings.Contains(logs.String(), "SIGHUP: reloading keyrings") })
}

// TestCollectStatementSecretsFindsNestedOnes: a keyring referenced anywhere in a statement tree,
// a rate-based rule's scope-down statement included, is loaded.
func TestCollectStatementSecretsFindsNestedOnes(t *testing.T) {
	ov := func(secret string) config.Statement {
		return config.Statement{OriginVerify: &config.OriginVerifyStatement{Header: "X-Origin-Verify", Secret: secret}}
	}
	notB := ov("b")
	scope := ov("d")
	s := config.Statement{And: []config.Statement{
		ov("a"),
		{Not: &notB},
		{Or: []config.Statement{ov("c"), {RateBased: &config.RateBasedStatement{ScopeDownStatement: &scope}}}},
	}}
	names := map[string]bool{}
	collectStatementSecrets(s, names)
	for _, want := range []string{"a", "b", "c", "d"} {
		if !names[want] {
			t.Errorf("keyring %q not collected: %v", want, names)
		}
	}
}

// serveTopology builds cfg's components for sel, opens their listeners and serves them until the
// test ends; an error from Serve fails the test.
func serveTopology(t *testing.T, cfg *config.Config, sel Selection, opts Options) *Topology {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	topo, err := Build(ctx, cfg, sel, opts)
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
	return topo
}
