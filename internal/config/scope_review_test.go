package config

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

// scopeIndirectFile reaches values through every indirection a process follows: a secret named
// by api_keys.secret or ${signed:}, a web ACL named by a gateway, an origin_verify nested in a
// rate-based rule's scope-down statement, a web ACL's rate_limit_store and replay_store, a
// listener's TLS files, target groups, and two app groups.
const scopeIndirectFile = `version: 1
secrets:
  keys: {file: "${env:API_KEYS}"}
  sig: {file: "${env:SIG_KEYS}"}
  ov: {file: "${env:OV_KEYS}"}
  nested: {file: "${env:NESTED_KEYS}"}
gateways:
  - name: api
    listen: 127.0.0.1:8080
    web_acl: gw-acl
    api_keys: {header: X-Api-Key, secret: keys}
    request_headers:
      X-Origin-Verify: "${signed:sig}"
    routes:
      - {path: /a, methods: [GET], integration: {url: "http://127.0.0.1:8081"}}
load_balancers:
  - name: alb
    listeners:
      - listen: 127.0.0.1:8443
        web_acl: lb-acl
        tls: {cert_file: "${env:LB_CERT}", key_file: lb.key}
        default_action: {forward: {target_group: items}}
    target_groups:
      - {name: items, targets: ["${env:TARGET}"]}
web_acls:
  - name: gw-acl
    rules:
      - {name: deny, priority: 0, action: block, statement: {byte_match: {header: X-Deny, positional_constraint: EXACTLY, search_string: "${env:GW_DENY}"}}}
  - name: lb-acl
    rate_limit_store: "${env:REDIS_URL}"
    on_store_error: deny
    rules:
      - name: ov
        priority: 0
        action: block
        statement: {not: {origin_verify: {header: X-Origin-Verify, secret: ov, mode: signed, replay_store: "${env:REPLAY_URL}", on_store_error: deny}}}
      - name: rate
        priority: 1
        action: block
        statement:
          rate_based:
            limit: 100
            scope_down_statement: {origin_verify: {header: X-Nested, secret: nested}}
apps:
  - {name: a, listen: ["127.0.0.2:9001"], database: "${env:DB_A}"}
  - {name: b, listen: ["127.0.0.2:9002"], database: "${env:DB_B}"}
`

// TestScopeIndirectReferences: every variable a process reaches through a name (a secret, a web
// ACL, a target group) is required by that process's scope, and by no other.
func TestScopeIndirectReferences(t *testing.T) {
	env := map[string]string{
		"API_KEYS": "api-keys.json", "SIG_KEYS": "sig.keys", "OV_KEYS": "ov.keys", "NESTED_KEYS": "nested.keys",
		"LB_CERT": "lb.pem", "TARGET": "127.0.0.2:9001", "GW_DENY": "x",
		"REDIS_URL": "redis://127.0.0.1:6379/0", "REPLAY_URL": "redis://127.0.0.1:6379/1",
		"DB_A": "sqlite:a.db", "DB_B": "sqlite:b.db",
	}
	tests := []struct {
		name  string
		scope Scope
		needs []string
	}{
		{"gateway", Scope{Gateways: true}, []string{"API_KEYS", "GW_DENY", "SIG_KEYS"}},
		{"load balancer", Scope{LoadBalancers: true}, []string{"LB_CERT", "NESTED_KEYS", "OV_KEYS", "REDIS_URL", "REPLAY_URL", "TARGET"}},
		{"app a", Scope{Apps: true, Name: "a"}, []string{"DB_A"}},
		{"every app", Scope{Apps: true}, []string{"DB_A", "DB_B"}},
		{"whole file", Scope{}, slices.Sorted(maps.Keys(env))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.scope.Parse("indirect.yaml", []byte(scopeIndirectFile), lookupIn(env)); err != nil {
				t.Fatalf("with every variable set: %v", err)
			}
			var got []string
			for _, name := range slices.Sorted(maps.Keys(env)) {
				without := maps.Clone(env)
				delete(without, name)
				if _, err := tt.scope.Parse("indirect.yaml", []byte(scopeIndirectFile), lookupIn(without)); err != nil {
					got = append(got, name)
				}
			}
			if !slices.Equal(got, tt.needs) {
				t.Errorf("needs %q, want %q", got, tt.needs)
			}
		})
	}
}

// TestScopeHeaderErrorsMatchWholeFile: a header value that references an unset variable before
// another mistake gets, in a scope that uses it, the message the whole file gives it (the
// variable, the first mistake read); in a scope that does not use it, the later mistake is still
// reported, since it is no stand-in's.
func TestScopeHeaderErrorsMatchWholeFile(t *testing.T) {
	const file = `version: 1
gateways:
  - name: api
    listen: 127.0.0.1:8080
    request_headers:
      X-Tier: "${env:TIER}-${context.nothing}"
    routes: [{path: /a, methods: [GET], integration: {url: "http://127.0.0.1:8081"}}]
apps:
  - {name: items, listen: ["127.0.0.2:9001"]}
`
	_, whole := Parse("headers.yaml", []byte(file), nil)
	if whole == nil || !strings.Contains(whole.Error(), "environment variable TIER is not set") {
		t.Fatalf("whole file: %v, want the unset variable reported", whole)
	}
	tests := []struct {
		name  string
		scope Scope
		want  string // the one error reported
	}{
		{"gateway: the whole file's message", Scope{Gateways: true}, whole.Error()},
		{"app: the later mistake, not the variable", Scope{Apps: true}, "unknown reference ${context.nothing}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.scope.Parse("headers.yaml", []byte(file), nil)
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one error: %s", err, tt.want)
			}
		})
	}
}

// TestScopeSkipsOnlyStandInEntries: an unset gateway name in a scope that does not select
// gateways makes a stand-in of that gateway alone; the mistakes of other unused entries, which
// hold no stand-in, are reported as the whole file reports them.
func TestScopeSkipsOnlyStandInEntries(t *testing.T) {
	const file = `version: 1
gateways:
  - name: "${env:GW_NAME}"
    listen: 127.0.0.1:8080
    routes: [{path: /a, methods: [GET], integration: {url: "http://127.0.0.1:8081"}}]
load_balancers:
  - name: alb
    listeners: [{listen: 127.0.0.1:8081, default_action: {fixed_response: {status: 200}}}]
apps:
  - {name: items, listen: ["127.0.0.2:9001"], allow_from: ["not-a-cidr"]}
`
	_, whole := Parse("skip.yaml", []byte(file), lookupIn(map[string]string{"GW_NAME": "api"}))
	if whole == nil || !strings.Contains(whole.Error(), "apps[0].allow_from[0]") {
		t.Fatalf("whole file: %v, want the app's allow_from reported", whole)
	}
	_, err := Scope{LoadBalancers: true}.Parse("skip.yaml", []byte(file), nil)
	if err == nil || err.Error() != whole.Error() {
		t.Errorf("load balancer scope, GW_NAME unset: %v, want %v", err, whole)
	}
}
