package config

import (
	"os"
	"testing"
)

// The gateway example uses every throttling, API key, usage plan and authorizer key, so that
// the documented example cannot drift from what the loader accepts.
func TestGatewayExampleValid(t *testing.T) {
	data, err := os.ReadFile("../../examples/api-gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("examples/api-gateway.yaml", data, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.Gateways[0]
	if g.APIKeys == nil || g.APIKeys.File != ".rampart/api-keys.json" || g.APIKeys.QuotaFile != ".rampart/quota-public-api.json" {
		t.Fatalf("api_keys %+v: want the secret's file and the default quota file", g.APIKeys)
	}
	a := g.Authorizers[0]
	if a.Leeway.Duration != DefaultJWTLeeway || len(g.UsagePlans) != 2 || len(g.Throttle) != 2 || g.OnStoreError != StoreErrorDeny {
		t.Fatalf("decoded %+v", g)
	}
}

func TestGatewayAccessDefaults(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte(`
secrets: {k: {file: k.json}}
gateways:
  - name: api
    listen: 127.0.0.1:8080
    api_keys: {secret: k}
    authorizers: [{name: idp, issuer: "https://i/", audiences: [a], jwks_file: j.json}]
    routes: [{path: /a, methods: [GET], integration: {url: "http://127.0.0.1:1"}}]
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.Gateways[0]
	a := g.Authorizers[0]
	if g.RateLimitStore != RateLimitMemory || g.APIKeys.Header != DefaultAPIKeyHeader || a.Type != AuthorizerJWT ||
		len(a.Algorithms) != 3 || a.JWKSRefresh.Duration != DefaultJWKSRefresh || a.JWKSFetchTimeout.Duration != DefaultJWKSFetchTimeout {
		t.Fatalf("defaults not applied: %+v %+v", g, a)
	}
}
