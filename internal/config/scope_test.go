package config

import (
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
)

// scopeFile references a variable from every kind of place a process may or may not use.
const scopeFile = `version: 1
secrets:
  origin-verify: {file: "${env:KEYS_DIR}/origin-verify.keys"}
  api-keys: {file: "${env:API_KEYS_FILE}"}
  unused: {file: "${env:UNUSED_SECRET}"}
gateways:
  - name: api
    listen: "127.0.0.1:${env:GW_PORT}"
    api_keys: {secret: api-keys}
    request_headers:
      X-Origin-Verify: "${secret:origin-verify}"
      X-Tier: "${env:GW_HEADER}"
    routes:
      - {path: /items, methods: [GET], integration: {url: "${env:LB_URL}", timeout: "${env:GW_TIMEOUT}"}}
  - name: partner-api
    listen: "${env:PARTNER_LISTEN}"
    web_acl: partner-acl
    routes:
      - {path: /items, methods: [GET], integration: {url: "http://127.0.0.1:8081"}}
load_balancers:
  - name: alb
    listeners:
      - listen: "${env:LB_LISTEN}"
        web_acl: edge
        default_action: {forward: {target_group: items}}
    target_groups:
      - name: items
        algorithm: weighted_random
        targets: ["${env:APP_1}"]
        weights: {"${env:APP_1}": 1}
web_acls:
  - name: edge
    rules:
      - {name: ov, priority: 0, action: block, statement: {not: {origin_verify: {header: X-Origin-Verify, secret: origin-verify}}}}
      - {name: deny, priority: 1, action: block, statement: {byte_match: {header: X-Deny, positional_constraint: EXACTLY, search_string: "${env:EDGE_DENY}"}}}
  - name: partner-acl
    rules:
      - {name: deny, priority: 1, action: block, statement: {byte_match: {header: X-Deny, positional_constraint: EXACTLY, search_string: "${env:PARTNER_DENY}"}}}
  - name: unused-acl
    rules:
      - {name: deny, priority: 1, action: block, statement: {byte_match: {header: X-Deny, positional_constraint: EXACTLY, search_string: "${env:UNUSED_DENY}"}}}
apps:
  - name: items
    listen: ["${env:APP_1}"]
    database: "${env:DATABASE_URL}"
web:
  listen: "${env:WEB_LISTEN}"
admin:
  listen: 127.0.0.1:9900
  token: "${env:ADMIN_TOKEN}"
tracing:
  exporter: stdout
  service_name: "${env:SERVICE_NAME}"
`

var scopeEnv = map[string]string{
	"KEYS_DIR": "/var/lib/rampart", "API_KEYS_FILE": "/var/lib/rampart/api-keys.json", "UNUSED_SECRET": "/tmp/unused.keys",
	"GW_PORT": "8080", "GW_HEADER": "edge", "LB_URL": "http://127.0.0.1:8081", "GW_TIMEOUT": "5s",
	"PARTNER_LISTEN": "127.0.0.1:8082", "LB_LISTEN": "127.0.0.1:8081", "APP_1": "127.0.0.2:9001",
	"EDGE_DENY": "x", "PARTNER_DENY": "y", "UNUSED_DENY": "z", "DATABASE_URL": "sqlite:items.db",
	"WEB_LISTEN": "127.0.0.1:3000", "ADMIN_TOKEN": "0123456789abcdef0123", "SERVICE_NAME": "rampart",
}

