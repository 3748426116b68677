package topology

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/rampart-edge/rampart/internal/config"
)

func TestSelectionConfigScope(t *testing.T) {
	kinds := func(ks ...Kind) map[Kind]bool {
		m := map[Kind]bool{}
		for _, k := range ks {
			m[k] = true
		}
		return m
	}
	tests := []struct {
		name string
		sel  Selection
		want config.Scope
	}{
		{"run: the whole file", Selection{Kinds: kinds(KindGateway, KindLB, KindApp, KindWeb, KindAdmin)}, config.Scope{}},
		{"gateway", Selection{Kinds: kinds(KindGateway)}, config.Scope{Gateways: true}},
		{"lb with admin", Selection{Kinds: kinds(KindLB, KindAdmin), AdminListen: "127.0.0.1:1"}, config.Scope{LoadBalancers: true}},
		{"app by name and address", Selection{Kinds: kinds(KindApp), Name: "items", Listen: "127.0.0.2:9001"}, config.Scope{Apps: true, Name: "items"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.sel.ConfigScope(); got != tt.want {
				t.Errorf("ConfigScope() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestScopedProcessReloads runs a load balancer from a file whose gateway section and unused web
// ACL reference variables that are not set, then reloads it: the reload loads the file for the
// same components, and neither build touches the unused ACL's keyring.
func TestScopedProcessReloads(t *testing.T) {
	t.Setenv("RAMPART_TEST_SCOPE_LB", freePort(t, "127.0.0.1"))
	dir := t.TempDir()
	path := filepath.Join(dir, "shared.yaml")
	write := func(status int) {
		yaml := fmt.Sprintf(`version: 1
secrets:
  origin-verify: {file: %[1]s/ov.keys}
  partner: {file: "${env:RAMPART_TEST_SCOPE_UNSET_KEYS}"}
gateways:
  - name: api
    listen: "${env:RAMPART_TEST_SCOPE_UNSET_GW}"
    request_headers: {X-Origin-Verify: "${secret:origin-verify}"}
    routes: [{path: /a, methods: [GET], integration: {url: "http://${env:RAMPART_TEST_SCOPE_LB}"}}]
load_balancers:
  - name: alb
    listeners:
      - listen: "${env:RAMPART_TEST_SCOPE_LB}"
        web_acl: edge
        default_action: {fixed_response: {status: %[2]d}}
web_acls:
  - name: edge
    rules: [{name: ov, priority: 0, action: block, statement: {not: {origin_verify: {header: X-Origin-Verify, secret: origin-verify}}}}]
  - name: partner
    rules: [{name: ov, priority: 0, action: block, statement: {not: {origin_verify: {header: X-Partner, secret: partner}}}}]
`, dir, status)
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(200)

	sel := Selection{Kinds: map[Kind]bool{KindLB: true}}
	cfg, err := sel.ConfigScope().Load(path)
	if err != nil {
		t.Fatal(err)
	}
	topo := serveTopology(t, cfg, sel, Options{Logger: slog.New(slog.DiscardHandler), ConfigPath: path})
	if topo.Keyring("partner") != nil || topo.Keyring("origin-verify") == nil {
		t.Fatalf("keyrings: partner %v, origin-verify %v: want only the used one", topo.Keyring("partner"), topo.Keyring("origin-verify"))
	}

	waitFor(t, "serving", func() bool { return topo.Reload(context.Background(), "test") == nil })
	write(204)
	if err := topo.Reload(context.Background(), "test"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if ok, rejected := topo.ReloadCount(); ok < 2 || rejected != 0 {
		t.Errorf("reloads: %d ok, %d rejected", ok, rejected)
	}
	if topo.Keyring("partner") != nil {
		t.Error("the reload loaded the unused ACL's keyring")
	}
}
