package topology

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/observe"
)

const testToken = "test-admin-token-0123456789"

// fileConfig writes a gateway → load balancer → app topology with an admin listener to a file;
// origin is the gateway's one allowed CORS origin.
func fileConfig(t *testing.T, dir, path string, gw, lbAddr, app, adminAddr, origin string) {
	t.Helper()
	yaml := fmt.Sprintf(`version: 1
secrets:
  origin-verify: {file: %[1]s/ov.keys}
gateways:
  - name: gw
    listen: %[2]s
    cors: {mode: enforce, allow_origins: ["%[6]s"]}
    request_headers:
      X-Origin-Verify: "${secret:origin-verify}"
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
        statement: {not: {origin_verify: {header: X-Origin-Verify, secret: origin-verify}}}
apps:
  - name: items
    listen: ["%[4]s"]
    database: "sqlite:%[1]s/items.db"
admin:
  listen: %[5]s
  token: %[7]s
`, dir, gw, lbAddr, app, adminAddr, origin, testToken)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
}

func adminCall(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func originAllowed(t *testing.T, gw, origin string) bool {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+gw+"/items", nil)
	req.Header.Set("Origin", origin)
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// TestReloadAndAdminAPI runs a topology from a file and drives it through its admin API over real
// sockets: readiness, targets, register and deregister, the redacted config, a good reload, a
// rejected one, and a reload that moves a listener.
func TestReloadAndAdminAPI(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rampart.yaml")
	gw, lbAddr, app, adminAddr := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	fileConfig(t, dir, path, gw, lbAddr, app, adminAddr, "http://one.example")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	sel := Selection{Kinds: map[Kind]bool{KindGateway: true, KindLB: true, KindApp: true, KindAdmin: true}}
	ctx, cancel := context.WithCancel(context.Background())
	red := &observe.Redactor{}
	topo, err := Build(ctx, cfg, sel, Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)), Redactor: red, ConfigPath: path, Version: "v-test"})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := topo.Reload(ctx, "test"); err == nil {
		t.Fatal("Reload before Serve succeeded")
	}
	if err := topo.Listen(); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- topo.Serve(ctx, 2*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	base := "http://" + adminAddr
	waitFor(t, "readiness", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if !originAllowed(t, gw, "http://one.example") {
		t.Fatal("the first config's origin is refused")
	}

	// Targets: list, register, refuse a duplicate, drain.
	code, body := adminCall(t, "GET", base+"/targets", "")
	if code != 200 || !strings.Contains(body, `"address":"`+app+`"`) || !strings.Contains(body, `"state":"healthy"`) {
		t.Fatalf("GET /targets: %d %s", code, body)
	}
	extra := freePort(t, "127.0.0.1")
	if code, body := adminCall(t, "POST", base+"/targets/lb/app", `{"address":"`+extra+`","weight":3}`); code != 201 {
		t.Fatalf("register: %d %s", code, body)
	}
	if code, _ := adminCall(t, "POST", base+"/targets/lb/app", `{"address":"`+extra+`"}`); code != 409 {
		t.Fatalf("register twice: %d, want 409", code)
	}
	if code, _ := adminCall(t, "POST", base+"/targets/nope/app", `{"address":"`+extra+`"}`); code != 404 {
		t.Fatalf("register in a missing load balancer: %d, want 404", code)
	}
	if code, _ := adminCall(t, "POST", base+"/targets/lb/app", `{"address":"no-port"}`); code != 400 {
		t.Fatalf("register a bad address: %d, want 400", code)
	}
	_, body = adminCall(t, "GET", base+"/targets", "")
	if !strings.Contains(body, `"address":"`+extra+`","weight":3`) {
		t.Fatalf("the registered target is not listed: %s", body)
	}
	if code, body := adminCall(t, "DELETE", base+"/targets/lb/app/"+extra, ""); code != 202 {
		t.Fatalf("deregister: %d %s", code, body)
	}
	waitFor(t, "the drained target to go", func() bool {
		_, body := adminCall(t, "GET", base+"/targets", "")
		return !strings.Contains(body, extra)
	})
	if code, _ := adminCall(t, "DELETE", base+"/targets/lb/app/"+extra, ""); code != 404 {
		t.Fatalf("deregister a missing target: %d, want 404", code)
	}

	// The config: the token is redacted, the secret reference stays.
	code, body = adminCall(t, "GET", base+"/config", "")
	if code != 200 || strings.Contains(body, testToken) || !strings.Contains(body, "${secret:origin-verify}") || !strings.Contains(body, `"token":"[REDACTED]"`) {
		t.Fatalf("GET /config: %d %s", code, body)
	}

	// A good reload changes the CORS origin at once. A target registered through the API and not
	// in the file does not survive it, and the log says so.
	if code, body := adminCall(t, "POST", base+"/targets/lb/app", `{"address":"`+extra+`"}`); code != 201 {
		t.Fatalf("register: %d %s", code, body)
	}
	fileConfig(t, dir, path, gw, lbAddr, app, adminAddr, "http://two.example")
	code, body = adminCall(t, "POST", base+"/reload", "")
	if code != 200 || !strings.Contains(body, `"reloaded":true`) {
		t.Fatalf("reload: %d %s", code, body)
	}
	if !originAllowed(t, gw, "http://two.example") || originAllowed(t, gw, "http://one.example") {
		t.Fatal("the reloaded CORS origin is not in force")
	}
	if _, body := adminCall(t, "GET", base+"/targets", ""); strings.Contains(body, extra) || !strings.Contains(logs.String(), "not in the reloaded config") {
		t.Fatalf("the API-registered target after a reload: %s\n%s", body, logs)
	}

	// A bad one is rejected with file:line, and the running config stays.
	if err := os.WriteFile(path, []byte("version: 1\ngateways:\n  - name: gw\n    listen: nowhere\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, body = adminCall(t, "POST", base+"/reload", "")
	var rej struct {
		Errors []string `json:"errors"`
	}
	_ = json.Unmarshal([]byte(body), &rej)
	if code != 422 || len(rej.Errors) == 0 || !strings.HasPrefix(rej.Errors[0], path+":4:") {
		t.Fatalf("invalid reload: %d %s", code, body)
	}
	if !originAllowed(t, gw, "http://two.example") {
		t.Fatal("a rejected reload changed the running config")
	}
	if ok, rejected := topo.ReloadCount(); ok < 1 || rejected < 1 {
		t.Fatalf("reload counts: %d ok, %d rejected", ok, rejected)
	}

	// Moving the gateway opens the new address and closes the old one.
	gw2 := freePort(t, "127.0.0.1")
	fileConfig(t, dir, path, gw2, lbAddr, app, adminAddr, "http://two.example")
	if code, body := adminCall(t, "POST", base+"/reload", ""); code != 200 {
		t.Fatalf("reload with a moved gateway: %d %s", code, body)
	}
	if !originAllowed(t, gw2, "http://two.example") {
		t.Fatal("the moved gateway does not serve")
	}
	waitFor(t, "the old gateway address to close", func() bool {
		c, err := net.DialTimeout("tcp", gw, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if topo.Keyring("origin-verify") == nil {
		t.Fatal("the keyring is gone after reloads")
	}
}

// TestReloadEmbeddedDefault: a topology without a config file refuses to reload, clearly.
func TestReloadEmbeddedDefault(t *testing.T) {
	dir := t.TempDir()
	cfg, _ := edgeConfig(t, dir, config.OriginVerifyStatic)
	topo := startTopology(t, cfg, io.Discard, KindApp)
	if err := topo.Reload(context.Background(), "test"); err != ErrNotReloadable {
		t.Fatalf("Reload: %v, want ErrNotReloadable", err)
	}
}

func TestRedactedConfig(t *testing.T) {
	yaml := `version: 1
secrets:
  origin-verify: {file: ov.keys}
gateways:
  - name: gw
    listen: 127.0.0.1:1
    rate_limit_store: "redis://:hunter2-redis-password@127.0.0.1:6379/0"
    on_store_error: deny
    request_headers:
      X-Origin-Verify: "${secret:origin-verify}"
      Authorization: "Bearer literal-credential-123"
      X-Trace: "static"
    routes:
      - {path: /a, methods: [GET], integration: {url: "http://user:url-password-42@127.0.0.1:2"}}
admin:
  listen: 127.0.0.1:3
  token: admin-token-abcdefghijkl
`
	cfg, err := config.Parse("t.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	red := &observe.Redactor{}
	red.Add("static-but-a-loaded-secret") // never present here, just exercising the path
	b, _ := json.Marshal(redactedConfig(cfg, red))
	out := string(b)
	for _, leaked := range []string{"hunter2-redis-password", "literal-credential-123", "url-password-42", "admin-token-abcdefghijkl"} {
		if strings.Contains(out, leaked) {
			t.Errorf("the config shows %q:\n%s", leaked, out)
		}
	}
	for _, kept := range []string{"${secret:origin-verify}", `"static"`, "127.0.0.1:1", `"file":"t.yaml"`} {
		if !strings.Contains(out, kept) {
			t.Errorf("the config lacks %q:\n%s", kept, out)
		}
	}
}

// TestReloadLeavesNoGoroutine: replaced generations stop everything they started (health checks,
// keyring watchers, servers, upstream connections), and so does the topology when it stops.
func TestReloadLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	path := filepath.Join(dir, "rampart.yaml")
	gw, lbAddr, app, adminAddr := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	fileConfig(t, dir, path, gw, lbAddr, app, adminAddr, "http://one.example")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	sel := Selection{Kinds: map[Kind]bool{KindGateway: true, KindLB: true, KindApp: true, KindAdmin: true}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	topo, err := Build(ctx, cfg, sel, Options{ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- topo.Serve(ctx, 2*time.Second) }()
	waitFor(t, "serving", func() bool { return originAllowed(t, gw, "http://one.example") })
	for i, origin := range []string{"http://two.example", "http://three.example", "http://four.example"} {
		fileConfig(t, dir, path, gw, lbAddr, app, adminAddr, origin)
		if code, body := adminCall(t, "POST", "http://"+adminAddr+"/reload", ""); code != 200 {
			t.Fatalf("reload %d: %d %s", i, code, body)
		}
		if !originAllowed(t, gw, origin) {
			t.Fatalf("reload %d not in force", i)
		}
	}
	http.DefaultClient.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
