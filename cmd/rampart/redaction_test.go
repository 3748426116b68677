package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/originverify"
)

// TestRedactionFullRun runs a whole deployment in signed mode at debug level, with mTLS off, and
// does everything that could leak a key: requests that pass and fail at every stage, requests
// straight to the load balancer carrying the real key and real tokens, a rotation (so keyrings
// reload), SIGHUP, and the validate, secret, probe and certs commands. Then every byte of every
// log line, response body and command output is searched for every key the keyring ever held and
// for every token this test made.
func TestRedactionFullRun(t *testing.T) {
	dir := t.TempDir()
	file, cfg, gw := writeDeployment(t, dir, deployment{mode: config.OriginVerifySigned})
	var logs syncBuffer
	serveDeployment(t, cfg, gw, &logs)
	var out bytes.Buffer // every response body and command output
	keys := filepath.Join(dir, "ov.keys")
	kr, err := originverify.LoadOrCreate("origin-verify", keys)
	if err != nil {
		t.Fatal(err)
	}
	lbURL := "http://" + cfg.LoadBalancers[0].Listeners[0].Listen
	lbHost := cfg.LoadBalancers[0].Listeners[0].Listen
	var tokens []string
	do := func(method, url string, h http.Header) {
		req, err := http.NewRequest(method, url, strings.NewReader(`{"name":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		io.Copy(&out, resp.Body)
		for k, v := range resp.Header {
			out.WriteString(k + ": " + strings.Join(v, ",") + "\n")
		}
		resp.Body.Close()
	}
	traffic := func() {
		tok := kr.Sign("GET", lbHost, "/items", time.Now())
		old := kr.Sign("GET", lbHost, "/items", time.Now().Add(-time.Hour))
		tokens = append(tokens, tok, old)
		ov := "X-Origin-Verify"
		for _, r := range []struct {
			method, url string
			h           http.Header
		}{
			{"GET", gw + "/items", nil},
			{"POST", gw + "/items", http.Header{"Content-Type": {"application/json"}}},
			{"GET", gw + "/items/999999", nil},
			{"GET", gw + "/nope", nil},
			{"DELETE", gw + "/items", nil},
			{"GET", gw + "/items", http.Header{"Origin": {"https://evil.example"}}},
			{"GET", gw + "/items", http.Header{ov: {kr.Current().Secret}}}, // the gateway must overwrite it
			{"GET", lbURL + "/items", nil},
			{"GET", lbURL + "/items", http.Header{ov: {kr.Current().Secret}}},
			{"GET", lbURL + "/items", http.Header{ov: {tok}}},
			{"GET", lbURL + "/items", http.Header{ov: {tok}}}, // replay
			{"GET", lbURL + "/items", http.Header{ov: {old}}},
			{"GET", lbURL + "/items", http.Header{ov: {tok, tok}}},
			{"GET", lbURL + "/items?" + ov + "=" + kr.Current().Secret, nil},
		} {
			do(r.method, r.url, r.h)
		}
	}
	traffic()
	var errb bytes.Buffer
	if code := secretCmd(context.Background(), []string{"rotate", "origin-verify", "-c", file, "--propagation", "200ms", "--grace", "200ms"}, &out, &errb); code != 0 {
		t.Fatalf("rotate: %s", errb.String())
	}
	traffic()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return strings.Contains(logs.String(), "SIGHUP") })
	for _, args := range [][]string{{"validate", "-c", file}, {"secret", "list", "origin-verify", "-c", file}, {"probe", "-c", file}, {"probe", "-c", file, "--json"}, {"certs", "init", "--dir", filepath.Join(dir, "certs")}} {
		run(args, &out, &errb)
	}
	// A broken keyring is reported without its content.
	data, _ := os.ReadFile(keys)
	os.WriteFile(keys, append(data[:len(data)/2:len(data)/2], []byte(kr.Current().Secret)...), 0o600)
	waitUntil(t, func() bool { return strings.Contains(logs.String(), "keyring reload failed") })
	os.WriteFile(keys, data, 0o600)

	all := logs.String() + out.String() + errb.String()
	if !strings.Contains(logs.String(), `"waf"`) || !strings.Contains(logs.String(), "keyring reloaded") {
		t.Fatalf("the run did not log what it should have (WAF blocks, reloads):\n%s", logs.String())
	}
	f, err := originverify.ReadFile(keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Keys) < 2 {
		t.Fatalf("keyring holds %d keys after a rotation", len(f.Keys))
	}
	for _, k := range f.Keys {
		if strings.Contains(all, k.Secret) {
			t.Errorf("key %s (%s) appears in the output", k.ID, k.State)
		}
		if strings.Contains(all, "v1."+k.ID+".") {
			t.Errorf("a signed token of key %s appears in the output", k.ID)
		}
	}
	for _, tok := range tokens {
		if strings.Contains(all, tok[len(tok)-43:]) {
			t.Errorf("a token MAC appears in the output")
		}
	}
	t.Logf("searched %d bytes of logs and %d bytes of responses and command output", len(logs.String()), out.Len()+errb.Len())
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
