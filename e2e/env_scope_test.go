package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// envScopeConfig is one file for two hosts: each tier takes its addresses from variables that
// only it references (docs/configuration.md, "${env:NAME}").
const envScopeConfig = `version: 1
secrets:
  origin-verify: {file: .rampart/origin-verify.keys}
gateways:
  - name: api
    listen: "${env:SCOPE_GW_LISTEN}"
    request_headers:
      X-Origin-Verify: "${secret:origin-verify}"
    routes:
      - {path: /items, methods: [GET], integration: {url: "${env:SCOPE_LB_URL}"}}
load_balancers:
  - name: alb
    listeners:
      - listen: "${env:SCOPE_LB_LISTEN}"
        web_acl: gateway-only
        default_action: {forward: {target_group: backend}}
    target_groups:
      - name: backend
        targets: ["${env:SCOPE_BACKEND}"]
        health_check: {path: /healthz, interval: 1s, timeout: 500ms, healthy_threshold: 2, unhealthy_threshold: 2}
web_acls:
  - name: gateway-only
    rules:
      - name: require-origin-verify
        priority: 0
        action: block
        statement: {not: {origin_verify: {header: X-Origin-Verify, secret: origin-verify}}}
`

// TestComponentNeedsOnlyItsVariables starts `rampart lb` and `rampart gateway` from one file,
// each with only the variables its own section references set, and sends a request through
// both. `rampart validate`, which checks the whole file, still wants every variable.
func TestComponentNeedsOnlyItsVariables(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Origin-Verify") != "" {
			http.Error(w, "the origin-verify header reached the app", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "from the backend")
	}))
	t.Cleanup(backend.Close)

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "shared.yaml"), []byte(envScopeConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	gw, lb := freePort(t), freePort(t)
	lbEnv := []string{"SCOPE_LB_LISTEN=" + lb, "SCOPE_BACKEND=" + strings.TrimPrefix(backend.URL, "http://")}
	gwEnv := []string{"SCOPE_GW_LISTEN=" + gw, "SCOPE_LB_URL=http://" + lb}

	out, err := runEnv(t, dir, gwEnv, "validate", "-c", "shared.yaml")
	if err == nil || !strings.Contains(out, `environment variable "SCOPE_LB_LISTEN" is not set`) || !strings.Contains(out, "shared.yaml:") {
		t.Fatalf("validate of the whole file with the gateway's variables only: %v\n%s", err, out)
	}

	// The load balancer first: it creates the keyring the gateway then reads.
	lbProc := startEnv(t, dir, lbEnv, "lb", "-c", "shared.yaml", "--grace", "1s")
	waitHTTP(t, lbProc, "http://"+lb+"/nothing")
	gwProc := startEnv(t, dir, gwEnv, "gateway", "-c", "shared.yaml", "--grace", "1s")
	waitHTTP(t, gwProc, "http://"+gw+"/nothing")

	eventually(t, 30*time.Second, func() error {
		r, err := tryDo("GET", "http://"+gw+"/items", "")
		if err != nil || r.status != http.StatusOK || r.body != "from the backend" {
			return fmt.Errorf("GET /items through the gateway: %d %v %q", r.status, err, r.body)
		}
		return nil
	})
	if r := do(t, "GET", "http://"+lb+"/items", ""); r.status != http.StatusForbidden {
		t.Fatalf("GET /items at the load balancer, bypassing the gateway: %d %s, want 403", r.status, r.body)
	}

	// A reload reads the file again for the same components: still without the other's variables.
	for _, p := range []*proc{lbProc, gwProc} {
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []*proc{lbProc, gwProc} {
		eventually(t, 30*time.Second, func() error {
			if out := p.output(); strings.Contains(out, "config reload rejected") {
				t.Fatalf("rampart %s rejected the reload:\n%s", p.cmd.Args[1], out)
			} else if !strings.Contains(out, "config reloaded") {
				return fmt.Errorf("rampart %s has not reloaded yet", p.cmd.Args[1])
			}
			return nil
		})
	}
	if r := do(t, "GET", "http://"+gw+"/items", ""); r.status != http.StatusOK || r.body != "from the backend" {
		t.Fatalf("GET /items through the gateway after the reloads: %d %q", r.status, r.body)
	}
}
