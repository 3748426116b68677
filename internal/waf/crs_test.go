package waf

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rampart-edge/rampart/internal/config"
)

// crsACL is the default topology's gateway-only rule followed by the CRS, as docs/waf.md shows.
func crsACL(group string) string {
	return `
name: edge
rules:
  - name: crs
    priority: 10
    action: block
    statement:
      managed_rule_group: ` + group + "\n"
}

func TestCRSBlocksAndExcludes(t *testing.T) {
	sqli := "/items?id=" + url.QueryEscape("1' UNION SELECT password FROM users--")
	xss := "/items?q=" + url.QueryEscape("<script>alert(document.cookie)</script>")
	tests := []struct {
		name   string
		group  string
		target string
		want   string
		ids    []int // must be among the logged ids (block) or counted (detect)
	}{
		{"benign", `{name: owasp-crs}`, "/items?id=42", "allow", nil},
		{"sqli blocked", `{name: owasp-crs}`, sqli, "block", []int{942100}},
		{"xss blocked", `{name: owasp-crs}`, xss, "block", []int{941100}},
		{"detect never blocks", `{name: owasp-crs, mode: detect}`, sqli, "allow", []int{942100}},
		{"high threshold", `{name: owasp-crs, inbound_anomaly_threshold: 1000}`, sqli, "allow", nil},
		{"excluded by id", `{name: owasp-crs, exclusions: {rule_ids: [942100, 942190, 942360, 942270, 942361, 942200, 942260, 942340, 942370, 942430, 942440, 942480, 942510, 942521, 942540, 942550, 942560, 942170, 942150]}}`, "/items?id=" + url.QueryEscape("1 UNION SELECT 1"), "allow", nil},
		{"excluded by tag", `{name: owasp-crs, exclusions: {tags: [attack-xss]}}`, xss, "allow", nil},
		{"excluded by field", `{name: owasp-crs, exclusions: {fields: [{rule_id: 941100, field: "ARGS:q"}, {rule_id: 941110, field: "ARGS:q"}, {rule_id: 941160, field: "ARGS:q"}, {rule_id: 941170, field: "ARGS:q"}, {rule_id: 941180, field: "ARGS:q"}, {rule_id: 941390, field: "ARGS:q"}, {rule_id: 941320, field: "ARGS:q"}, {rule_id: 941330, field: "ARGS:q"}]}}`, xss, "allow", nil},
		{"field exclusion is per field", `{name: owasp-crs, exclusions: {fields: [{rule_id: 941100, field: "ARGS:other"}]}}`, xss, "block", []int{941100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			a := aclFromYAML(t, crsACL(tt.group), slog.New(slog.NewJSONHandler(&logs, nil)))
			r := httptest.NewRequest("GET", tt.target, nil)
			r.Header.Set("User-Agent", "Mozilla/5.0")
			r.Header.Set("Accept", "text/html")
			d := a.Evaluate(r)
			if d.Action != tt.want {
				t.Fatalf("decision %+v, want %s; log:\n%s", d, tt.want, logs.String())
			}
			if tt.ids == nil {
				return
			}
			var entry struct {
				Action string
				IDs    []int `json:"crs_rule_ids"`
				Score  int   `json:"crs_anomaly_score"`
			}
			if err := json.Unmarshal(bytes.TrimSpace(logs.Bytes()), &entry); err != nil {
				t.Fatalf("log %q: %v", logs.String(), err)
			}
			for _, id := range tt.ids {
				if !slices.Contains(entry.IDs, id) {
					t.Errorf("logged ids %v lack %d", entry.IDs, id)
				}
				if !slices.Contains(d.Labels, "owasp-crs:"+itoa(id)) {
					t.Errorf("labels %v lack owasp-crs:%d", d.Labels, id)
				}
			}
			if tt.want == "block" && entry.Score < 5 {
				t.Errorf("anomaly score %d, want at least the threshold 5", entry.Score)
			}
			if tt.want == "allow" && entry.Action != "count" {
				t.Errorf("detect mode logged action %q, want count", entry.Action)
			}
		})
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// TestCRSBodyOverSocket sends a JSON attack and a clean JSON body through a real listener: the
// first is blocked, the second reaches the handler byte for byte.
func TestCRSBodyOverSocket(t *testing.T) {
	a := aclFromYAML(t, crsACL(`{name: owasp-crs}`), nil)
	var mu sync.Mutex
	var got []byte
	srv := httptest.NewServer(a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		got, _ = io.ReadAll(r.Body)
	})))
	defer srv.Close()
	clean := `{"name":"widget","tags":["a","b"],"price":12.5}`
	for _, tt := range []struct {
		body string
		want int
	}{
		{clean, 200},
		{`{"name":"x' OR 1=1 UNION SELECT password FROM users--"}`, 403},
		{`{"bio":"<script>alert(1)</script>"}`, 403},
	} {
		resp, err := http.Post(srv.URL+"/items", "application/json", strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s: status %d, want %d", tt.body, resp.StatusCode, tt.want)
		}
	}
	if string(got) != clean {
		t.Errorf("handler read %q, want %q", got, clean)
	}
}

