package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestObservabilityAcrossProcesses runs the gateway, the load balancer and the app as three
// processes with tracing on (stdout exporter, to stderr), sends one request with a W3C
// traceparent, and checks what an operator would: the app received a traceparent of the client's
// trace; each process logged one access line with the gateway's request id; each served its
// metrics on its admin listener; and, after a graceful stop flushed them, the gateway's and the
// load balancer's spans carry the client's trace id.
func TestObservabilityAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	gw, lbAddr, app := freePort(t), freePort(t), freePort(t)
	gwAdmin, lbAdmin, appAdmin := freePort(t), freePort(t), freePort(t)
	cfg := fmt.Sprintf(`version: 1
secrets:
  origin-verify: {file: ov.keys}
gateways:
  - name: gw
    listen: %[1]s
    request_headers:
      X-Origin-Verify: "${secret:origin-verify}"
    routes:
      - {path: /whoami, methods: [GET], integration: {url: "http://%[2]s"}}
load_balancers:
  - name: alb
    listeners:
      - listen: %[2]s
        web_acl: gateway-only
        rules:
          - {priority: 10, conditions: {path: ["/whoami"]}, action: {forward: {target_group: items}}}
        default_action: {fixed_response: {status: 404}}
    target_groups:
      - name: items
        targets: ["%[3]s"]
        health_check: {path: /healthz, interval: 1s, timeout: 500ms, healthy_threshold: 2, unhealthy_threshold: 2}
web_acls:
  - name: gateway-only
    default_action: allow
    rules:
      - {name: require-origin-verify, priority: 0, action: block, statement: {not: {origin_verify: {header: X-Origin-Verify, secret: origin-verify}}}}
apps:
  - {name: items, listen: ["%[3]s"], database: "sqlite:items.db"}
tracing:
  exporter: stdout
`, gw, lbAddr, app)
	if err := os.WriteFile(filepath.Join(dir, "rampart.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ap := start(t, dir, "app", "-c", "rampart.yaml", "--admin", appAdmin)
	lb := start(t, dir, "lb", "-c", "rampart.yaml", "--admin", lbAdmin)
	gp := start(t, dir, "gateway", "-c", "rampart.yaml", "--admin", gwAdmin)
	for _, w := range []struct {
		p   *proc
		url string
	}{{ap, "http://" + appAdmin + "/healthz"}, {lb, "http://" + lbAdmin + "/healthz"}, {gp, "http://" + gwAdmin + "/healthz"}} {
		waitHTTP(t, w.p, w.url)
	}

	const traceID = "0af7651916cd43dd8448eb211c80319c"
	var r response
	eventually(t, 20*time.Second, func() error {
		r = do(t, "GET", "http://"+gw+"/whoami", "", "Traceparent", "00-"+traceID+"-b7ad6b7169203331-01")
		if r.status != 200 {
			return fmt.Errorf("GET /whoami: %d %s", r.status, r.body)
		}
		return nil
	})
	var who struct {
		Headers map[string][]string `json:"headers"`
	}
	if err := json.Unmarshal([]byte(r.body), &who); err != nil {
		t.Fatal(err)
	}
	if tp := who.Headers["Traceparent"]; len(tp) != 1 || !strings.HasPrefix(tp[0], "00-"+traceID+"-") || strings.Contains(tp[0], "b7ad6b7169203331") {
		t.Errorf("the app received traceparent %v: want trace %s with the load balancer's call as parent", tp, traceID)
	}
	id := r.header.Get("X-Request-Id")
	for _, c := range []struct {
		name string
		p    *proc
	}{{"gateway", gp}, {"lb", lb}, {"app", ap}} {
		eventually(t, 5*time.Second, func() error {
			n := 0
			for _, line := range strings.Split(c.p.stderr.String(), "\n") {
				if strings.Contains(line, `"request_id":"`+id+`"`) && strings.Contains(line, `"component":"`+c.name+`"`) {
					n++
				}
			}
			if n != 1 {
				return fmt.Errorf("%s: %d access lines with request_id %s, want 1:\n%s", c.name, n, id, c.p.stderr)
			}
			return nil
		})
	}
	for _, m := range []struct{ admin, want string }{
		{gwAdmin, `rampart_requests_total{code="2xx",component="gateway",method="GET",name="gw",route="/whoami"} 1`},
		{lbAdmin, `rampart_requests_total{code="2xx",component="lb",method="GET",name="alb",route="10"} 1`},
		{appAdmin, `rampart_requests_total{code="2xx",component="app",method="GET",name="items-1",route="/whoami"} 1`},
	} {
		if got := do(t, "GET", "http://"+m.admin+"/metrics", ""); got.status != 200 || !strings.Contains(got.body, m.want) {
			t.Errorf("GET %s/metrics: %d, want %s in:\n%s", m.admin, got.status, m.want, got.body)
		}
	}

	// A graceful stop flushes the batched spans to stderr.
	gp.stop()
	lb.stop()
	for _, c := range []struct {
		p    *proc
		span string
	}{{gp, "gateway /whoami"}, {gp, "integration"}, {lb, "lb alb"}, {lb, "waf gateway-only"}, {lb, "target"}} {
		found := false
		for _, line := range strings.Split(c.p.stderr.String(), "\n") {
			var s struct {
				Name        string
				SpanContext struct{ TraceID string }
			}
			if json.Unmarshal([]byte(line), &s) == nil && s.Name == c.span && s.SpanContext.TraceID == traceID {
				found = true
			}
		}
		if !found {
			t.Errorf("no span %q of trace %s in:\n%s", c.span, traceID, c.p.stderr)
		}
	}
}
