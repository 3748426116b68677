package observe

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRouteRequestsLabels(t *testing.T) {
	m := NewMetrics()
	rr := m.Requests(ComponentGateway, "gw", "/items/{id}")
	for _, c := range []struct {
		method string
		status int
	}{{"GET", 200}, {"GET", 204}, {"get", 200}, {"BREW", 503}, {"DELETE", 404}, {"GET", 0}, {"GET", 999}, {"GET", 101}} {
		rr.Inc(c.method, c.status)
	}
	tests := []struct {
		method, code string
		want         float64
	}{
		{"GET", "2xx", 2},
		{"OTHER", "2xx", 1}, // "get" is not GET: methods are case-sensitive
		{"OTHER", "5xx", 1},
		{"DELETE", "4xx", 1},
		{"GET", "5xx", 2}, // 0 and 999 are not statuses a client got: counted as 5xx
		{"GET", "1xx", 1},
	}
	for _, tc := range tests {
		got := testutil.ToFloat64(m.requests.WithLabelValues(ComponentGateway, "gw", "/items/{id}", tc.method, tc.code))
		if got != tc.want {
			t.Errorf("%s %s = %v, want %v", tc.method, tc.code, got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(m.requests); n != len(tests) {
		t.Errorf("%d series, want %d (no series for combinations that never happened)", n, len(tests))
	}
	if m.Requests(ComponentLB, "alb", "").rt != NoRoute {
		t.Error("an empty route is not labelled none")
	}
}

// TestNilMetrics: a component built without metrics calls the same methods on nil.
func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.Requests(ComponentApp, "a", "/").Inc("GET", 200)
	m.Duration(ComponentApp, "a").Since(time.Now())
	m.Integration("gw", "/").Observe(time.Second)
	m.TargetDuration("lb", "g", "t").Since(time.Now())
	m.WAFMatch("acl", "rule", "block")
	m.OriginVerify(OriginVerifyOK, "k1")
	m.ThrottleRejected("gw", "route")
	m.QuotaRejected("gw", "gold")
	m.CORS("gw").Count(CORSAllowed)
	m.ConfigLoaded("abc")
	m.ReloadSucceeded("abc")
	m.ReloadFailed()
	m.Targets("lb", nil).Close()
	if m.Handler() == nil || m.Gatherer() == nil {
		t.Fatal("nil handler or gatherer")
	}
}

func TestReloadsAndConfigInfo(t *testing.T) {
	m := NewMetrics()
	m.ConfigLoaded("aaa")
	m.ReloadFailed()
	m.ReloadSucceeded("bbb")
	m.ReloadSucceeded("ccc")
	if got := testutil.ToFloat64(m.reloads.WithLabelValues("success")); got != 2 {
		t.Errorf("success = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.reloads.WithLabelValues("failure")); got != 1 {
		t.Errorf("failure = %v, want 1", got)
	}
	// Only the running config's hash is exposed.
	want := "# HELP rampart_config_info 1 for the hash of the config this process serves.\n# TYPE rampart_config_info gauge\nrampart_config_info{hash=\"ccc\"} 1\n"
	if err := testutil.CollectAndCompare(m.configInfo, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestOriginVerifyKeyIDOnlyWhenOK(t *testing.T) {
	m := NewMetrics()
	m.OriginVerify(OriginVerifyOK, "k-2026")
	m.OriginVerify(OriginVerifyUnknownKey, "attacker-chosen-id")
	if got := testutil.ToFloat64(m.originVerify.WithLabelValues(OriginVerifyUnknownKey, "")); got != 1 {
		t.Errorf("unknown_key without key id = %v, want 1", got)
	}
	body := scrape(t, m)
	if strings.Contains(body, "attacker-chosen-id") {
		t.Error("a failed check's key id became a label value")
	}
	if !strings.Contains(body, `rampart_origin_verify_results_total{key_id="k-2026",result="ok"} 1`) {
		t.Errorf("no ok sample with its key id:\n%s", body)
	}
}

func TestTargetSources(t *testing.T) {
	m := NewMetrics()
	state := func(healthy bool, n int64) func(func(TargetState)) {
		return func(yield func(TargetState)) {
			yield(TargetState{Group: "items", Target: "10.0.0.1:80", Healthy: healthy, Outstanding: n})
		}
	}
	old := m.Targets("alb", state(true, 3))
	if !strings.Contains(scrape(t, m), `rampart_target_outstanding_requests{group="items",lb="alb",target="10.0.0.1:80"} 3`) {
		t.Fatal("no outstanding gauge")
	}
	// A reload registers the new load balancer before the old one closes: the old Close must not
	// remove the new source.
	m.Targets("alb", state(false, 0))
	old.Close()
	if body := scrape(t, m); !strings.Contains(body, `rampart_target_healthy{group="items",lb="alb",target="10.0.0.1:80"} 0`) {
		t.Fatalf("the replacing source is gone:\n%s", body)
	}
	if n := testutil.CollectAndCount(m.targets); n != 2 {
		t.Errorf("%d target series, want 2", n)
	}
}

func TestHandlerServesTextWithRuntimeCollectors(t *testing.T) {
	body := scrape(t, NewMetrics())
	for _, want := range []string{"go_goroutines ", "process_start_time_seconds ", `rampart_config_reloads_total{result="failure"} 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("no %q in the exposition", want)
		}
	}
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	b, _ := io.ReadAll(w.Body)
	return string(b)
}

// BenchmarkInstrumentation is the per-request cost of what a component records: a request
// counter with a method and status class, and a latency histogram observation of the duration
// the access log measured anyway (reading the clock is not counted). It must not allocate.
func BenchmarkInstrumentation(b *testing.B) {
	m := NewMetrics()
	rr := m.Requests(ComponentGateway, "gw", "/items/{id}")
	h := m.Duration(ComponentGateway, "gw")
	d := 1200 * time.Microsecond
	b.ReportAllocs()
	for b.Loop() {
		rr.Inc("GET", 200)
		h.Observe(d)
	}
}

// BenchmarkInstrumentationOff is the same with metrics off (nil): the cost of the nil checks.
func BenchmarkInstrumentationOff(b *testing.B) {
	var m *Metrics
	rr := m.Requests(ComponentGateway, "gw", "/items/{id}")
	h := m.Duration(ComponentGateway, "gw")
	d := 1200 * time.Microsecond
	b.ReportAllocs()
	for b.Loop() {
		rr.Inc("GET", 200)
		h.Observe(d)
	}
}

func TestInstrumentationAllocatesNothing(t *testing.T) {
	m := NewMetrics()
	rr := m.Requests(ComponentLB, "alb", "10")
	h := m.Duration(ComponentLB, "alb")
	c := m.CORS("gw")
	rr.Inc("POST", 201) // resolve the child once
	start := time.Now()
	if n := testing.AllocsPerRun(1000, func() {
		rr.Inc("POST", 201)
		h.Since(start)
		c.Count(CORSAllowed)
	}); n != 0 {
		t.Errorf("%v allocations per request, want 0", n)
	}
}
