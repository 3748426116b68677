package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/examples"
	"github.com/rampart-edge/rampart/internal/originverify"
)

const (
	gatewayURL = "http://127.0.0.1:8080"
	lbURL      = "http://127.0.0.1:8081"
	allowed    = "http://127.0.0.1:3000"
	disallowed = "https://evil.example"
)

var defaultAddrs = []string{"127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.2:9001", "127.0.0.2:9002", "127.0.0.1:3000", "127.0.0.1:9900"}

// currentKey reads the origin-verify key the way an operator would: from the keyring file.
func currentKey(t *testing.T, dir string) string {
	t.Helper()
	k, err := originverify.LoadOrCreate("origin-verify", filepath.Join(dir, ".rampart", "origin-verify.keys"))
	if err != nil {
		t.Fatal(err)
	}
	return k.Current().Secret
}

type item struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

func listItems(t *testing.T) []item {
	t.Helper()
	r := do(t, "GET", gatewayURL+"/items", "")
	if r.status != 200 {
		t.Fatalf("GET /items: %d %s", r.status, r.body)
	}
	var items []item
	if err := json.Unmarshal([]byte(r.body), &items); err != nil {
		t.Fatalf("GET /items body %q: %v", r.body, err)
	}
	return items
}

func hasItem(items []item, name string) bool {
	for _, it := range items {
		if it.Name == name {
			return true
		}
	}
	return false
}

