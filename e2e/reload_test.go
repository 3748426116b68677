package e2e

import (
	"encoding/json"
	"fmt"
	"io"
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
)

// reloadPorts are the free addresses of one reload test's topology.
type reloadPorts struct{ gw, lb, app1, app2, admin string }

func newReloadPorts(t *testing.T) reloadPorts {
	return reloadPorts{gw: freePort(t), lb: freePort(t), app1: freePort(t), app2: freePort(t), admin: freePort(t)}
}

// reloadConfig is gateway → load balancer (gateway-only web ACL) → two app instances, whose
// allowed CORS origin is http://v<version>.example and whose target weights change with version,
// so that every reload changes the gateway's CORS policy and the load balancer's balancing.
func reloadConfig(dir string, p reloadPorts, version int) string {
	return fmt.Sprintf(`version: 1
secrets:
  origin-verify: {file: %[1]s/ov.keys}
gateways:
  - name: public-api
    listen: %[2]s
    cors: {mode: enforce, allow_origins: ["http://v%[7]d.example"], allow_methods: [GET, POST]}
    request_headers:
      X-Origin-Verify: "${secret:origin-verify}"
    routes:
      - {path: /items, methods: [GET, POST], integration: {url: "http://%[3]s"}}
      - {path: /whoami, methods: [GET], integration: {url: "http://%[3]s"}}
load_balancers:
  - name: app-alb
    listeners:
      - listen: %[3]s
        web_acl: gateway-only
        rules:
          - {priority: 10, conditions: {path: ["/items", "/whoami"]}, action: {forward: {target_group: items}}}
        default_action: {fixed_response: {status: 404}}
    target_groups:
      - name: items
        algorithm: weighted_random
        targets: ["%[4]s", "%[5]s"]
        weights: {"%[4]s": %[8]d, "%[5]s": %[9]d}
        health_check: {path: /healthz, interval: 200ms, timeout: 150ms, healthy_threshold: 2, unhealthy_threshold: 2}
web_acls:
  - name: gateway-only
    default_action: allow
    rules:
      - name: require-origin-verify
        priority: 0
        action: block
        statement: {not: {origin_verify: {header: X-Origin-Verify, secret: origin-verify}}}
apps:
  - name: items
    listen: ["%[4]s", "%[5]s"]
    database: "sqlite:%[1]s/items.db"
admin:
  listen: %[6]s
`, dir, p.gw, p.lb, p.app1, p.app2, p.admin, version, 1+version%3, 1+(version+1)%3)
}

