package topology

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-edge/rampart/internal/config"
)

// TestGatewayWAFRedactsAPIKeyHeader: a gateway's web ACL runs before its API-key check, so a
// rule matching in the gateway's custom api_keys.header must not log the raw key.
func TestGatewayWAFRedactsAPIKeyHeader(t *testing.T) {
	dir := t.TempDir()
	const key = "pk_live_0123456789abcdefXYZ"
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), []byte(`{"keys":[{"id":"acme","value":"`+key+`"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	gwAddr := freePort(t, "127.0.0.1")
	yaml := fmt.Sprintf(`version: 1
secrets:
  api-keys: {file: %q}
gateways:
  - name: api
    listen: %s
    web_acl: edge
    api_keys: {header: X-Partner, secret: api-keys}
    routes:
      - {path: /x, methods: [GET], integration: {url: "%s"}}
web_acls:
  - name: edge
    default_action: allow
    rules:
      - {name: live-keys, priority: 1, action: block, statement: {byte_match: {header: X-Partner, positional_constraint: STARTS_WITH, search_string: pk_live_}}}
`, filepath.Join(dir, "keys.json"), gwAddr, "http://"+freePort(t, "127.0.0.1"))
	cfg, err := config.Parse("gw.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	startTopology(t, cfg, &logs, KindGateway)
	r, _ := http.NewRequest(http.MethodGet, "http://"+gwAddr+"/x", nil)
	r.Header.Set("X-Partner", key)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d, want the ACL's 403", resp.StatusCode)
	}
	waitFor(t, "the WAF log line", func() bool { return strings.Contains(logs.String(), `"rule":"live-keys"`) })
	if out := logs.String(); strings.Contains(out, key) || strings.Contains(out, "pk_live_0123") {
		t.Fatalf("the API key is in the log:\n%s", out)
	}
}
