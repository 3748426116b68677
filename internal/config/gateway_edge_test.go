package config

import (
	"encoding/json"
	"os"
	"testing"
	"time"
)

// The example uses every key of request validation, integrations, gateway responses and the
// listener too; this checks they decode to what the docs say.
func TestGatewayExampleEdgeKeys(t *testing.T) {
	data, err := os.ReadFile("../../examples/api-gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("examples/api-gateway.yaml", data, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.Gateways[0]
	if g.TLS == nil || g.TLS.CertFile == "" || g.MaxHeaderBytes != 32768 || g.ReadHeaderTimeout.Duration != 5*time.Second ||
		g.WriteTimeout.Duration != 40*time.Second || g.IdleTimeout.Duration != time.Minute || g.ReadTimeout.Duration != 30*time.Second {
		t.Fatalf("listener keys: %+v", g)
	}
	if len(g.ResponseHeaders.Set) != 2 || len(g.ResponseHeaders.Remove) != 2 || len(g.GatewayResponses) != 4 {
		t.Fatalf("response_headers %+v, gateway_responses %d", g.ResponseHeaders, len(g.GatewayResponses))
	}
	th := g.GatewayResponses[RespThrottled]
	var body map[string]map[string]string
	if th.Status != 429 || json.Unmarshal(th.Body.JSON, &body) != nil || body["error"]["request_id"] != "${context.requestId}" || th.Headers["Cache-Control"] != "no-store" {
		t.Fatalf("THROTTLED %+v %s", th, th.Body.JSON)
	}
	var validated, rewritten, stripped bool
	for _, r := range g.Routes {
		if v := r.RequestValidation; v != nil && v.BodySchema.IsSet() {
			validated = v.Schema != nil
		}
		rewritten = rewritten || r.Integration.Path == "/items/{id}"
		stripped = stripped || (r.Integration.StripPrefix == "/v1" && len(r.RequestHeaders) == 1 && r.ResponseHeaders != nil)
	}
	if !validated || !rewritten || !stripped {
		t.Fatalf("routes: schema compiled %v, path %v, strip_prefix with mappings %v", validated, rewritten, stripped)
	}
}

func TestGatewayListenerDefaults(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte(`
gateways:
  - name: api
    listen: 127.0.0.1:8080
    routes:
      - {path: /a, methods: [GET], integration: {url: "http://127.0.0.1:1", timeout: 45s}}
      - {path: /b, methods: [GET], integration: {url: "http://127.0.0.1:1"}}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.Gateways[0]
	if g.MaxHeaderBytes != DefaultMaxHeaderBytes || g.ReadHeaderTimeout.Duration != DefaultReadHeaderTimeout ||
		g.ReadTimeout.Duration != DefaultReadTimeout || g.IdleTimeout.Duration != DefaultIdleTimeout ||
		g.WriteTimeout.Duration != 45*time.Second+WriteTimeoutMargin {
		t.Fatalf("defaults: %+v", g)
	}
}

// A free-form value keeps YAML's types and the file's key order when it becomes JSON.
func TestJSONValueDecoding(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte(`
x-anchors:
  common: &common {b: 2}
gateways:
  - name: api
    listen: 127.0.0.1:8080
    gateway_responses:
      THROTTLED: {body: {z: 1, a: "1", n: null, t: true, f: 1.5, l: [x, {y: 0x10}], m: *common, s: "<&>"}}
      MISSING_ROUTE: {body: "plain ${context.requestId}"}
    routes: [{path: /a, methods: [GET], integration: {url: "http://127.0.0.1:1"}}]
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	rs := cfg.Gateways[0].GatewayResponses
	want := `{"z":1,"a":"1","n":null,"t":true,"f":1.5,"l":["x",{"y":16}],"m":{"b":2},"s":"\u003c\u0026\u003e"}`
	if got := string(rs[RespThrottled].Body.JSON); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if s, ok := rs[RespMissingRoute].Body.String(); !ok || s != "plain ${context.requestId}" {
		t.Fatalf("string body %q %v", s, ok)
	}
}

// The demo page's default gateway URL follows the gateway's scheme.
func TestWebGatewayURLWithTLS(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte(`
gateways:
  - name: api
    listen: 127.0.0.1:8443
    tls: {cert_file: c.pem, key_file: k.pem}
    routes: [{path: /a, methods: [GET], integration: {url: "http://127.0.0.1:1"}}]
web: {listen: 127.0.0.1:3000}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Web.GatewayURL != "https://127.0.0.1:8443" {
		t.Fatalf("gateway_url %q", cfg.Web.GatewayURL)
	}
}
