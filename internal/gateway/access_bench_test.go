package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/rampart-edge/rampart/internal/cors"
)

// BenchmarkGatewayOwnWork measures what the gateway does per request besides proxying: request
// id, access log (to a discarding handler), CORS, route match, the throttles, authorizers and
// header mapping, up to the outbound headers. The stage list mirrors New's (without a web ACL);
// the proxy's own cost is BenchmarkProxyServeHTTP in internal/proxy.
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
      - {path: "/items/{id}", methods: [GET], integration: {url: "http://127.0.0.1:1"} %ROUTE%}
`
	token := es.token(b, goodClaims())
	for _, tc := range []struct {
		name, gw, route string
		headers         []string
	}{
		{"cors+route+mapping", "", "", nil},
		{"+throttle-gateway+source_ip", "throttle: [{rate: 1e6, burst: 1000000}, {key: source_ip, rate: 1e6, burst: 1000000}]", "", nil},
		{"+api_key+plan", "", ", api_key_required: true", []string{"X-Api-Key", keyAcme}},
		{"+jwt-es256", "", ", authorizer: idp", []string{"Authorization", "Bearer " + token}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			yaml := strings.NewReplacer("%GW%", tc.gw, "%ROUTE%", tc.route).Replace(base)
			gc := parseGateway(b, dir, "", yaml)
			g, err := New(gc, nil, slog.New(slog.NewJSONHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			policy, err := cors.New(gc.CORS, nil)
			if err != nil {
				b.Fatal(err)
			}
			// The outbound request the proxy would send, with the mapped headers applied.
			end := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				out := r.Clone(r.Context())
				g.applyMappings(out, exchangeFrom(r.Context()))
				w.WriteHeader(200)
			})
			stages := []func(http.Handler) http.Handler{g.assignRequestID, g.accessLog, policy.Wrap, g.route,
				g.access.throttleOpen, g.access.authorize, g.access.throttleIdentified, g.mapParameters}
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
