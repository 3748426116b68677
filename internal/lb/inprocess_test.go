package lb

import (
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/proxy"
)

// TestInProcessDesyncVerdicts: a request that a gateway of this process hands to the listener
// in-process (proxy.LocalHandlers, as `rampart run` does) gets the desync verdict the listener's
// guard gives the same request written by net/http's client on a connection, and the mode's
// answer: strictest refuses what it would refuse over the network, and the access log carries the
// same classification.
func TestInProcessDesyncVerdicts(t *testing.T) {
	type req struct {
		name   string
		method string
		body   string
		header []string
		length int64 // -1: chunked
	}
	reqs := []req{
		{name: "get", method: "GET"},
		{name: "post", method: "POST", body: "hello", length: 5},
		{name: "get-with-length", method: "GET", body: "hello", length: 5},
		{name: "get-chunked", method: "GET", body: "hello", length: -1},
		{name: "suspicious-name", method: "GET", header: []string{"Content_Length", "5"}},
	}
	for _, mode := range []string{config.DesyncMonitor, config.DesyncDefensive, config.DesyncStrictest} {
		t.Run(mode, func(t *testing.T) {
			logs := newLogRecorder(nil)
			cfg := config.LoadBalancer{Name: "alb", DesyncMitigationMode: mode, Listeners: []config.Listener{{Listen: "127.0.0.1:0", DefaultAction: fixed(200, "served")}}}
			lb, base := serve(t, cfg, slog.New(logs))
			u, _ := url.Parse(base)
			local := &proxy.LocalHandlers{}
			if err := local.Add(u.Host, lb.Handler(0)); err != nil {
				t.Fatal(err)
			}
			tcp := &http.Transport{DisableKeepAlives: true}
			defer tcp.CloseIdleConnections()
			inProc := local.Transport(u, tcp, nil)
			if _, ok := inProc.(*proxy.InProcess); !ok {
				t.Fatalf("no in-process transport for %s", u.Host)
			}
			send := func(rt http.RoundTripper, path string, r req) (int, string) {
				var body io.Reader
				if r.body != "" {
					body = strings.NewReader(r.body)
					if r.length < 0 {
						body = io.MultiReader(body) // of unknown length: chunked
					}
				}
				hr, err := http.NewRequest(r.method, base+path, body)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i+1 < len(r.header); i += 2 {
					hr.Header.Set(r.header[i], r.header[i+1])
				}
				res, err := rt.RoundTrip(hr)
				if err != nil {
					t.Fatalf("%s %s: %v", r.method, path, err)
				}
				defer res.Body.Close()
				b, _ := io.ReadAll(res.Body)
				return res.StatusCode, string(b)
			}
			classification := func(path string) string {
				for _, l := range logs.find("access") {
					if l["path"] == path {
						return l["classification"] + "/" + l["classification_reason"] + "/" + l["error_reason"]
					}
				}
				return "no access line"
			}
			for _, r := range reqs {
				st1, b1 := send(tcp, "/tcp/"+r.name, r)
				st2, b2 := send(inProc, "/in/"+r.name, r)
				if st1 != st2 || b1 != b2 {
					t.Errorf("%s: over TCP %d %q, in-process %d %q", r.name, st1, b1, st2, b2)
				}
				if c1, c2 := classification("/tcp/"+r.name), classification("/in/"+r.name); c1 != c2 {
					t.Errorf("%s: access log over TCP %q, in-process %q", r.name, c1, c2)
				}
			}
		})
	}
}