// writeFileAtomic replaces path as editors and config management do: a temp file renamed over it.
func writeFileAtomic(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// adminState reads GET /api/state.
func adminState(t *testing.T, admin string) map[string]any {
	t.Helper()
	r := do(t, "GET", "http://"+admin+"/api/state", "")
	if r.status != 200 {
		t.Fatalf("GET /api/state: %d %s", r.status, r.body)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(r.body), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// corsAllows reports whether the gateway admits a request from origin now (a new connection, so
// it is served by the generation in place).
func corsAllows(gw string, version int) (bool, error) {
	r, err := tryDo("GET", "http://"+gw+"/whoami", "", "Origin", fmt.Sprintf("http://v%d.example", version))
	if err != nil {
		return false, err
	}
	switch r.status {
	case 200:
		return r.header.Get("Access-Control-Allow-Origin") == fmt.Sprintf("http://v%d.example", version), nil
	case 403:
		return false, nil
	}
	return false, fmt.Errorf("status %d: %s", r.status, r.body)
}

// TestReloadUnderLoad reloads the config 20 times (POST /reload, one SIGHUP, one file change only,
// one invalid file) while a load generator runs through gateway, load balancer and apps: no
// request fails, the new behaviour shows after every good reload, and the invalid one changes
// nothing.
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	ports := newReloadPorts(t)
	cfgPath := filepath.Join(dir, "rampart.yaml")
	writeFileAtomic(t, cfgPath, reloadConfig(dir, ports, 0))
	p := start(t, dir, "run", "-c", cfgPath, "--log-format", "text")
	waitHTTP(t, p, "http://"+ports.admin+"/healthz")
	eventually(t, 30*time.Second, func() error {
		r, err := tryDo("GET", "http://"+ports.admin+"/readyz", "")
		if err != nil || r.status != 200 {
			return fmt.Errorf("readyz: %v %d", err, r.status)
		}
		return nil
	})

	// The load generator: keep-alive clients (connections that outlive generations), GETs and
	// POSTs, bounded in goroutines and time.
	const workers = 6
	var total, failed atomic.Int64
	var failMu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	deadline := time.Now().Add(3 * time.Minute)
	for w := range workers {
		wg.Go(func() {
			c := &http.Client{Timeout: 10 * time.Second}
			defer c.CloseIdleConnections()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if time.Now().After(deadline) {
					return
				}
				var resp *http.Response
				var err error
				if w%3 == 0 && i%2 == 0 {
					resp, err = c.Post("http://"+ports.gw+"/items", "application/json", strings.NewReader(fmt.Sprintf(`{"name":"load-%d-%d"}`, w, i)))
				} else {
					resp, err = c.Get("http://" + ports.gw + "/items")
				}
				total.Add(1)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode < 400 {
						continue
					}
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
				failed.Add(1)
				failMu.Lock()
				if len(failures) < 10 {
					failures = append(failures, err.Error())
				}
				failMu.Unlock()
			}
		})
	}

	reloadVia := func(version int, how string) {
		t.Helper()
		writeFileAtomic(t, cfgPath, reloadConfig(dir, ports, version))
		switch how {
		case "admin":
			r := do(t, "POST", "http://"+ports.admin+"/reload", "")
			if r.status != 200 || !strings.Contains(r.body, `"reloaded":true`) {
				t.Fatalf("reload %d: %d %s", version, r.status, r.body)
			}
			// POST /reload returns once the new generation is in place: a new connection sees it.
			if ok, err := corsAllows(ports.gw, version); err != nil || !ok {
				t.Fatalf("reload %d: origin v%d not admitted right after POST /reload (%v)", version, version, err)
			}
		case "SIGHUP":
			if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		case "file":
			// The write above is the whole trigger.
		}
		eventually(t, 20*time.Second, func() error {
			ok, err := corsAllows(ports.gw, version)
			if err != nil || !ok {
				return fmt.Errorf("origin v%d not admitted yet (%v)", version, err)
			}
			if ok, _ := corsAllows(ports.gw, version-1); ok {
				return fmt.Errorf("origin v%d still admitted", version-1)
			}
			return nil
		})
		// The reload was the one asked for: the file watcher skips a file that holds the running
		// config, so it does not take the credit for a SIGHUP reload.
		want := map[string]string{"admin": "admin API", "SIGHUP": "SIGHUP", "file": "file change"}[how]
		if last := adminState(t, ports.admin)["reloads"].(map[string]any)["last"].(map[string]any); last["cause"] != want || last["ok"] != true {
			t.Fatalf("reload %d by %s: the last reload is %v", version, how, last)
		}
	}

	good := 0
	for i := 1; i <= 20; i++ {
		switch i {
		case 7: // invalid: rejected with file:line, and the running config stays
			writeFileAtomic(t, cfgPath, strings.Replace(reloadConfig(dir, ports, 99), "algorithm: weighted_random", "algorithm: fastest", 1))
			r := do(t, "POST", "http://"+ports.admin+"/reload", "")
			if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "rampart.yaml:") || !strings.Contains(r.body, "algorithm") {
				t.Fatalf("invalid reload: %d %s", r.status, r.body)
			}
			if ok, err := corsAllows(ports.gw, good); err != nil || !ok {
				t.Fatalf("after the invalid reload the running config changed: origin v%d refused (%v)", good, err)
			}
			if ok, _ := corsAllows(ports.gw, 99); ok {
				t.Fatal("the invalid config was applied")
			}
			continue
		case 10:
			reloadVia(i, "SIGHUP")
		case 15:
			reloadVia(i, "file")
		default:
			reloadVia(i, "admin")
		}
		good = i
	}
	close(stop)
	wg.Wait()

	st := adminState(t, ports.admin)
	reloads := st["reloads"].(map[string]any)
	t.Logf("load: %d requests, %d failed; reloads: %v ok, %v rejected", total.Load(), failed.Load(), reloads["ok"], reloads["rejected"])
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during reloads, e.g. %v", failed.Load(), total.Load(), failures)
	}
	if total.Load() < 200 {
		t.Fatalf("only %d requests ran: the load generator did not load", total.Load())
	}
	if ok := reloads["ok"].(float64); ok < 19 {
		t.Fatalf("%v successful reloads, want at least 19", ok)
	}
	if rejected := reloads["rejected"].(float64); rejected < 1 {
		t.Fatalf("%v rejected reloads, want at least 1", rejected)
	}
	out := p.output()
	for _, want := range []string{"SIGHUP: reloading configuration", "config file changed: reloading", "config reload rejected"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
}

