package waf

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rampart-edge/rampart/examples"
	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/originverify"
)

const (
	currentSecret  = "current-secret-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	previousSecret = "previous-secret-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	retiredSecret  = "retired-secret-CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
)

func testKeyrings(t testing.TB) map[string]*originverify.Keyring {
	t.Helper()
	data := `{"version":1,"keys":[
		{"id":"k1","secret":"` + currentSecret + `","state":"current"},
		{"id":"k0","secret":"` + previousSecret + `","state":"previous"},
		{"id":"kx","secret":"` + retiredSecret + `","state":"retired"}]}`
	kr, err := originverify.Parse("origin-verify", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*originverify.Keyring{"origin-verify": kr}
}

// gatewayOnlyACL reads the gateway-only ACL from the embedded default topology, so the tests
// check the rule users actually run.
func gatewayOnlyACL(t testing.TB) config.WebACL {
	t.Helper()
	var doc struct {
		WebACLs []config.WebACL `yaml:"web_acls"`
	}
	if err := yaml.Unmarshal(examples.Default, &doc); err != nil {
		t.Fatalf("decode examples/rampart.yaml: %v", err)
	}
	for _, a := range doc.WebACLs {
		if a.Name == "gateway-only" {
			return a
		}
	}
	t.Fatal("examples/rampart.yaml has no gateway-only web ACL")
	return config.WebACL{}
}

func ov(header string) *config.Statement {
	return &config.Statement{OriginVerify: &config.OriginVerifyStatement{Header: header, Secret: "origin-verify"}}
}

func bm(header, constraint, search string) config.Statement {
	return config.Statement{ByteMatch: &config.ByteMatchStatement{Header: header, PositionalConstraint: constraint, SearchString: search}}
}

func request(headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/items", nil)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return r
}

func TestEvaluateDecisions(t *testing.T) {
	acl := config.WebACL{
		Name:          "test",
		DefaultAction: config.ActionAllow,
		Rules: []config.WAFRule{
			// Listed out of order: evaluation must follow priority.
			{Name: "block-bots", Priority: 20, Action: config.ActionBlock, Statement: bm("User-Agent", config.MatchContains, "bot")},
			{Name: "require-origin-verify", Priority: 0, Action: config.ActionBlock, Statement: config.Statement{Not: ov("X-Origin-Verify")}},
			{Name: "count-curl", Priority: 5, Action: config.ActionCount, Statement: bm("User-Agent", config.MatchStartsWith, "curl/")},
			{Name: "allow-trusted", Priority: 10, Action: config.ActionAllow, Statement: config.Statement{And: []config.Statement{
				bm("X-Team", config.MatchExactly, "ops"),
				{Or: []config.Statement{bm("X-Env", config.MatchEndsWith, "-prod"), bm("X-Env", config.MatchExactly, "staging")}},
			}}},
			{Name: "count-all", Priority: 30, Action: config.ActionCount, Statement: bm("X-Origin-Verify", config.MatchContains, "")},
		},
	}
	a, err := New(acl, testKeyrings(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		req     *http.Request
		action  string
		rule    string
		counted []string
	}{
		{"no secret", request(), config.ActionBlock, "require-origin-verify", nil},
		{"wrong secret", request("X-Origin-Verify", "nope"), config.ActionBlock, "require-origin-verify", nil},
		{"retired secret", request("X-Origin-Verify", retiredSecret), config.ActionBlock, "require-origin-verify", nil},
		{"duplicate secret", request("X-Origin-Verify", currentSecret, "X-Origin-Verify", currentSecret), config.ActionBlock, "require-origin-verify", nil},
		{"secret with suffix", request("X-Origin-Verify", currentSecret+"x"), config.ActionBlock, "require-origin-verify", nil},
		{"current secret, default allow", request("X-Origin-Verify", currentSecret), config.ActionAllow, "", []string{"count-all"}},
		{"previous secret accepted", request("X-Origin-Verify", previousSecret), config.ActionAllow, "", []string{"count-all"}},
		{"count then block", request("X-Origin-Verify", currentSecret, "User-Agent", "curl/8 bot"), config.ActionBlock, "block-bots", []string{"count-curl"}},
		{"allow stops before block", request("X-Origin-Verify", currentSecret, "User-Agent", "curl/8 bot", "X-Team", "ops", "X-Env", "eu-prod"), config.ActionAllow, "allow-trusted", []string{"count-curl"}},
		{"and needs every part", request("X-Origin-Verify", currentSecret, "User-Agent", "bot", "X-Team", "ops", "X-Env", "dev"), config.ActionBlock, "block-bots", nil},
		{"or second branch", request("X-Origin-Verify", currentSecret, "X-Team", "ops", "X-Env", "staging"), config.ActionAllow, "allow-trusted", nil},
		{"block before count-all", request("X-Origin-Verify", currentSecret, "User-Agent", "Bot-bot"), config.ActionBlock, "block-bots", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := a.Evaluate(tt.req)
			if d.Action != tt.action || d.Rule != tt.rule || !slices.Equal(d.Counted, tt.counted) {
				t.Errorf("Evaluate = %+v, want action %q rule %q counted %v", d, tt.action, tt.rule, tt.counted)
			}
		})
	}
}

func TestDefaultBlock(t *testing.T) {
	a, err := New(config.WebACL{
		Name:          "allowlist",
		DefaultAction: config.ActionBlock,
		Rules: []config.WAFRule{
			{Name: "allow-gateway", Priority: 1, Action: config.ActionAllow, Statement: *ov("X-Origin-Verify")},
		},
	}, testKeyrings(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := a.Evaluate(request()); d.Action != config.ActionBlock || d.Rule != "" {
		t.Errorf("without secret: %+v, want default block", d)
	}
	if d := a.Evaluate(request("X-Origin-Verify", currentSecret)); d.Action != config.ActionAllow || d.Rule != "allow-gateway" {
		t.Errorf("with secret: %+v, want allow by allow-gateway", d)
	}
}

func TestByteMatch(t *testing.T) {
	tests := []struct {
		constraint, search string
		headers            []string
		want               bool
	}{
		{config.MatchExactly, "abc", []string{"X-T", "abc"}, true},
		{config.MatchExactly, "abc", []string{"X-T", "abcd"}, false},
		{config.MatchExactly, "abc", []string{"X-T", "ABC"}, false}, // case-sensitive
		{config.MatchExactly, "", []string{"X-T", ""}, true},        // present and empty
		{config.MatchExactly, "", nil, false},                       // absent never matches
		{config.MatchStartsWith, "ab", []string{"X-T", "abc"}, true},
		{config.MatchStartsWith, "bc", []string{"X-T", "abc"}, false},
		{config.MatchEndsWith, "bc", []string{"X-T", "abc"}, true},
		{config.MatchEndsWith, "ab", []string{"X-T", "abc"}, false},
		{config.MatchContains, "b", []string{"X-T", "abc"}, true},
		{config.MatchContains, "B", []string{"X-T", "abc"}, false},
		{config.MatchContains, "", nil, false},
		{config.MatchContains, "x", []string{"X-Other", "x"}, false},
		{config.MatchContains, "x", []string{"x-t", "x"}, true}, // header names are case-insensitive
		// A repeated header is compared as its RFC 9110 combined value.
		{config.MatchExactly, "a", []string{"X-T", "a", "X-T", "a"}, false},
		{config.MatchExactly, "a, b", []string{"X-T", "a", "X-T", "b"}, true},
		{config.MatchContains, "b", []string{"X-T", "a", "X-T", "b"}, true},
		{config.MatchStartsWith, "b", []string{"X-T", "a", "X-T", "b"}, false},
		{config.MatchEndsWith, "b", []string{"X-T", "a", "X-T", "b"}, true},
	}
	for _, tt := range tests {
		a, err := New(config.WebACL{
			Name: "bm", DefaultAction: config.ActionAllow,
			Rules: []config.WAFRule{{Name: "r", Action: config.ActionBlock, Statement: bm("x-t", tt.constraint, tt.search)}},
		}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := a.Evaluate(request(tt.headers...)).Action == config.ActionBlock
		if got != tt.want {
			t.Errorf("%s %q on %q: match = %v, want %v", tt.constraint, tt.search, tt.headers, got, tt.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	good := config.Statement{Not: ov("X-Origin-Verify")}
	tests := []struct {
		name string
		acl  config.WebACL
		want string
	}{
		{"bad default", config.WebACL{Name: "a", DefaultAction: "count"}, `default_action "count"`},
		{"bad action", config.WebACL{Name: "a", DefaultAction: "allow", Rules: []config.WAFRule{{Name: "r", Action: "drop", Statement: good}}}, `rule "r": action "drop"`},
		{"empty statement", config.WebACL{Name: "a", DefaultAction: "allow", Rules: []config.WAFRule{{Name: "r", Action: "block"}}}, "has 0 kinds"},
		{"two kinds", config.WebACL{Name: "a", DefaultAction: "allow", Rules: []config.WAFRule{{Name: "r", Action: "block", Statement: config.Statement{Not: ov("X"), OriginVerify: &config.OriginVerifyStatement{Header: "X", Secret: "origin-verify"}}}}}, "has 2 kinds"},
		{"unknown secret", config.WebACL{Name: "a", DefaultAction: "allow", Rules: []config.WAFRule{{Name: "r", Action: "block", Statement: config.Statement{OriginVerify: &config.OriginVerifyStatement{Header: "X", Secret: "other"}}}}}, `secret "other" has no keyring`},
		{"empty and", config.WebACL{Name: "a", DefaultAction: "allow", Rules: []config.WAFRule{{Name: "r", Action: "block", Statement: config.Statement{And: []config.Statement{}}}}}, "statement.and: is empty"},
		{"nested error path", config.WebACL{Name: "a", DefaultAction: "allow", Rules: []config.WAFRule{{Name: "r", Action: "block", Statement: config.Statement{Or: []config.Statement{good, bm("X", "REGEX", "a")}}}}}, `statement.or[1].byte_match: unknown positional_constraint "REGEX"`},
		{"empty header", config.WebACL{Name: "a", DefaultAction: "allow", Rules: []config.WAFRule{{Name: "r", Action: "block", Statement: bm("", config.MatchExactly, "a")}}}, "header is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.acl, testKeyrings(t), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestSecretHeaders(t *testing.T) {
	a, err := New(config.WebACL{
		Name: "a", DefaultAction: config.ActionAllow,
		Rules: []config.WAFRule{
			{Name: "one", Action: config.ActionBlock, Statement: config.Statement{Not: ov("x-origin-verify")}},
			{Name: "two", Priority: 1, Action: config.ActionCount, Statement: config.Statement{Or: []config.Statement{*ov("X-Origin-Verify"), *ov("X-Alt-Verify"), bm("X-Plain", config.MatchExactly, "v")}}},
		},
	}, testKeyrings(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.SecretHeaders(), []string{"X-Origin-Verify", "X-Alt-Verify"}; !slices.Equal(got, want) {
		t.Errorf("SecretHeaders = %v, want %v", got, want)
	}
}

// TestGatewayOnlyOverSocket drives the default topology's ACL through a real HTTP server.
func TestGatewayOnlyOverSocket(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	a, err := New(gatewayOnlyACL(t), testKeyrings(t), logger)
	if err != nil {
		t.Fatal(err)
	}
	var reached atomic.Int32
	srv := httptest.NewServer(a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		io.WriteString(w, "app")
	})))
	defer srv.Close()

	tests := []struct {
		name   string
		values []string
		want   int
	}{
		{"no header", nil, http.StatusForbidden},
		{"wrong secret", []string{"not-the-secret-at-all-xxxxxxxxxxx"}, http.StatusForbidden},
		{"right secret", []string{currentSecret}, http.StatusOK},
		{"duplicate header", []string{currentSecret, currentSecret}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := reached.Load()
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/items", nil)
			for _, v := range tt.values {
				req.Header.Add("X-Origin-Verify", v)
			}
			req.Header.Set("X-Request-Id", "req-"+strings.ReplaceAll(tt.name, " ", "-"))
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d (body %q)", resp.StatusCode, tt.want, body)
			}
			called := reached.Load() != before
			if tt.want == http.StatusForbidden {
				if called {
					t.Error("blocked request reached the next handler")
				}
				var msg struct{ Message string }
				if err := json.Unmarshal(body, &msg); err != nil || msg.Message != "Forbidden" {
					t.Errorf("body = %q, want {\"message\":\"Forbidden\"}", body)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q", ct)
				}
			} else if !called || string(body) != "app" {
				t.Errorf("allowed request: called=%v body=%q", called, body)
			}
		})
	}

	out := logs.String()
	if strings.Contains(out, currentSecret) || strings.Contains(out, "not-the-secret") {
		t.Errorf("WAF log contains a header value:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d log lines, want 3 (one per block):\n%s", len(lines), out)
	}
	var entry map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &entry); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"acl": "gateway-only", "rule": "require-origin-verify", "action": "block",
		"method": "GET", "path": "/items", "source_ip": "127.0.0.1", "request_id": "req-no-header"}
	for k, v := range want {
		if entry[k] != v {
			t.Errorf("log %s = %v, want %v", k, entry[k], v)
		}
	}
}

func TestCountIsLogged(t *testing.T) {
	var logs bytes.Buffer
	a, err := New(config.WebACL{
		Name: "a", DefaultAction: config.ActionAllow,
		Rules: []config.WAFRule{{Name: "watch", Action: config.ActionCount, Statement: bm("X-T", config.MatchContains, "sql")}},
	}, nil, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	a.Evaluate(request("X-T", "harmless"))
	if logs.Len() != 0 {
		t.Errorf("a non-matching count rule logged: %s", logs.String())
	}
	if d := a.Evaluate(request("X-T", "select-sql-payload")); d.Action != config.ActionAllow || !slices.Equal(d.Counted, []string{"watch"}) {
		t.Errorf("Evaluate = %+v", d)
	}
	if out := logs.String(); !strings.Contains(out, `"rule":"watch"`) || !strings.Contains(out, `"action":"count"`) ||
		!strings.Contains(out, `"field":"header:X-T"`) || !strings.Contains(out, `"value":"select-sql-payload"`) {
		t.Errorf("count log = %s", out)
	}
}

// TestFailClosed checks that a matcher that panics blocks the request instead of letting it pass.
func TestFailClosed(t *testing.T) {
	a, err := New(config.WebACL{Name: "a", DefaultAction: config.ActionAllow}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.rules = []rule{{name: "broken", action: config.ActionAllow, match: func(*evalCtx) bool { panic("bug") }}}
	if d := a.Evaluate(request()); d.Action != config.ActionBlock || d.Status != http.StatusInternalServerError {
		t.Errorf("Evaluate with a panicking matcher = %+v, want block with 500", d)
	}
	rec := httptest.NewRecorder()
	a.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("next called") })).ServeHTTP(rec, request())
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status = %d, want 500", rec.Code)
	}
}
