package topology

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/ratelimit"
)

const limitsAPIKey = "k_live_limits_0123456789abcdef"

// limitsConfig writes a gateway with a route throttle (burst 3, next token in ~17 minutes) and a
// usage plan quota of 5 a day kept in dir/quota.json; origin is its CORS origin, the setting the
// test changes to reload.
func limitsConfig(t *testing.T, dir, path, gw, backend, origin string) {
	t.Helper()
	keys := fmt.Sprintf(`{"keys": [{"id": "acme", "value": %q}]}`, limitsAPIKey)
	if err := os.WriteFile(filepath.Join(dir, "api-keys.json"), []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`version: 1
secrets:
  api-keys: {file: %[1]s/api-keys.json}
gateways:
  - name: gw
    listen: %[2]s
    cors: {mode: enforce, allow_origins: ["%[4]s"]}
    api_keys: {secret: api-keys, quota_file: %[1]s/quota.json}
    usage_plans:
      - {name: basic, keys: [acme], quota: {limit: 5, period: day}}
    routes:
      - {path: /limited, methods: [GET], throttle: [{rate: 0.001, burst: 3}], integration: {url: "%[3]s"}}
      - {path: /items, methods: [GET], integration: {url: "%[3]s"}}
`, dir, gw, backend, origin)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
}

// quotaUsed reads the count of acme's quota in the quota file (-1: no such counter yet).
func quotaUsed(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	var f struct {
		Counters map[string]struct {
			Used int64 `json:"used"`
		} `json:"counters"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("quota file: %v", err)
	}
	for k, c := range f.Counters {
		if strings.HasSuffix(k, "|acme") {
			return c.Used
		}
	}
	return -1
}

// TestReloadKeepsThrottlesAndQuotas checks that a reload that changes nothing about the limits
// neither hands clients a fresh burst nor a fresh quota, and that the old generation, while it
// drains and when it retires, does not overwrite the counts of the new one in the quota file.
func TestReloadKeepsThrottlesAndQuotas(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rampart.yaml")
	quotaPath := filepath.Join(dir, "quota.json")
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	gw := freePort(t, "127.0.0.1")
	limitsConfig(t, dir, path, gw, backend.URL, "http://one.example")
	topo := serveFile(t, path, Selection{Kinds: map[Kind]bool{KindGateway: true}}, &syncBuffer{})

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	call := func(p string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+gw+p, nil)
		req.Header.Set("X-Api-Key", limitsAPIKey)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	expect := func(step, p string, code int, body string) {
		t.Helper()
		got, b := call(p)
		if got != code || !strings.Contains(b, body) {
			t.Fatalf("%s: GET %s = %d %q, want %d %q", step, p, got, b, code, body)
		}
	}

	// The burst of 3 is used up (3 requests counted by the quota), the 4th is throttled (and not
	// counted: the throttle refuses it before the key is looked at).
	for i := range 3 {
		expect(fmt.Sprintf("before reload, request %d", i+1), "/limited", 200, "ok")
	}
	expect("before reload, burst used up", "/limited", 429, "Too Many Requests")

	limitsConfig(t, dir, path, gw, backend.URL, "http://two.example")
	if err := topo.Reload(t.Context(), "test"); err != nil {
		t.Fatal(err)
	}
	if n := topo.current().seq; n != 2 {
		t.Fatalf("generation %d serves, want 2", n)
	}

	expect("after reload, the bucket is still empty", "/limited", 429, "Too Many Requests")
	expect("after reload, quota 4 of 5", "/items", 200, "ok")
	expect("after reload, quota 5 of 5", "/items", 200, "ok")
	expect("after reload, quota used up", "/items", 429, "Limit Exceeded")

	// Once the old generation has retired (drained and closed), the file holds the total count,
	// and keeps holding it: the retired generation's last write did not replace the new one's.
	topo.retiring.Wait()
	waitFor(t, "the quota file to count 5", func() bool { return quotaUsed(t, quotaPath) == 5 })
	time.Sleep(2 * ratelimit.FlushInterval) // writes after the retirement would show here
	if n := quotaUsed(t, quotaPath); n != 5 {
		t.Fatalf("quota file counts %d after the old generation retired, want 5", n)
	}
}
