package topology

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/observe"
	"github.com/rampart-edge/rampart/internal/originverify"
)

// observedEdge is a gateway → load balancer (gateway-only web ACL) → app topology on free ports,
// with metrics, an in-memory span exporter and the admin listener.
type observedEdge struct {
	gw, lb, app, admin string
	dir                string
	metrics            *observe.Metrics
	spans              *tracetest.InMemoryExporter
	logs               *syncBuffer
	cfg                *config.Config
}

const obsAPIKey = "k_live_0123456789abcdefghij" // the API key's value: must never be exposed

func startObservedEdge(t *testing.T, traced bool) *observedEdge {
	t.Helper()
	e := &observedEdge{
		gw: freePort(t, "127.0.0.1"), lb: freePort(t, "127.0.0.1"), app: freePort(t, "127.0.0.1"), admin: freePort(t, "127.0.0.1"),
		dir: t.TempDir(), metrics: observe.NewMetrics(), spans: tracetest.NewInMemoryExporter(), logs: &syncBuffer{},
	}
	keys := fmt.Sprintf(`{"keys": [{"id": "acme", "value": %q}]}`, obsAPIKey)
	if err := os.WriteFile(e.dir+"/api-keys.json", []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`version: 1
secrets:
  origin-verify: {file: %[1]s/ov.keys}
  api-keys: {file: %[1]s/api-keys.json}
gateways:
  - name: gw
    listen: %[2]s
    cors: {mode: enforce, allow_origins: ["http://allowed.test"]}
    request_headers:
      X-Origin-Verify: "${secret:origin-verify}"
    api_keys: {secret: api-keys, quota_file: %[1]s/quota.json}
    usage_plans:
      - {name: gold, keys: [acme], quota: {limit: 2, period: day}}
    routes:
      - {path: /whoami, methods: [GET], integration: {url: "http://%[3]s"}}
      - {path: "/items/{id}", methods: [GET], integration: {url: "http://%[3]s"}}
      - {path: /limited, methods: [GET], throttle: [{rate: 0.001, burst: 1}], integration: {url: "http://%[3]s"}}
      - {path: /keyed, methods: [GET], api_key_required: true, integration: {url: "http://%[3]s"}}
load_balancers:
  - name: alb
    listeners:
      - listen: %[3]s
        web_acl: gateway-only
        rules:
          - {priority: 10, conditions: {path: ["/whoami", "/items/*", "/limited", "/keyed"]}, action: {forward: {target_group: items}}}
        default_action: {fixed_response: {status: 404}}
    target_groups:
      - name: items
        targets: ["%[4]s"]
        health_check: {path: /healthz, interval: 1s, timeout: 500ms, healthy_threshold: 2, unhealthy_threshold: 2}
web_acls:
  - name: gateway-only
    default_action: allow
    rules:
      - {name: require-origin-verify, priority: 0, action: block, statement: {not: {origin_verify: {header: X-Origin-Verify, secret: origin-verify}}}}
apps:
  - {name: items, listen: ["%[4]s"], database: "sqlite:%[1]s/items.db"}
admin:
  listen: %[5]s
`, e.dir, e.gw, e.lb, e.app, e.admin)
	cfg, err := config.Parse("observe.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	var topts []observe.TracingOption
	if traced {
		topts = append(topts, observe.WithSpanExporter(e.spans))
	}
	tracing, err := observe.NewTracing(nil, topts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tracing.Shutdown(context.Background()) })
	sel := Selection{Kinds: map[Kind]bool{KindGateway: true, KindLB: true, KindApp: true, KindAdmin: true}}
	logger := slog.New(slog.NewJSONHandler(e.logs, nil))
	serveTopology(t, cfg, sel, Options{Logger: logger, Metrics: e.metrics, Tracing: tracing})
	return e
}