// TestScopeRequiredVariables unsets each variable of scopeFile in turn and checks, for each
// scope, that loading fails exactly for the variables that scope uses.
func TestScopeRequiredVariables(t *testing.T) {
	all := slices.Sorted(maps.Keys(scopeEnv))
	always := []string{"ADMIN_TOKEN", "SERVICE_NAME"}
	gateway := []string{"KEYS_DIR", "API_KEYS_FILE", "GW_PORT", "GW_HEADER", "LB_URL", "GW_TIMEOUT"}
	partner := []string{"PARTNER_LISTEN", "PARTNER_DENY"}
	tests := []struct {
		name     string
		scope    Scope
		required []string
	}{
		{"whole file (run, validate)", Scope{}, all},
		{"every gateway", Scope{Gateways: true}, slices.Concat(always, gateway, partner)},
		{"gateway api", Scope{Gateways: true, Name: "api"}, slices.Concat(always, gateway)},
		{"gateway partner-api", Scope{Gateways: true, Name: "partner-api"}, slices.Concat(always, partner)},
		{"load balancer", Scope{LoadBalancers: true}, slices.Concat(always, []string{"LB_LISTEN", "APP_1", "EDGE_DENY", "KEYS_DIR"})},
		{"app", Scope{Apps: true}, slices.Concat(always, []string{"APP_1", "DATABASE_URL"})},
		{"a name no component has", Scope{Gateways: true, LoadBalancers: true, Name: "nothing"}, always},
		{"every component", Scope{Gateways: true, LoadBalancers: true, Apps: true},
			slices.Concat(always, gateway, partner, []string{"LB_LISTEN", "APP_1", "EDGE_DENY", "DATABASE_URL"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.scope.Parse("scope.yaml", []byte(scopeFile), lookupIn(scopeEnv)); err != nil {
				t.Fatalf("with every variable set: %v", err)
			}
			for _, name := range all {
				env := maps.Clone(scopeEnv)
				delete(env, name)
				cfg, err := tt.scope.Parse("scope.yaml", []byte(scopeFile), lookupIn(env))
				want := slices.Contains(tt.required, name)
				switch {
				case want && err == nil:
					t.Errorf("%s unset: accepted, want an error", name)
				case want:
					// What the whole file reports, for the places this scope uses: one mistake, one
					// message, at its line and column, with its hint.
					_, whole := Parse("scope.yaml", []byte(scopeFile), lookupIn(env))
					for _, line := range strings.Split(err.Error(), "\n") {
						if whole == nil || !slices.Contains(strings.Split(whole.Error(), "\n"), line) {
							t.Errorf("%s unset: %q is not among what the whole file reports: %v", name, line, whole)
						}
					}
					var errs Errors
					if !errors.As(err, &errs) || !strings.Contains(err.Error(), "scope.yaml:") || !strings.Contains(err.Error(), "environment variable") || !strings.Contains(err.Error(), name) {
						t.Errorf("%s unset: %v, want file:line:col errors naming it", name, err)
					}
					for _, e := range errs {
						if e.Line == 0 || e.Col == 0 || !strings.Contains(e.Msg, name) {
							t.Errorf("%s unset: unexpected error %q (line %d col %d)", name, e, e.Line, e.Col)
						}
					}
				case err != nil:
					t.Errorf("%s unset: %v, want it accepted", name, err)
				case cfg == nil:
					t.Errorf("%s unset: nil config", name)
				}
			}
		})
	}
}

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// TestScopeStandIn: a value whose variable is unset in an unused section holds no part of its
// expansion (no "127.0.0.1:" with the port missing), is never empty, and fails as an address.
func TestScopeStandIn(t *testing.T) {
	env := maps.Clone(scopeEnv)
	delete(env, "GW_PORT")
	delete(env, "GW_TIMEOUT")
	delete(env, "GW_HEADER")
	cfg, err := Scope{LoadBalancers: true}.Parse("scope.yaml", []byte(scopeFile), lookupIn(env))
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.Gateways[0]
	if l := g.Listen; strings.HasPrefix(l, "127.0.0.1") || !strings.Contains(l, "\x00") {
		t.Errorf("listen = %q, want the stand-in", l)
	}
	if d := g.Routes[0].Integration.Timeout.Duration; d != 0 {
		t.Errorf("timeout = %v, want none", d)
	}
	for _, h := range g.RequestHeaders {
		if h.Name == "X-Tier" {
			t.Errorf("header X-Tier kept with value %q", h.Value.Raw)
		}
	}
	if cfg.LoadBalancers[0].Listeners[0].Listen != "127.0.0.1:8081" {
		t.Errorf("the load balancer's own listen = %q", cfg.LoadBalancers[0].Listeners[0].Listen)
	}
}

// TestScopeChecks: the checks of an unused entry that holds a stand-in report nothing, the same
// mistake in a used entry is reported, and the whole file reports both.
func TestScopeChecks(t *testing.T) {
	const file = `version: 1
gateways:
  - name: api
    listen: 127.0.0.1:8080
    routes:
      - {path: /a, methods: [GET], integration: {url: "${env:GW_UPSTREAM}", tls: {ca_file: ca.pem}}}
load_balancers:
  - name: alb
    listeners:
      - listen: "${env:LB_LISTEN}"
        tls: {cert_file: lb.pem}
        default_action: {fixed_response: {status: 200}}
`
	tests := []struct {
		name  string
		scope Scope
		env   map[string]string
		want  []string // paths of the errors, in order
	}{
		{"gateway: the load balancer's mistake is in an entry it does not use", Scope{Gateways: true},
			map[string]string{"GW_UPSTREAM": "http://10.0.0.1"}, []string{"gateways[0].routes[0].integration.tls"}},
		{"load balancer: the gateway's url is a stand-in, its tls check is not run", Scope{LoadBalancers: true},
			map[string]string{"LB_LISTEN": "127.0.0.1:8081"}, []string{"load_balancers[0].listeners[0].tls.key_file"}},
		{"whole file", Scope{},
			map[string]string{"GW_UPSTREAM": "http://10.0.0.1", "LB_LISTEN": "127.0.0.1:8081"},
			[]string{"gateways[0].routes[0].integration.tls", "load_balancers[0].listeners[0].tls.key_file"}},
		{"whole file, one variable unset", Scope{},
			map[string]string{"GW_UPSTREAM": "http://10.0.0.1"},
			[]string{"gateways[0].routes[0].integration.tls", "load_balancers[0].listeners[0].listen", "load_balancers[0].listeners[0].tls.key_file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.scope.Parse("checks.yaml", []byte(file), lookupIn(tt.env))
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v, want Errors", err)
			}
			var got []string
			for _, e := range errs {
				got = append(got, e.Path)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors at %q, want %q\n%v", got, tt.want, err)
			}
		})
	}
}

