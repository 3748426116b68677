package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// BenchmarkGatewayOwnWork measures what the gateway does per request besides proxying: request
// id, access log (to a discarding handler), CORS, header size check, route match, body limit,
// the throttles, authorizers, request validation and request header mapping up to the outbound
// headers, then the response header mapping. The stage list mirrors New's (without a web ACL,
// metrics and tracing); the proxy's own cost is BenchmarkProxyServeHTTP in internal/proxy.
func BenchmarkGatewayOwnWork(b *testing.B) {
	es := newSigner(b, "ES256", "ec1")
	dir := b.TempDir()
	writeKeys(b, dir, map[string]string{"acme": keyAcme})
	jwks := dir + "/jwks.json"
	if err := os.WriteFile(jwks, jwksJSON(es), 0o600); err != nil {
		b.Fatal(err)
	}
	base := `
secrets:
  api-keys: {file: "%DIR%/api-keys.json"}
gateways:
  - name: api
    listen: 127.0.0.1:0
    cors: {allow_origins: ["http://localhost:3000"]}
    request_headers:
      X-Request-Id: "${context.requestId}"
      X-User: "${context.authorizer.claims.sub}"
    %GW%
    api_keys: {secret: api-keys}
    usage_plans: [{name: gold, keys: [acme], throttle: {rate: 1e6, burst: 1000000}}]
    authorizers: [{name: idp, issuer: "https://idp.test/", audiences: [https://api.test], jwks_file: "%DIR%/jwks.json"}]
    routes:
      - {path: /items, methods: [GET], integration: {url: "http://127.0.0.1:1"}}
      - {path: "/items/{id}", methods: [GET] %ROUTE%}
`
	token := es.token(b, goodClaims())
	const defaultIntegration = `, integration: {url: "http://127.0.0.1:1"}`
	for _, tc := range []struct {
		name, gw, route string
		headers         []string
	}{
		{"cors+route+mapping", "", "", nil},
		{"+throttle-gateway+source_ip", "throttle: [{rate: 1e6, burst: 1000000}, {key: source_ip, rate: 1e6, burst: 1000000}]", "", nil},
		{"+api_key+plan", "", ", api_key_required: true", []string{"X-Api-Key", keyAcme}},
		{"+jwt-es256", "", ", authorizer: idp", []string{"Authorization", "Bearer " + token}},
		// Integration path rewriting, route request/response header mapping and a required
		// header check (edge.go, validate.go); the response mapping runs on a fake backend answer.
		{"+path-rewrite+route-mappings+validation", "response_headers: {set: {X-Frame-Options: DENY}, remove: [Server]}",
			`, request_headers: {X-Route: items}, response_headers: {set: {Cache-Control: no-store}}, request_validation: {required_headers: [X-Tenant]}, integration: {url: "http://127.0.0.1:1", path: "/v2/items/{id}"}`,
			[]string{"X-Tenant", "acme"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			route := tc.route
			if !strings.Contains(route, "integration:") {
				route += defaultIntegration
			}
			yaml := strings.NewReplacer("%GW%", tc.gw, "%ROUTE%", route).Replace(base)
			gc := parseGateway(b, dir, "", yaml)
			g, err := New(gc, nil, slog.New(slog.NewJSONHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			// The outbound request the proxy would send, with its path rewritten and the mapped
			// headers applied; then the response header mapping on a backend's answer.
			end := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ex := exchangeFrom(r.Context())
				out := r.Clone(r.Context())
				ex.route.rewritePath(out)
				g.applyMappings(out, ex)
				backendHeader := http.Header{"Server": {"backend"}, "Content-Type": {"application/json"}}
				applyResponseHeaders(backendHeader, ex.route.respHeaders, ex)
				w.WriteHeader(200)
			})
			stages := []func(http.Handler) http.Handler{g.assignRequestID, g.accessLog, g.corsStage(), g.limitHeaders, g.route, g.limitBody,
				g.access.throttleOpen, g.access.authorize, g.access.throttleIdentified, g.validate, g.mapParameters}
			h := http.Handler(end)
			for i := len(stages) - 1; i >= 0; i-- {
				h = stages[i](h)
			}
			req := httptest.NewRequest("GET", "http://api.test/items/42", nil)
			req.RemoteAddr = "192.0.2.1:40000"
			req.Header.Set("Origin", "http://localhost:3000")
			for i := 0; i+1 < len(tc.headers); i += 2 {
				req.Header.Set(tc.headers[i], tc.headers[i+1])
			}
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req.Clone(req.Context()))
				if w.Code != 200 {
					b.Fatalf("status %d %s", w.Code, w.Body)
				}
			}
		})
	}
}
