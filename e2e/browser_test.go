package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/demoweb"
)

// chromiumDOM loads url in headless Chromium, lets its scripts and fetches run, and returns the
// resulting DOM.
func chromiumDOM(t *testing.T, url string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed; ./scripts/test installs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The flags keep Chromium off the network it cannot reach here (no background services).
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+t.TempDir(), "--virtual-time-budget=10000", "--dump-dom", url)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", url, err, out)
	}
	return string(out)
}

// TestBrowserDemoPage loads the demo page in a real browser from the allowed origin (items load
// through gateway, load balancer and app) and the same page from a disallowed origin (the fetch
// fails: the gateway refuses the origin).
func TestBrowserDemoPage(t *testing.T) {
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Skip("chromium is not installed; ./scripts/test installs it")
	}
	portsFree(t, append(defaultAddrs, "127.0.0.1:3001")...)
	dir := t.TempDir()
	p := start(t, dir, "run")
	waitHTTP(t, p, gatewayURL+"/items")
	waitHTTP(t, p, "http://127.0.0.1:3000/")
	name := fmt.Sprintf("seen-in-browser-%d", time.Now().UnixNano())
	if r := do(t, "POST", gatewayURL+"/items", `{"name":"`+name+`"}`, "Content-Type", "application/json"); r.status != 201 {
		t.Fatalf("create item: %d %s", r.status, r.body)
	}

	dom := chromiumDOM(t, "http://127.0.0.1:3000/")
	if !strings.Contains(dom, name) || !strings.Contains(dom, "ok:") {
		t.Fatalf("the demo page on the allowed origin did not list the items:\n%s", dom)
	}

	// The same page, served by the test from an origin the gateway does not allow.
	ln, err := net.Listen("tcp", "127.0.0.1:3001")
	if err != nil {
		t.Fatal(err)
	}
	foreign := &http.Server{Handler: demoweb.New(gatewayURL)}
	go foreign.Serve(ln)
	t.Cleanup(func() { foreign.Close() })

	dom = chromiumDOM(t, "http://127.0.0.1:3001/")
	if strings.Contains(dom, name) || !strings.Contains(dom, "error:") {
		t.Fatalf("the page on a disallowed origin was not refused:\n%s", dom)
	}
}
