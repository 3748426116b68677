package topology

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-edge/rampart/internal/config"
)

// TestWAFMatchesAdminRoute runs a load balancer with a web ACL and the admin listener, makes the
// ACL block requests, and reads them back from GET /waf/matches: newest first, limited, filtered
// by ACL, and redacted exactly like the WAF log.
func TestWAFMatchesAdminRoute(t *testing.T) {
	lbAddr, adminAddr := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	yaml := fmt.Sprintf(`version: 1
load_balancers:
  - name: lb
    listeners:
      - listen: %s
        web_acl: edge
        default_action: {fixed_response: {status: 200, body: ok}}
web_acls:
  - name: edge
    default_action: allow
    rules:
      - {name: no-basic-auth, priority: 1, action: block, statement: {byte_match: {header: Authorization, positional_constraint: STARTS_WITH, search_string: Basic}}}
      - {name: per-ip, priority: 2, action: block, statement: {rate_based: {limit: 2, evaluation_window_sec: 60}}}
admin:
  listen: %s
`, lbAddr, adminAddr)
	cfg, err := config.Parse("waf.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	startTopology(t, cfg, &logs, KindLB, KindAdmin)

	status := func(header ...string) int {
		r, _ := http.NewRequest(http.MethodGet, "http://"+lbAddr+"/x", nil)
		if len(header) == 2 {
			r.Header.Set(header[0], header[1])
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const credential = "Basic dXNlcjpodW50ZXIy" // user:hunter2
	got := []int{status("Authorization", credential), status(), status(), status()}
	if fmt.Sprint(got) != "[403 200 200 403]" {
		t.Fatalf("statuses %v, want [403 200 200 403]", got)
	}

	type matches struct {
		Matches []struct {
			ACL, Rule, Action, Field, Value, Path, SourceIP string
		} `json:"matches"`
		Capacity int   `json:"capacity"`
		Total    int64 `json:"total"`
	}
	read := func(query string) (int, matches) {
		resp, err := http.Get("http://" + adminAddr + "/waf/matches" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m matches
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, m
	}
	code, m := read("")
	if code != 200 || len(m.Matches) != 2 || m.Total != 2 || m.Capacity < 2 {
		t.Fatalf("GET /waf/matches: %d %+v", code, m)
	}
	newest, oldest := m.Matches[0], m.Matches[1]
	if newest.Rule != "per-ip" || newest.Field != "source_ip" || newest.Value != "127.0.0.1" || newest.Action != "block" {
		t.Errorf("newest match %+v", newest)
	}
	if oldest.Rule != "no-basic-auth" || oldest.Field != "header:Authorization" || oldest.Value != "[REDACTED]" || oldest.Path != "/x" {
		t.Errorf("oldest match %+v, want the Authorization value redacted", oldest)
	}
	if _, all := read(""); strings.Contains(fmt.Sprint(all), "dXNlcjpodW50ZXIy") || strings.Contains(logs.String(), "dXNlcjpodW50ZXIy") {
		t.Error("the credential reached the admin API or the log")
	}
	if !strings.Contains(logs.String(), `"field":"header:Authorization","value":"[REDACTED]"`) {
		t.Errorf("the WAF log line differs from the admin entry:\n%s", logs.String())
	}
	if _, m := read("?limit=1"); len(m.Matches) != 1 || m.Matches[0].Rule != "per-ip" {
		t.Errorf("limit=1: %+v", m)
	}
	if _, m := read("?acl=other"); len(m.Matches) != 0 {
		t.Errorf("acl=other: %+v", m)
	}
	if code, _ := read("?limit=-3"); code != http.StatusBadRequest {
		t.Errorf("limit=-3: status %d, want 400", code)
	}
	if resp, err := http.Post("http://"+adminAddr+"/waf/matches", "application/json", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /waf/matches: %v %v, want 405", resp, err)
	} else {
		resp.Body.Close()
	}
}

// A reload that changes the CRS settings frees the old compiled CRS once the generation that used
// it has retired: reloads that tune paranoia levels must not pile up builds of tens of MiB.
func TestReloadFreesTheReplacedCRS(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rampart.yaml")
	lbAddr := freePort(t, "127.0.0.1")
	write := func(level int) {
		t.Helper()
		yaml := fmt.Sprintf(`version: 1
load_balancers:
  - name: lb
    listeners:
      - listen: %s
        web_acl: edge
        default_action: {fixed_response: {status: 200, body: ok}}
web_acls:
  - name: edge
    default_action: allow
    rules:
      - {name: crs, priority: 1, action: block, statement: {managed_rule_group: {name: owasp-crs, paranoia_level: %d}}}
`, lbAddr, level)
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(1)
	topo := serveFile(t, path, Selection{Kinds: map[Kind]bool{KindLB: true}}, &syncBuffer{})
	shared := topo.persist.wafShared()
	if n := shared.ManagedGroups(); n != 1 {
		t.Fatalf("at start: %d compiled CRS groups, want 1", n)
	}
	for i, level := range []int{2, 2, 1} {
		write(level)
		if err := topo.Reload(context.Background(), "test"); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		topo.retiring.Wait() // the replaced generation has drained and closed
		if n := shared.ManagedGroups(); n != 1 {
			t.Fatalf("after reload %d (paranoia level %d): %d compiled CRS groups, want 1", i, level, n)
		}
	}
	resp, err := http.Get("http://" + lbAddr + "/items?id=" + url.QueryEscape("1' UNION SELECT password FROM users--"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("SQL injection after the reloads: %d, want 403 (the CRS of the running generation)", resp.StatusCode)
	}
}