// get sends GET url with the header pairs and returns the response with its body read.
func get(t *testing.T, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// poll retries check until it returns "" or the deadline passes, then fails with its last word.
func poll(t *testing.T, check func() string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var labelRE = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// sample returns the value of the first sample of name in a text exposition whose labels include
// want, and whether there is one.
func sample(exposition, name string, want map[string]string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(exposition))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		labels := map[string]string{}
		end := strings.LastIndexByte(line, '}')
		if end >= 0 {
			for _, m := range labelRE.FindAllStringSubmatch(line[:end], -1) {
				labels[m[1]] = m[2]
			}
		} else {
			end = len(name) - 1 // no labels: the value follows the name
		}
		ok := true
		for k, v := range want {
			if labels[k] != v {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line[end+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		return v, err == nil
	}
	return 0, false
}

func (e *observedEdge) scrape(t *testing.T) string {
	t.Helper()
	resp, body := get(t, "http://"+e.admin+"/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	return body
}

// TestMetricsAcrossHops drives requests through gateway → load balancer → app over real sockets
// and reads every family back from the admin listener's /metrics: requests by component, route,
// method and class; latencies; target health; WAF matches; origin-verify results by key id;
// throttle and quota rejections; CORS decisions; the config hash. The exposition holds neither
// the origin-verify secret nor the API key.
func TestMetricsAcrossHops(t *testing.T) {
	e := startObservedEdge(t, true)
	gw := "http://" + e.gw

	steps := []struct {
		name   string
		url    string
		header []string
		want   int
	}{
		{"allowed origin", gw + "/whoami", []string{"Origin", "http://allowed.test"}, 200},
		{"no origin", gw + "/whoami", nil, 200},
		{"item path template", gw + "/items/12345", nil, 404}, // the app has no item 12345
		{"disallowed origin", gw + "/whoami", []string{"Origin", "http://evil.test"}, 403},
		{"unknown route", gw + "/nope", nil, 404},
		{"odd method label", gw + "/whoami", nil, 200},
		{"throttle 1", gw + "/limited", nil, 404}, // through to the app, which has no /limited
		{"throttle 2", gw + "/limited", nil, 429},
		{"quota 1", gw + "/keyed", []string{"X-Api-Key", obsAPIKey}, 404},
		{"quota 2", gw + "/keyed", []string{"X-Api-Key", obsAPIKey}, 404},
		{"quota 3", gw + "/keyed", []string{"X-Api-Key", obsAPIKey}, 429},
		{"bypass the gateway", "http://" + e.lb + "/whoami", nil, 403},
		{"forged origin-verify", "http://" + e.lb + "/whoami", []string{"X-Origin-Verify", "not-the-secret-at-all"}, 403},
	}
	for _, s := range steps {
		resp, body := get(t, s.url, s.header...)
		if resp.StatusCode != s.want {
			t.Fatalf("%s: GET %s: %d %s, want %d", s.name, s.url, resp.StatusCode, body, s.want)
		}
	}
	// A method outside the known set is counted as OTHER, never as itself.
	req, _ := http.NewRequest("BREW", gw+"/whoami", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}

	kr, err := originverify.LoadOrCreate("origin-verify", e.dir+"/ov.keys")
	if err != nil {
		t.Fatal(err)
	}
	keyID, secret := kr.Current().ID, kr.Current().Secret

	type want struct {
		name   string
		labels map[string]string
		value  float64 // -1: any value > 0
	}
	wants := []want{
		{"rampart_requests_total", map[string]string{"component": "gateway", "name": "gw", "route": "/whoami", "method": "GET", "code": "2xx"}, 3},
		{"rampart_requests_total", map[string]string{"component": "gateway", "name": "gw", "route": "/items/{id}", "method": "GET", "code": "4xx"}, 1},
		{"rampart_requests_total", map[string]string{"component": "gateway", "name": "gw", "route": "none", "method": "GET", "code": "4xx"}, 2},   // CORS refusal, unknown route
		{"rampart_requests_total", map[string]string{"component": "gateway", "name": "gw", "route": "none", "method": "OTHER", "code": "4xx"}, 1}, // 405
		{"rampart_requests_total", map[string]string{"component": "gateway", "name": "gw", "route": "/limited", "method": "GET", "code": "4xx"}, 2},
		{"rampart_requests_total", map[string]string{"component": "lb", "name": "alb", "route": "10", "method": "GET", "code": "4xx"}, 4},
		{"rampart_requests_total", map[string]string{"component": "lb", "name": "alb", "route": "10", "method": "GET", "code": "2xx"}, 3},
		{"rampart_requests_total", map[string]string{"component": "lb", "name": "alb", "route": "none", "method": "GET", "code": "4xx"}, 2}, // WAF blocks
		{"rampart_requests_total", map[string]string{"component": "app", "name": "items-1", "route": "/whoami", "method": "GET", "code": "2xx"}, 3},
		{"rampart_requests_total", map[string]string{"component": "app", "name": "items-1", "route": "/items/{id}", "method": "GET", "code": "4xx"}, 1},
		{"rampart_request_duration_seconds_count", map[string]string{"component": "gateway", "name": "gw"}, 12},
		{"rampart_request_duration_seconds_count", map[string]string{"component": "lb", "name": "alb"}, -1},
		{"rampart_integration_duration_seconds_count", map[string]string{"gateway": "gw", "route": "/whoami"}, 3},
		{"rampart_target_duration_seconds_count", map[string]string{"lb": "alb", "group": "items", "target": e.app}, -1},
		{"rampart_target_healthy", map[string]string{"lb": "alb", "group": "items", "target": e.app}, 1},
		{"rampart_target_outstanding_requests", map[string]string{"lb": "alb", "group": "items", "target": e.app}, 0},
		{"rampart_waf_matches_total", map[string]string{"acl": "gateway-only", "rule": "require-origin-verify", "action": "block"}, 2},
		{"rampart_origin_verify_results_total", map[string]string{"result": "ok", "key_id": keyID}, -1},
		{"rampart_origin_verify_results_total", map[string]string{"result": "missing", "key_id": ""}, 1},
		{"rampart_origin_verify_results_total", map[string]string{"result": "invalid", "key_id": ""}, 1},
		{"rampart_throttle_rejections_total", map[string]string{"gateway": "gw", "level": "route"}, 1},
		{"rampart_quota_rejections_total", map[string]string{"gateway": "gw", "plan": "gold"}, 1},
		{"rampart_cors_decisions_total", map[string]string{"gateway": "gw", "decision": "allowed"}, 1},
		{"rampart_cors_decisions_total", map[string]string{"gateway": "gw", "decision": "refused"}, 1},
		{"rampart_cors_decisions_total", map[string]string{"gateway": "gw", "decision": "no_origin"}, -1},
		{"rampart_config_info", map[string]string{"hash": ConfigHash(e.cfg)}, 1},
		{"rampart_config_reloads_total", map[string]string{"result": "failure"}, 0},
		{"go_goroutines", nil, -1},
		{"process_start_time_seconds", nil, -1},
	}
	// The last access-log and histogram updates run after the response is sent: poll.
	var exposition string
	poll(t, func() string {
		exposition = e.scrape(t)
		for _, w := range wants {
			v, ok := sample(exposition, w.name, w.labels)
			switch {
			case !ok:
				return fmt.Sprintf("no %s%v in the exposition:\n%s", w.name, w.labels, exposition)
			case w.value < 0 && v <= 0, w.value >= 0 && v != w.value:
				return fmt.Sprintf("%s%v = %v, want %v", w.name, w.labels, v, w.value)
			}
		}
		return ""
	})
	for _, s := range []string{secret, obsAPIKey, "not-the-secret-at-all", "BREW", "/nope", "12345"} {
		if strings.Contains(exposition, s) {
			t.Errorf("the exposition contains %q", s)
		}
	}
	// The dashboard reads the same registry.
	if mfs, err := e.metrics.Gatherer().Gather(); err != nil || len(mfs) == 0 {
		t.Errorf("Gather: %d families, %v", len(mfs), err)
	}
}

// logLines returns the JSON log lines whose request_id is id.
func (e *observedEdge) logLines(t *testing.T, id string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if !strings.Contains(line, id) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["request_id"] == id {
			out = append(out, m)
		}
	}
	return out
}

const (
	clientTraceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientParentID = "00f067aa0ba902b7"
)

// whoami calls /whoami through the gateway with the client's traceparent and a forged request id,
// and returns the gateway's request id and the headers the app received.
func (e *observedEdge) whoami(t *testing.T) (string, map[string][]string) {
	t.Helper()
	resp, body := get(t, "http://"+e.gw+"/whoami", "Traceparent", "00-"+clientTraceID+"-"+clientParentID+"-01", "X-Request-Id", "forged-by-the-client")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /whoami: %d %s", resp.StatusCode, body)
	}
	var who struct {
		Headers map[string][]string `json:"headers"`
	}
	if err := json.Unmarshal([]byte(body), &who); err != nil {
		t.Fatal(err)
	}
	id := resp.Header.Get("X-Request-Id")
	if id == "" || id == "forged-by-the-client" {
		t.Fatalf("response X-Request-Id %q: want the gateway's own", id)
	}
	return id, who.Headers
}

// TestAccessLogsShareRequestID checks that one request through gateway → load balancer → app
// writes exactly one access line per component, all with the gateway's request id (never the one
// the client sent) and the trace id the client's traceparent started.
func TestAccessLogsShareRequestID(t *testing.T) {
	for _, traced := range []bool{true, false} {
		t.Run(fmt.Sprintf("tracing=%v", traced), func(t *testing.T) {
			e := startObservedEdge(t, traced)
			id, headers := e.whoami(t)
			if got := headers["X-Request-Id"]; len(got) != 1 || got[0] != id {
				t.Errorf("the app received X-Request-Id %q, want [%s]", got, id)
			}
			poll(t, func() string {
				lines := e.logLines(t, id)
				byComponent := map[string]int{}
				for _, l := range lines {
					byComponent[fmt.Sprint(l["component"])]++
				}
				if len(lines) != 3 || byComponent["gateway"] != 1 || byComponent["lb"] != 1 || byComponent["app"] != 1 {
					return fmt.Sprintf("want one line each from gateway, lb and app with request_id %s; got %v in:\n%s", id, byComponent, e.logs.String())
				}
				for _, l := range lines {
					if got := l["otel_trace_id"]; traced || l["component"] == "app" {
						// Without tracing the app still logs the trace id it received: the
						// client's traceparent passes through untouched.
						if got != clientTraceID {
							return fmt.Sprintf("%s line: otel_trace_id %v, want %s", l["component"], got, clientTraceID)
						}
					} else if got != nil {
						return fmt.Sprintf("%s line: otel_trace_id %v without tracing", l["component"], got)
					}
				}
				return ""
			})
			if strings.Contains(e.logs.String(), "forged-by-the-client") {
				t.Error("the client's X-Request-Id reached a log line")
			}
		})
	}
}

// TestTraceAcrossHops sends a request with a W3C traceparent through gateway → load balancer →
// app over real sockets and checks one trace: the gateway's server span continues the client's,
// the integration call, the load balancer, its WAF evaluation and the target call are its
// descendants, and the app received a traceparent of that trace whose parent is the target call.
// Without tracing the client's traceparent reaches the app unchanged.
func TestTraceAcrossHops(t *testing.T) {
	e := startObservedEdge(t, true)
	_, headers := e.whoami(t)
	tp := headers["Traceparent"]
	if len(tp) != 1 || observe.TraceIDFromHeader(tp[0]) != clientTraceID {
		t.Fatalf("the app received traceparent %q, want trace %s", tp, clientTraceID)
	}
	if len(headers["X-Rampart-Trace-Id"]) != 1 {
		t.Errorf("the load balancer's X-Rampart-Trace-Id is gone: %v", headers)
	}
	type span struct{ id, parent string }
	var byName map[string]span
	poll(t, func() string {
		byName = map[string]span{}
		for _, s := range e.spans.GetSpans() {
			if s.SpanContext.TraceID().String() != clientTraceID {
				return fmt.Sprintf("span %q has trace %s, want %s", s.Name, s.SpanContext.TraceID(), clientTraceID)
			}
			byName[s.Name] = span{s.SpanContext.SpanID().String(), s.Parent.SpanID().String()}
		}
		for _, n := range []string{"gateway /whoami", "integration", "lb alb", "waf gateway-only", "target"} {
			if _, ok := byName[n]; !ok {
				return fmt.Sprintf("no span %q among %v", n, byName)
			}
		}
		return ""
	})
	for child, parent := range map[string]string{"integration": "gateway /whoami", "lb alb": "integration", "waf gateway-only": "lb alb", "target": "lb alb"} {
		if byName[child].parent != byName[parent].id {
			t.Errorf("span %q has parent %s, want %q (%s)", child, byName[child].parent, parent, byName[parent].id)
		}
	}
	if byName["gateway /whoami"].parent != clientParentID {
		t.Errorf("the gateway span's parent is %s, want the client's %s", byName["gateway /whoami"].parent, clientParentID)
	}
	if want := "00-" + clientTraceID + "-" + byName["target"].id + "-01"; tp[0] != want {
		t.Errorf("the app received traceparent %s, want %s (the target call as parent)", tp[0], want)
	}

	t.Run("tracing off", func(t *testing.T) {
		e := startObservedEdge(t, false)
		_, headers := e.whoami(t)
		if want := "00-" + clientTraceID + "-" + clientParentID + "-01"; fmt.Sprint(headers["Traceparent"]) != "["+want+"]" {
			t.Errorf("the app received traceparent %v, want the client's %s untouched", headers["Traceparent"], want)
		}
		if n := len(e.spans.GetSpans()); n != 0 {
			t.Errorf("%d spans recorded with tracing off", n)
		}
	})
}
