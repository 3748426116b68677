package gateway

import (
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rampart-edge/rampart/internal/ratelimit"
)

const storesYAML = `
gateways:
  - name: api
    listen: 127.0.0.1:0
    routes:
%EXTRA%      - {path: /b, methods: [GET], integration: {url: "%BACKEND%"}, throttle: [{key: source_ip, rate: 0.001, burst: 2}]}
`

// TestWithStoresKeepsBucketsAcrossGenerations builds a gateway, empties a route's bucket, then
// builds its successor from a changed config with the same registry (a reload) while the first
// is still open, and checks which changes keep the bucket.
func TestWithStoresKeepsBucketsAcrossGenerations(t *testing.T) {
	for _, tc := range []struct {
		name      string
		change    func(string) string
		throttled bool // the next request to /b is still refused
	}{
		{"unchanged", func(y string) string { return y }, true},
		{"a route added before it", func(y string) string {
			return strings.Replace(y, "%EXTRA%", `      - {path: /a, methods: [GET], integration: {url: "%BACKEND%"}}`+"\n", 1)
		}, true},
		{"its methods changed", func(y string) string { return strings.Replace(y, "methods: [GET]", "methods: [GET, HEAD]", 1) }, false},
		{"its burst changed: a new bucket", func(y string) string { return strings.Replace(y, "burst: 2", "burst: 1", 1) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backend := httptest.NewServer(&recorder{})
			defer backend.Close()
			reg := ratelimit.NewRegistry()
			defer reg.Close()
			serve := func(yaml string) (string, *Gateway) {
				t.Helper()
				yaml = strings.ReplaceAll(yaml, "%EXTRA%", "")
				gw, err := New(parseGateway(t, t.TempDir(), backend.URL, yaml), nil, slog.New(slog.DiscardHandler), WithStores(reg))
				if err != nil {
					t.Fatal(err)
				}
				srv := httptest.NewServer(gw)
				t.Cleanup(srv.Close)
				return srv.URL, gw
			}
			url1, gw1 := serve(storesYAML)
			for range 2 {
				if r := doFrom(t, nil, "GET", url1+"/b"); r.status != 200 {
					t.Fatalf("first generation: %d", r.status)
				}
			}
			wantJSON(t, doFrom(t, nil, "GET", url1+"/b"), 429, "Too Many Requests")

			url2, gw2 := serve(tc.change(storesYAML))
			defer gw2.Close()
			gw1.Close() // the old generation retires: the store stays, the new one holds it
			r := doFrom(t, nil, "GET", url2+"/b")
			if tc.throttled {
				wantJSON(t, r, 429, "Too Many Requests")
			} else if r.status != 200 {
				t.Fatalf("second generation: %d, want a fresh bucket", r.status)
			}
		})
	}
}