// TestScopeNames: the names that decide what a scope selects or refers to are required whenever
// the scope looks them up, and every gateway's api_keys.header (every process redacts it).
func TestScopeNames(t *testing.T) {
	const file = `version: 1
secrets:
  "${env:SECRET_NAME}": {file: keys}
  api-keys: {file: api-keys.json}
gateways:
  - name: "${env:GW_NAME}"
    listen: 127.0.0.1:8080
    api_keys: {header: "${env:KEY_HEADER}", secret: api-keys}
    routes: [{path: /a, methods: [GET], integration: {url: "http://127.0.0.1:8081"}}]
load_balancers:
  - name: alb
    listeners: [{listen: 127.0.0.1:8081, web_acl: edge, default_action: {fixed_response: {status: 200}}}]
web_acls:
  - name: "${env:ACL_NAME}"
  - name: edge
apps:
  - {name: items, listen: ["127.0.0.2:9001"]}
`
	full := map[string]string{"SECRET_NAME": "ov", "GW_NAME": "api", "KEY_HEADER": "X-Api-Key", "ACL_NAME": "other"}
	tests := []struct {
		name     string
		scope    Scope
		required []string
	}{
		{"gateway", Scope{Gateways: true}, []string{"GW_NAME", "KEY_HEADER", "SECRET_NAME"}},
		{"gateway by name", Scope{Gateways: true, Name: "api"}, []string{"GW_NAME", "KEY_HEADER", "SECRET_NAME"}},
		{"load balancer", Scope{LoadBalancers: true}, []string{"KEY_HEADER", "ACL_NAME"}},
		{"app", Scope{Apps: true}, []string{"KEY_HEADER"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, name := range slices.Sorted(maps.Keys(full)) {
				env := maps.Clone(full)
				delete(env, name)
				_, err := tt.scope.Parse("names.yaml", []byte(file), lookupIn(env))
				if want := slices.Contains(tt.required, name); want != (err != nil) {
					t.Errorf("%s unset: err = %v, want an error: %v", name, err, want)
				}
			}
		})
	}
}

// TestScopeHAExample pins what each tier of examples/ha.yaml needs from its host's environment,
// as docs/deploy.md lists it: the app tier never needs the Redis URL or the keyring, the gateway
// and load balancer tiers never need the database URL.
func TestScopeHAExample(t *testing.T) {
	data, err := os.ReadFile("../../examples/ha.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"RAMPART_GATEWAY_LISTEN": "0.0.0.0:8080", "RAMPART_LB_LISTEN": "0.0.0.0:8081", "RAMPART_LB_URL": "http://10.0.1.10:8081",
		"RAMPART_LB_EGRESS": "10.0.1.10", "RAMPART_LB_SUBNET": "10.0.1.0/24",
		"RAMPART_APP_1": "10.0.2.11:9001", "RAMPART_APP_2": "10.0.2.12:9001",
		"RAMPART_ADMIN_LISTEN": "0.0.0.0:9900", "RAMPART_ADMIN_TOKEN": "0123456789abcdef0123",
		"RAMPART_REDIS_URL": "redis://10.0.3.7:6379/0", "RAMPART_KEYRING_FILE": "origin-verify.keys",
		"RAMPART_API_KEYS_FILE": "api-keys.json", "DATABASE_URL": "postgres://items@10.0.3.10:5432/items",
	}
	admin := []string{"RAMPART_ADMIN_LISTEN", "RAMPART_ADMIN_TOKEN"}
	tests := []struct {
		name  string
		scope Scope
		needs []string
	}{
		{"gateway", Scope{Gateways: true}, slices.Concat(admin, []string{"RAMPART_GATEWAY_LISTEN", "RAMPART_LB_URL", "RAMPART_REDIS_URL", "RAMPART_KEYRING_FILE", "RAMPART_API_KEYS_FILE"})},
		{"lb", Scope{LoadBalancers: true}, slices.Concat(admin, []string{"RAMPART_LB_LISTEN", "RAMPART_LB_EGRESS", "RAMPART_APP_1", "RAMPART_APP_2", "RAMPART_REDIS_URL", "RAMPART_KEYRING_FILE"})},
		{"app", Scope{Apps: true}, slices.Concat(admin, []string{"RAMPART_APP_1", "RAMPART_APP_2", "RAMPART_LB_SUBNET", "DATABASE_URL"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, name := range slices.Sorted(maps.Keys(env)) {
				without := maps.Clone(env)
				delete(without, name)
				if _, err := tt.scope.Parse("examples/ha.yaml", data, lookupIn(without)); err != nil {
					got = append(got, name)
				}
			}
			if want := slices.Sorted(slices.Values(tt.needs)); !slices.Equal(got, want) {
				t.Errorf("needs %q, want %q", got, want)
			}
		})
	}
}