// TestReloadListenAddress: a reload that moves the gateway to a new address opens the new one and
// closes the old; a request in flight on the old address when the reload happens completes.
func TestReloadListenAddress(t *testing.T) {
	dir := t.TempDir()
	ports := newReloadPorts(t)
	cfgPath := filepath.Join(dir, "rampart.yaml")
	writeFileAtomic(t, cfgPath, reloadConfig(dir, ports, 1))
	p := start(t, dir, "run", "-c", cfgPath)
	waitHTTP(t, p, "http://"+ports.admin+"/healthz")
	if r := do(t, "GET", "http://"+ports.gw+"/items", ""); r.status != 200 {
		t.Fatalf("GET /items: %d %s", r.status, r.body)
	}
	// A request in flight across the reload: its head and half its body are sent before, the rest
	// after; it must finish on the generation it started on.
	body := `{"name":"in flight across a reload"}`
	inflight, err := net.Dial("tcp", ports.gw)
	if err != nil {
		t.Fatal(err)
	}
	defer inflight.Close()
	fmt.Fprintf(inflight, "POST /items HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", ports.gw, len(body), body[:10])

	moved := ports
	moved.gw = freePort(t)
	writeFileAtomic(t, cfgPath, reloadConfig(dir, moved, 1))
	if r := do(t, "POST", "http://"+ports.admin+"/reload", ""); r.status != 200 {
		t.Fatalf("reload: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", "http://"+moved.gw+"/items", ""); r.status != 200 {
		t.Fatalf("the new address: %d %s", r.status, r.body)
	}
	eventually(t, 10*time.Second, func() error {
		c, err := net.DialTimeout("tcp", ports.gw, 500*time.Millisecond)
		if err == nil {
			c.Close()
			return fmt.Errorf("the old address %s still accepts connections", ports.gw)
		}
		return nil
	})
	// The old gateway address is closed, but the request it accepted before still completes.
	if _, err := io.WriteString(inflight, body[10:]); err != nil {
		t.Fatalf("finishing the in-flight request: %v", err)
	}
	_ = inflight.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := io.ReadAll(inflight)
	if err != nil || !strings.HasPrefix(string(resp), "HTTP/1.1 201") || !strings.Contains(string(resp), "in flight across a reload") {
		t.Fatalf("the request in flight across the reload: %v\n%s", err, resp)
	}
	st := adminState(t, ports.admin)
	b, _ := json.Marshal(st["listeners"])
	if !strings.Contains(string(b), moved.gw) || strings.Contains(string(b), `"`+ports.gw+`"`) {
		t.Fatalf("listeners after the move: %s", b)
	}
}