// TestDefaultTopology runs `rampart run` with no flags, as a user does first, and walks the secure
// path and every way around it.
func TestDefaultTopology(t *testing.T) {
	portsFree(t, defaultAddrs...)
	dir := t.TempDir()
	p := start(t, dir, "run")
	waitHTTP(t, p, "http://127.0.0.1:9900/healthz")
	waitHTTP(t, p, gatewayURL+"/items")

	t.Run("banner", func(t *testing.T) {
		out := p.stdout.String()
		for _, want := range []string{"http://127.0.0.1:8080", "http://127.0.0.1:8081", "http://127.0.0.1:3000", "curl -i http://127.0.0.1:8080/items", "curl -i http://127.0.0.1:8081/items", "Origin: https://evil.example"} {
			if !strings.Contains(out, want) {
				t.Errorf("banner lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("allowed origin passes with CORS headers", func(t *testing.T) {
		r := do(t, "GET", gatewayURL+"/items", "", "Origin", allowed)
		if r.status != 200 {
			t.Fatalf("status %d, body %s", r.status, r.body)
		}
		if got := r.header.Get("Access-Control-Allow-Origin"); got != allowed {
			t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, allowed)
		}
		if !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Origin") {
			t.Errorf("Vary = %q, want Origin", r.header.Values("Vary"))
		}
		if !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "X-Request-Id") {
			t.Errorf("Access-Control-Expose-Headers = %q", r.header.Get("Access-Control-Expose-Headers"))
		}
	})

	t.Run("disallowed origin is blocked before the backend", func(t *testing.T) {
		name := fmt.Sprintf("from-evil-%d", time.Now().UnixNano())
		r := do(t, "POST", gatewayURL+"/items", `{"name":"`+name+`"}`, "Origin", disallowed, "Content-Type", "application/json")
		if r.status != 403 {
			t.Fatalf("status %d, want 403; body %s", r.status, r.body)
		}
		if r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("a blocked origin got Access-Control-Allow-Origin %q", r.header.Get("Access-Control-Allow-Origin"))
		}
		var msg map[string]any
		if err := json.Unmarshal([]byte(r.body), &msg); err != nil {
			t.Errorf("403 body is not JSON: %q", r.body)
		}
		if hasItem(listItems(t), name) {
			t.Fatal("the backend created the item of a blocked origin")
		}
		// A blocked GET must not reach the app either: no app access-log line carries its id.
		r = do(t, "GET", gatewayURL+"/whoami", "", "Origin", disallowed)
		id := r.header.Get("X-Request-Id")
		if r.status != 403 || id == "" {
			t.Fatalf("blocked GET: status %d, request id %q", r.status, id)
		}
		do(t, "GET", gatewayURL+"/items", "") // a later request, so the app's log has caught up
		for _, line := range strings.Split(p.stderr.String(), "\n") {
			if strings.Contains(line, id) && strings.Contains(line, `"component":"app"`) {
				t.Fatalf("the app served a request from a blocked origin: %s", line)
			}
		}
	})

	t.Run("preflights", func(t *testing.T) {
		r := do(t, "OPTIONS", gatewayURL+"/items", "", "Origin", allowed, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
		if r.status != 204 {
			t.Fatalf("allowed preflight: %d %s", r.status, r.body)
		}
		if r.header.Get("Access-Control-Allow-Origin") != allowed || !strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") ||
			!strings.Contains(strings.ToLower(r.header.Get("Access-Control-Allow-Headers")), "content-type") || r.header.Get("Access-Control-Max-Age") != "600" {
			t.Errorf("allowed preflight headers: %v", r.header)
		}
		r = do(t, "OPTIONS", gatewayURL+"/items", "", "Origin", disallowed, "Access-Control-Request-Method", "POST")
		if r.status != 403 {
			t.Errorf("disallowed preflight: %d, want 403", r.status)
		}
		r = do(t, "OPTIONS", gatewayURL+"/items", "", "Origin", allowed, "Access-Control-Request-Method", "PATCH")
		if r.status != 403 {
			t.Errorf("preflight for a method not allowed: %d, want 403", r.status)
		}
	})

	t.Run("no Origin passes", func(t *testing.T) {
		if r := do(t, "GET", gatewayURL+"/items", ""); r.status != 200 {
			t.Fatalf("status %d", r.status)
		}
	})

	t.Run("direct calls to the load balancer need the key", func(t *testing.T) {
		key := currentKey(t, dir)
		for _, tc := range []struct {
			name    string
			headers []string
			want    int
		}{
			{"no header", nil, 403},
			{"wrong key", []string{"X-Origin-Verify", "not-the-key-0123456789"}, 403},
			{"right key", []string{"X-Origin-Verify", key}, 200},
		} {
			r := do(t, "GET", lbURL+"/items", "", tc.headers...)
			if r.status != tc.want {
				t.Errorf("%s: status %d, want %d (%s)", tc.name, r.status, tc.want, r.body)
			}
		}
	})

	t.Run("whoami: forwarded for, no origin-verify header", func(t *testing.T) {
		r := do(t, "GET", gatewayURL+"/whoami", "", "X-Origin-Verify", "client-forged-value-12345", "x-origin-verify", "another-forged")
		if r.status != 200 {
			t.Fatalf("status %d %s", r.status, r.body)
		}
		lower := strings.ToLower(r.body)
		if strings.Contains(lower, "x-origin-verify") || strings.Contains(r.body, "client-forged") || strings.Contains(r.body, currentKey(t, dir)) {
			t.Errorf("the app saw an origin-verify header: %s", r.body)
		}
		if !strings.Contains(lower, "x-forwarded-for") || !strings.Contains(r.body, "127.0.0.1") {
			t.Errorf("the app did not see X-Forwarded-For with the client address: %s", r.body)
		}
	})

	t.Run("apps refuse connections from outside the tier", func(t *testing.T) {
		for _, addr := range []string{"127.0.0.2:9001", "127.0.0.2:9002"} {
			r, err := tryDo("GET", "http://"+addr+"/items", "")
			if err == nil {
				t.Errorf("direct call to %s from 127.0.0.1 answered %d, want the connection refused", addr, r.status)
				continue
			}
			// allow_from resets the connection; a timeout or anything else is a different failure.
			if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("direct call to %s: %v, want the connection reset", addr, err)
			}
		}
	})

	t.Run("round robin alternates instances", func(t *testing.T) {
		var served []string
		for range 6 {
			r := do(t, "GET", gatewayURL+"/items", "")
			served = append(served, r.header.Get("X-Served-By"))
		}
		for i := 1; i < len(served); i++ {
			if served[i] == "" || served[i] == served[i-1] {
				t.Fatalf("consecutive requests were served by %v, want alternation", served)
			}
		}
	})

	name := fmt.Sprintf("kept-%d", time.Now().UnixNano())
	r := do(t, "POST", gatewayURL+"/items", `{"name":"`+name+`"}`, "Origin", allowed, "Content-Type", "application/json")
	if r.status != 201 {
		t.Fatalf("create item: %d %s", r.status, r.body)
	}

	key := currentKey(t, dir)
	p.stop()
	if strings.Contains(p.output(), key) {
		t.Fatal("the origin-verify key appears in rampart's output")
	}

	t.Run("items survive a restart", func(t *testing.T) {
		p2 := start(t, dir, "run")
		waitHTTP(t, p2, gatewayURL+"/items")
		if !hasItem(listItems(t), name) {
			t.Fatalf("item %q is gone after a restart", name)
		}
		if currentKey(t, dir) != key {
			t.Fatal("the keyring changed across a restart")
		}
		p2.stop()
		if strings.Contains(p2.output(), key) {
			t.Fatal("the origin-verify key appears in rampart's output")
		}
	})
}

