package waf

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rampart-edge/rampart/internal/config"
)

// TestLogRedactsCredentials: a rule that matches in a credential parameter (query, form, JSON
// member, a whole query string naming one) or in a header the owner named logs [REDACTED], in
// the log and in the recent-matches sample, while other matches keep their value.
func TestLogRedactsCredentials(t *testing.T) {
	const secret = "s3cr3t-Value-123"
	var cfg config.WebACL
	src := `
name: redact
default_action: allow
rules:
  - name: any-arg
    priority: 1
    action: count
    statement: {byte_match: {field_to_match: {all_query_arguments: {match_scope: VALUE}}, positional_constraint: CONTAINS, search_string: "` + secret + `"}}
  - name: one-arg
    priority: 2
    action: count
    statement: {byte_match: {field_to_match: {single_query_argument: access_token}, positional_constraint: CONTAINS, search_string: "` + secret + `"}}
  - name: query
    priority: 3
    action: count
    statement: {byte_match: {field_to_match: {query_string: {}}, positional_constraint: CONTAINS, search_string: "` + secret + `"}}
  - name: form
    priority: 4
    action: count
    statement: {byte_match: {field_to_match: {form_field: password}, positional_constraint: CONTAINS, search_string: "` + secret + `"}}
  - name: header
    priority: 5
    action: count
    statement: {byte_match: {field_to_match: {single_header: X-Custom-Key}, positional_constraint: CONTAINS, search_string: "` + secret + `"}}
  - name: json
    priority: 6
    action: count
    statement: {byte_match: {field_to_match: {json_body: {match_scope: VALUE}}, positional_constraint: CONTAINS, search_string: "` + secret + `"}}
  - name: benign
    priority: 7
    action: count
    statement: {byte_match: {field_to_match: {single_query_argument: q}, positional_constraint: EXACTLY, search_string: "hello"}}
`
	if err := yaml.Unmarshal([]byte(src), &cfg); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	a, err := New(cfg, testKeyrings(t), slog.New(slog.NewJSONHandler(&logs, nil)), WithRedactedHeaders("x-custom-KEY"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)

	a.Evaluate(req{target: "/?q=hello&access_token=" + secret}.build())
	a.Evaluate(req{target: "/?q=hello&tok%65n=" + secret}.build())
	a.Evaluate(req{method: "POST", body: "user=a&password=" + secret, headers: []string{"Content-Type", "application/x-www-form-urlencoded"}}.build())
	a.Evaluate(req{headers: []string{"X-Custom-Key", secret}}.build())
	a.Evaluate(req{method: "POST", body: `{"user":{"password":"` + secret + `"}}`}.build())

	out := logs.String()
	if strings.Contains(out, secret) {
		t.Errorf("log leaks the credential:\n%s", out)
	}
	for _, rule := range []string{"any-arg", "one-arg", "query", "form", "header", "json"} {
		if !strings.Contains(out, `"rule":"`+rule+`"`) {
			t.Errorf("rule %s did not match, so the test proves nothing for it:\n%s", rule, out)
		}
	}
	if !strings.Contains(out, `"rule":"benign","action":"count","field":"query_argument:q","value":"hello"`) {
		t.Errorf("a benign match lost its value:\n%s", out)
	}
	matches, _ := a.shared.matches.Last(100, "")
	for _, m := range matches {
		if strings.Contains(m.Value, secret) {
			t.Errorf("recent-matches sample leaks the credential: %+v", m)
		}
	}
}

func TestRedactedField(t *testing.T) {
	a := &WebACL{secretHeaders: []string{"x-tenant-key"}}
	for _, tt := range []struct {
		field, value string
		want         bool
	}{
		{"ARGS:token", "x", true},
		{"ARGS_GET:access_token", "x", true},
		{"ARGS_POST:json.user.password", "x", true},
		{"ARGS:user[pwd]", "x", true},
		{"ARGS:key", "x", true},
		{"ARGS:api_key", "x", true},
		{"REQUEST_HEADERS:X-Tenant-Key", "x", true},
		{"REQUEST_HEADERS:Authorization", "x", true},
		{"REQUEST_COOKIES:session", "x", true},
		{"header:X-Auth-Token", "x", true},
		{"QUERY_STRING", "a=1&password=x", true},
		{"REQUEST_URI", "/login?PASSWORD=x", true},
		{"body", `{"pwd": "x"}`, true},
		{"ARGS:q", "<script>", false},
		{"ARGS:monkey", "x", false},
		{"header:User-Agent", "sqlmap", false},
		{"QUERY_STRING", "id=1' OR '1'='1", false},
		{"uri_path", "/items/1", false},
	} {
		if got := a.redactedField(tt.field, tt.value); got != tt.want {
			t.Errorf("redactedField(%q, %q) = %v, want %v", tt.field, tt.value, got, tt.want)
		}
	}
}
