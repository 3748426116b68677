package config

import "testing"

// TestRateBasedParses decodes the rate_based example of docs/waf.md through the real loader.
func TestRateBasedParses(t *testing.T) {
	src := `version: 1
admin: {listen: 127.0.0.1:9900}
web_acls:
  - name: edge
    rate_limit_store: redis://127.0.0.1:6379/0
    on_store_error: deny
    custom_responses:
      slow-down: {status: 429, headers: {Retry-After: "60"}}
    rules:
      - name: login-flood
        priority: 5
        action: block
        custom_response: slow-down
        statement:
          rate_based:
            limit: 100
            evaluation_window_sec: 300
            aggregate_key_type: FORWARDED_IP
            forwarded_ip: {header: X-Forwarded-For, position: LAST}
            scope_down_statement: {byte_match: {field_to_match: {uri_path: {}}, positional_constraint: STARTS_WITH, search_string: /login}}
      - {name: per-tenant, priority: 6, action: block,
         statement: {rate_based: {limit: 5000, evaluation_window_sec: 60, aggregate_key_type: HEADER, header: X-Tenant}}}
`
	cfg, err := Parse("rate.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.WebACLs[0]
	rb := a.Rules[0].Statement.RateBased
	if a.RateLimitStore != "redis://127.0.0.1:6379/0" || a.OnStoreError != StoreErrorDeny || rb == nil || rb.Limit != 100 ||
		rb.ForwardedIP.Position != "LAST" || rb.ScopeDownStatement == nil || rb.ScopeDownStatement.ByteMatch.SearchString != "/login" ||
		a.Rules[1].Statement.RateBased.Header != "X-Tenant" {
		t.Fatalf("decoded %+v / %+v", a, rb)
	}
}