// TestOneProcessPerComponent runs the default topology as four processes from one file, then
// stops one app instance and expects every request to move to the other within
// interval × unhealthy_threshold plus a second.
func TestOneProcessPerComponent(t *testing.T) {
	portsFree(t, defaultAddrs...)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "rampart.yaml")
	if err := os.WriteFile(cfg, examples.Default, 0o644); err != nil {
		t.Fatal(err)
	}
	app1 := start(t, dir, "app", "-c", cfg, "--listen", "127.0.0.2:9001", "--log-level", "debug")
	app2 := start(t, dir, "app", "-c", cfg, "--listen", "127.0.0.2:9002", "--log-level", "debug")
	for _, app := range []*proc{app1, app2} {
		eventually(t, 30*time.Second, func() error {
			if !strings.Contains(app.stdout.String(), "Press Ctrl-C") {
				return fmt.Errorf("app not started yet: %s", app.output())
			}
			return nil
		})
	}
	// The app tier never needs, so never creates or reads, the origin-verify keyring.
	if _, err := os.Stat(filepath.Join(dir, ".rampart", "origin-verify.keys")); err == nil {
		t.Fatal("an app process created the origin-verify keyring")
	}
	lb := start(t, dir, "lb", "-c", cfg, "--name", "app-alb", "--log-level", "debug")
	gw := start(t, dir, "gateway", "-c", cfg, "--log-level", "debug")
	waitHTTP(t, gw, gatewayURL+"/items")
	eventually(t, 10*time.Second, func() error {
		seen := map[string]bool{}
		for range 4 {
			r, err := tryDo("GET", gatewayURL+"/items", "")
			if err != nil || r.status != 200 {
				return fmt.Errorf("GET /items: %v %d", err, r.status)
			}
			seen[r.header.Get("X-Served-By")] = true
		}
		if !seen["items-1"] || !seen["items-2"] {
			return fmt.Errorf("served by %v, want both instances", seen)
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(dir, ".rampart", "origin-verify.keys")); err != nil {
		t.Fatalf("keyring: %v", err)
	}

	app2.kill()
	stopped := time.Now()
	// interval 5s × unhealthy_threshold 2, plus a second.
	budget := 11 * time.Second
	eventually(t, budget, func() error {
		for range 4 {
			r, err := tryDo("GET", gatewayURL+"/items", "")
			if err != nil || r.status != 200 || r.header.Get("X-Served-By") != "items-1" {
				return fmt.Errorf("after stopping items-2: err %v, status %d, served by %q", err, r.status, r.header.Get("X-Served-By"))
			}
		}
		return nil
	})
	t.Logf("traffic moved to items-1 %v after items-2 stopped", time.Since(stopped).Round(time.Millisecond))

	key := currentKey(t, dir)
	for _, p := range []*proc{gw, lb, app1} {
		p.stop()
	}
	for i, p := range []*proc{gw, lb, app1, app2} {
		if strings.Contains(p.output(), key) {
			t.Errorf("process %d (%v) printed the origin-verify key", i, p.cmd.Args[1:])
		}
	}
}