func TestCRSSharedAndClosed(t *testing.T) {
	shared := NewShared()
	defer shared.Close()
	var cfg config.WebACL
	cfg.Name, cfg.DefaultAction = "a", "allow"
	cfg.Rules = []config.WAFRule{{Name: "crs", Action: "block", Statement: config.Statement{ManagedRuleGroup: &config.ManagedRuleGroupStatement{Name: "owasp-crs"}}}}
	a, err := New(cfg, nil, nil, WithShared(shared))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Name = "b"
	b, err := New(cfg, nil, nil, WithShared(shared))
	if err != nil {
		t.Fatal(err)
	}
	if len(shared.crs) != 1 || a.rules[0].match == nil || b.rules[0].match == nil {
		t.Errorf("two ACLs with the same CRS settings compiled %d groups, want 1", len(shared.crs))
	}
	shared.Close()
	if len(shared.crs) != 0 {
		t.Errorf("Close left %d groups", len(shared.crs))
	}
}

func TestCRSConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		group config.ManagedRuleGroupStatement
		want  string
	}{
		{config.ManagedRuleGroupStatement{Name: "aws-core"}, `unknown managed rule group "aws-core"`},
		{config.ManagedRuleGroupStatement{Name: "owasp-crs", ParanoiaLevel: 5}, "paranoia_level: 5"},
		{config.ManagedRuleGroupStatement{Name: "owasp-crs", Mode: "log"}, `unknown mode "log"`},
		{config.ManagedRuleGroupStatement{Name: "owasp-crs", Exclusions: config.CRSExclusions{Tags: []string{`x" "y`}}}, "invalid tag"},
		{config.ManagedRuleGroupStatement{Name: "owasp-crs", Exclusions: config.CRSExclusions{Fields: []config.FieldExclusion{{RuleID: 1, Field: "ARGS:a\"\nSecRuleEngine Off"}}}}, "invalid field exclusion"},
	} {
		_, err := New(config.WebACL{Name: "a", DefaultAction: "allow", Rules: []config.WAFRule{{Name: "r", Action: "block", Statement: config.Statement{ManagedRuleGroup: &tt.group}}}}, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: error %v, want %q", tt.group, err, tt.want)
		}
	}
}

// A compiled CRS is tens of MiB: a Shared keeps one while an open ACL uses it, and frees it with
// the last (a reload that changes CRS settings must not keep the old build for good).
func TestSharedCRSFreedWithItsLastACL(t *testing.T) {
	shared := NewShared()
	defer shared.Close()
	build := func(src string) (*WebACL, error) {
		t.Helper()
		var cfg config.WebACL
		if err := yaml.Unmarshal([]byte(src), &cfg); err != nil {
			t.Fatalf("yaml: %v", err)
		}
		cfg.DefaultAction = config.ActionAllow
		return New(cfg, testKeyrings(t), nil, WithShared(shared))
	}
	mustBuild := func(src string) *WebACL {
		t.Helper()
		a, err := build(src)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	want := func(n int, when string) {
		t.Helper()
		if got := shared.ManagedGroups(); got != n {
			t.Fatalf("%s: %d compiled groups, want %d", when, got, n)
		}
	}
	pl1 := mustBuild(crsACL(`{name: owasp-crs}`))
	pl1again := mustBuild(crsACL(`{name: owasp-crs}`))
	want(1, "two ACLs with the same settings")
	pl2 := mustBuild(crsACL(`{name: owasp-crs, paranoia_level: 2}`))
	want(2, "a second setting")

	pl1.Close()
	want(2, "one of two ACLs on PL1 closed")
	pl1again.Close()
	want(1, "both ACLs on PL1 closed")

	// A build that fails after taking the PL2 group gives it back: PL2 is freed with pl2.
	bad := crsACL(`{name: owasp-crs, paranoia_level: 2}`) + "  - {name: broken, priority: 20, action: explode, statement: {byte_match: {field: uri_path, positional_constraint: EXACTLY, search_string: /x}}}\n"
	if _, err := build(bad); err == nil {
		t.Fatal("an ACL with action explode was built")
	}
	want(1, "after a failed build")
	pl2.Close()
	want(0, "every ACL closed")
	again := mustBuild(crsACL(`{name: owasp-crs}`))
	if d := again.Evaluate(httptest.NewRequest("GET", "/items?id="+url.QueryEscape("1' UNION SELECT password FROM users--"), nil)); d.Action != "block" {
		t.Fatalf("a rebuilt CRS decided %+v, want block", d)
	}
	again.Close()
}
