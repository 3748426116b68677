package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// chromium runs headless Chromium on url with extra flags (--dump-dom, --screenshot=…) and
// returns its standard output.
func chromium(t *testing.T, url string, flags ...string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed; ./scripts/test installs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--user-data-dir=" + t.TempDir()}, flags...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", url, err, out)
	}
	return string(out)
}

var bodyAttrs = regexp.MustCompile(`<body[^>]*data-ready="(\w+)"[^>]*data-updates="(\d+)"[^>]*data-healthy="(\d+)"[^>]*data-unhealthy="(\d+)"`)

// dashboardDOM loads the dashboard and returns its DOM and the counts the page wrote on <body>.
func dashboardDOM(t *testing.T, url string) (dom string, healthy, unhealthy string) {
	t.Helper()
	// Virtual time runs the page's one-second polling a few times; each fetch really happens.
	dom = chromium(t, url, "--virtual-time-budget=3500", "--dump-dom")
	m := bodyAttrs.FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("the dashboard's <body> lacks its data attributes:\n%.2000s", dom)
	}
	if m[2] == "0" {
		t.Fatalf("the dashboard never loaded /api/state:\n%.3000s", dom)
	}
	return dom, m[3], m[4]
}

// TestDashboard loads the admin listener's dashboard in headless Chromium: after traffic it shows
// the topology with both targets healthy, the latest WAF block with its rule and the origin-verify
// key id in use; after one app instance stops, it shows that target unhealthy. With
// RAMPART_UPDATE_SCREENSHOT=1 it writes docs/dashboard.png.
func TestDashboard(t *testing.T) {
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Skip("chromium is not installed; ./scripts/test installs it")
	}
	dir := t.TempDir()
	gw, lbAddr, app1, app2, adminAddr := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	edge := fmt.Sprintf(`version: 1
secrets:
  origin-verify: {file: %[1]s/ov.keys}
gateways:
  - name: public-api
    listen: %[2]s
    cors: {mode: enforce, allow_origins: ["http://127.0.0.1:3000"]}
    request_headers:
      X-Origin-Verify: "${secret:origin-verify}"
    routes:
      - {path: /items, methods: [GET, POST], integration: {url: "http://%[3]s"}}
load_balancers:
  - name: app-alb
    listeners:
      - listen: %[3]s
        web_acl: gateway-only
        rules:
          - {priority: 10, conditions: {path: ["/items"]}, action: {forward: {target_group: items}}}
        default_action: {fixed_response: {status: 404}}
    target_groups:
      - name: items
        targets: ["%[4]s", "%[5]s"]
        health_check: {path: /healthz, interval: 200ms, timeout: 150ms, healthy_threshold: 2, unhealthy_threshold: 2}
web_acls:
  - name: gateway-only
    default_action: allow
    rules:
      - name: require-origin-verify
        priority: 0
        action: block
        statement: {not: {origin_verify: {header: X-Origin-Verify, secret: origin-verify}}}
admin:
  listen: %[6]s
`, dir, gw, lbAddr, app1, app2, adminAddr)
	apps := fmt.Sprintf(`version: 1
apps:
  - name: items
    listen: ["%[2]s", "%[3]s"]
    database: "sqlite:%[1]s/items.db"
`, dir, app1, app2)
	for name, data := range map[string]string{"edge.yaml": edge, "apps.yaml": apps} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Each app instance is a process of its own, so that one can be stopped.
	a1 := start(t, dir, "app", "-c", "apps.yaml", "--listen", app1)
	a2 := start(t, dir, "app", "-c", "apps.yaml", "--listen", app2)
	waitHTTP(t, a1, "http://"+app1+"/healthz")
	waitHTTP(t, a2, "http://"+app2+"/healthz")
	p := start(t, dir, "run", "-c", "edge.yaml")
	waitHTTP(t, p, "http://"+adminAddr+"/healthz")
	eventually(t, 30*time.Second, func() error {
		r, err := tryDo("GET", "http://"+adminAddr+"/readyz", "")
		if err != nil || r.status != 200 {
			return fmt.Errorf("readyz: %v %d %s", err, r.status, r.body)
		}
		return nil
	})

	// Traffic: the secure path, and one bypass attempt that the WAF blocks.
	for range 20 {
		if r := do(t, "GET", "http://"+gw+"/items", ""); r.status != 200 {
			t.Fatalf("GET /items through the gateway: %d %s", r.status, r.body)
		}
	}
	if r := do(t, "GET", "http://"+lbAddr+"/items", ""); r.status != 403 {
		t.Fatalf("bypass: %d, want 403", r.status)
	}
	st := adminState(t, adminAddr)
	keyID := st["keyrings"].([]any)[0].(map[string]any)["current_key_id"].(string)
	keyFile, err := os.ReadFile(filepath.Join(dir, "ov.keys"))
	if err != nil {
		t.Fatal(err)
	}

	// Live traffic while the page polls, so that its rates are not zero.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		c := &http.Client{Timeout: 5 * time.Second}
		defer c.CloseIdleConnections()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if resp, err := c.Get("http://" + gw + "/items"); err == nil {
				resp.Body.Close()
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	url := "http://" + adminAddr + "/"
	var dom string
	eventually(t, 30*time.Second, func() error {
		var healthy, unhealthy string
		dom, healthy, unhealthy = dashboardDOM(t, url)
		if healthy != "2" || unhealthy != "0" {
			return fmt.Errorf("the page shows %s healthy and %s unhealthy targets, want 2 and 0", healthy, unhealthy)
		}
		return nil
	})
	for _, want := range []string{
		`data-address="` + app1 + `" data-state="healthy"`, `data-address="` + app2 + `" data-state="healthy"`,
		"public-api", "app-alb", "WAF: gateway-only", // gateway → load balancer + WAF → group → targets
		"require-origin-verify", // the latest WAF block, with its rule
		"key " + keyID + " in use",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the dashboard lacks %q", want)
		}
	}
	if !regexp.MustCompile(`<td class="num">[1-9][0-9]*\.\d</td>`).MatchString(dom) {
		t.Errorf("the dashboard shows no non-zero request rate")
	}
	for _, secret := range regexp.MustCompile(`"(?:secret|key|value)"\s*:\s*"([^"]{16,})"`).FindAllStringSubmatch(string(keyFile), -1) {
		if strings.Contains(dom, secret[1]) {
			t.Fatal("the dashboard shows the origin-verify secret")
		}
	}
	if os.Getenv("RAMPART_UPDATE_SCREENSHOT") == "1" {
		shot, err := filepath.Abs("../docs/dashboard.png")
		if err != nil {
			t.Fatal(err)
		}
		chromium(t, url, "--virtual-time-budget=3500", "--window-size=1280,900", "--screenshot="+shot)
		t.Logf("wrote %s", shot)
	}

	a2.stop()
	eventually(t, 30*time.Second, func() error {
		var healthy, unhealthy string
		dom, healthy, unhealthy = dashboardDOM(t, url)
		if healthy != "1" || unhealthy != "1" {
			return fmt.Errorf("the page shows %s healthy and %s unhealthy targets, want 1 and 1", healthy, unhealthy)
		}
		return nil
	})
	if !strings.Contains(dom, `data-address="`+app2+`" data-state="unhealthy"`) || !strings.Contains(dom, `data-address="`+app1+`" data-state="healthy"`) {
		t.Fatalf("after stopping %s the page does not show it unhealthy and %s healthy", app2, app1)
	}
}
