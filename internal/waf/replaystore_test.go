package waf

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/originverify"
	"github.com/rampart-edge/rampart/internal/ratelimit/redistest"
)

// lbHost is the Host every load balancer of the test is reached by, as behind one DNS name: a
// token signed for it is valid at each of them.
const lbHost = "lb.example:8081"

// signedLB is one load balancer of a deployment: its own keyring instance (its own in-memory
// replay cache, as a separate process has) and a web ACL served over a real socket.
type signedLB struct {
	url  string
	acl  *WebACL
	kr   *originverify.Keyring
	logs *logBuffer
}

func startSignedLB(t *testing.T, keyFile, replayStore, onStoreError string) *signedLB {
	t.Helper()
	kr, err := originverify.LoadOrCreate("origin-verify", keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ov := &config.OriginVerifyStatement{Header: "X-Origin-Verify", Secret: "origin-verify", Mode: config.OriginVerifySigned,
		ReplayStore: replayStore, OnStoreError: onStoreError}
	cfg := config.WebACL{Name: "gateway-only", DefaultAction: config.ActionAllow, Rules: []config.WAFRule{
		{Name: "require-origin-verify", Priority: 0, Action: config.ActionBlock, Statement: config.Statement{Not: &config.Statement{OriginVerify: ov}}},
		// A second rule reading the same token: one request checks it twice, and must pass twice.
		{Name: "verified", Priority: 1, Action: config.ActionCount, Statement: config.Statement{OriginVerify: ov}},
	}}
	logs := &logBuffer{}
	acl, err := New(cfg, map[string]*originverify.Keyring{"origin-verify": kr}, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(acl.Close)
	srv := httptest.NewServer(acl.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") })))
	t.Cleanup(srv.Close)
	return &signedLB{url: srv.URL, acl: acl, kr: kr, logs: logs}
}

// send sends GET /items with the token to the load balancer and returns the status.
func (l *signedLB) send(t *testing.T, token string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, l.url+"/items", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = lbHost
	req.Header.Set("X-Origin-Verify", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func newToken(kr *originverify.Keyring) string {
	return kr.Sign(http.MethodGet, lbHost, "/items", time.Now())
}

// TestReplayStoreAcrossLoadBalancers runs two load balancers, each with its own web ACL and
// keyring instance, that share one real redis-server: a token accepted by one is refused by the
// other. Without the shared store the same replay passes, which is the gap the store closes.
func TestReplayStoreAcrossLoadBalancers(t *testing.T) {
	redisSrv := redistest.Start(t)
	keys := filepath.Join(t.TempDir(), "ov.keys")

	t.Run("memory: each load balancer has its own cache", func(t *testing.T) {
		a, b := startSignedLB(t, keys, "", ""), startSignedLB(t, keys, "", "")
		tok := newToken(a.kr)
		if got := a.send(t, tok); got != http.StatusOK {
			t.Fatalf("first use at A: %d, want 200", got)
		}
		if got := b.send(t, tok); got != http.StatusOK {
			t.Fatalf("replay to B with in-memory caches: %d; the control case expects the gap (200)", got)
		}
	})

	t.Run("redis: a replay to the other load balancer is refused", func(t *testing.T) {
		a := startSignedLB(t, keys, redisSrv.URL(), config.StoreErrorDeny)
		b := startSignedLB(t, keys, redisSrv.URL(), config.StoreErrorDeny)
		for i := range 3 {
			tok := newToken(a.kr)
			first, second := a, b
			if i%2 == 1 {
				first, second = b, a
			}
			if got := first.send(t, tok); got != http.StatusOK {
				t.Fatalf("round %d: first use: %d, want 200", i, got)
			}
			if got := second.send(t, tok); got != http.StatusForbidden {
				t.Fatalf("round %d: replay to the other load balancer: %d, want 403", i, got)
			}
			if got := first.send(t, tok); got != http.StatusForbidden {
				t.Fatalf("round %d: replay to the same load balancer: %d, want 403", i, got)
			}
		}
		// Two rules of one request read the same token: both match, although the nonce went to
		// Redis with the first.
		req := httptest.NewRequest(http.MethodGet, "http://"+lbHost+"/items", nil)
		req.Header.Set("X-Origin-Verify", newToken(a.kr))
		d := a.acl.Evaluate(req)
		if d.Action != config.ActionAllow || !slices.Equal(d.Counted, []string{"verified"}) {
			t.Fatalf("one request, two rules: %+v, want allowed and counted by verified", d)
		}
	})

	t.Run("redis stopped", func(t *testing.T) {
		deny := startSignedLB(t, keys, redisSrv.URL(), config.StoreErrorDeny)
		allow := startSignedLB(t, keys, redisSrv.URL(), config.StoreErrorAllow)
		if got := deny.send(t, newToken(deny.kr)); got != http.StatusOK {
			t.Fatalf("with Redis up: %d, want 200", got)
		}
		redisSrv.Stop()

		// deny: a valid, fresh token is refused, and the log says why (once, not per request).
		for range 3 {
			if got := deny.send(t, newToken(deny.kr)); got != http.StatusForbidden {
				t.Fatalf("on_store_error deny, Redis down: %d, want 403", got)
			}
		}
		if n := strings.Count(deny.logs.String(), "replay store unreachable"); n != 1 {
			t.Fatalf("on_store_error deny: %d log lines about the store, want 1:\n%s", n, deny.logs.String())
		}
		// allow: a fresh token passes; a replay to the same process is still refused by its cache.
		tok := newToken(allow.kr)
		if got := allow.send(t, tok); got != http.StatusOK {
			t.Fatalf("on_store_error allow, Redis down: %d, want 200", got)
		}
		if got := allow.send(t, tok); got != http.StatusForbidden {
			t.Fatalf("on_store_error allow, Redis down, replay to the same process: %d, want 403", got)
		}
		if !strings.Contains(allow.logs.String(), "on_store_error: allow") {
			t.Fatalf("on_store_error allow: no log line about the store:\n%s", allow.logs.String())
		}

		// Redis back: the deny load balancer accepts again without a restart.
		redisSrv.Restart()
		waitUntil(t, "Redis to be used again", func() bool { return deny.send(t, newToken(deny.kr)) == http.StatusOK })
	})
}

// TestSignedTokensNotLogged checks that no WAF or store log line carries a token or the secret.
func TestSignedTokensNotLogged(t *testing.T) {
	redisSrv := redistest.Start(t)
	keys := filepath.Join(t.TempDir(), "ov.keys")
	l := startSignedLB(t, keys, redisSrv.URL(), config.StoreErrorDeny)
	tok := newToken(l.kr)
	l.send(t, tok)
	l.send(t, tok) // a replay: blocked and logged
	redisSrv.Stop()
	tok2 := newToken(l.kr)
	l.send(t, tok2) // the store is down: logged
	logs := l.logs.String()
	if !strings.Contains(logs, "require-origin-verify") || !strings.Contains(logs, "replay store unreachable") {
		t.Fatalf("expected a block line and a store line:\n%s", logs)
	}
	for _, s := range append(l.kr.Secrets(), tok, tok2, strings.Split(tok, ".")[3], strings.Split(tok2, ".")[4]) {
		if strings.Contains(logs, s) {
			t.Fatalf("the logs hold a secret, token, nonce or MAC %q:\n%s", s, logs)
		}
	}
}

// logBuffer collects log lines from a server's handlers.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
