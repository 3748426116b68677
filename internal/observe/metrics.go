package observe

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Component label values of rampart_requests_total and rampart_request_duration_seconds.
const (
	ComponentGateway = "gateway"
	ComponentLB      = "lb"
	ComponentApp     = "app"
)

// NoRoute is the route label of a request answered before any route or rule was chosen (a WAF
// block, a CORS refusal, a 404).
const NoRoute = "none"

// Metrics is one process's Prometheus metrics. It owns its registry (never the global default
// one), so two topologies in one test binary do not collide and a scrape shows this process only.
// Components receive it explicitly; every method is safe on a nil *Metrics and does nothing, so a
// component built without metrics pays one nil check.
//
// Label values are bounded by the config (gateway, route, rule, target group, target, ACL, rule
// names) or by small fixed sets (method, status class, results): nothing a client sends becomes a
// label value as is.
type Metrics struct {
	reg *prometheus.Registry

	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	integration    *prometheus.HistogramVec
	targetDuration *prometheus.HistogramVec
	wafMatches     *prometheus.CounterVec
	originVerify   *prometheus.CounterVec
	throttled      *prometheus.CounterVec
	quota          *prometheus.CounterVec
	cors           *prometheus.CounterVec
	reloads        *prometheus.CounterVec
	configInfo     *prometheus.GaugeVec

	targets *targetCollector
}

// NewMetrics returns metrics registered with a fresh registry, with the Go runtime and process
// collectors.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_requests_total",
		Help: "Requests answered, by component, component name, route (gateway route template or load balancer rule priority), method and status class.",
	}, []string{"component", "name", "route", "method", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rampart_request_duration_seconds",
		Help:    "Time from a request's arrival to its last response byte, by component and component name.",
		Buckets: prometheus.DefBuckets,
	}, []string{"component", "name"})
	m.integration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rampart_integration_duration_seconds",
		Help:    "Time a gateway's integration (backend) took to answer with headers, or to fail.",
		Buckets: prometheus.DefBuckets,
	}, []string{"gateway", "route"})
	m.targetDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rampart_target_duration_seconds",
		Help:    "Time a load balancer target took to answer one attempt with headers, or to fail.",
		Buckets: prometheus.DefBuckets,
	}, []string{"lb", "group", "target"})
	m.wafMatches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_waf_matches_total",
		Help: "Web ACL rule matches that were logged (count, allow and block rules, and the default action when it blocks).",
	}, []string{"acl", "rule", "action"})
	m.originVerify = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_origin_verify_results_total",
		Help: "Origin-verify checks by result; key_id is set for ok results only (never a secret).",
	}, []string{"result", "key_id"})
	m.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_throttle_rejections_total",
		Help: "Requests a gateway refused with 429 because a throttle's bucket was empty, by throttle level (gateway, route, plan).",
	}, []string{"gateway", "level"})
	m.quota = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_quota_rejections_total",
		Help: "Requests a gateway refused with 429 because the API key's usage plan quota was used up.",
	}, []string{"gateway", "plan"})
	m.cors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_cors_decisions_total",
		Help: "CORS decisions of a gateway: allowed, preflight_allowed, refused, preflight_refused, shadow_refused, no_origin.",
	}, []string{"gateway", "decision"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_config_reloads_total",
		Help: "Config reloads by result (success, failure).",
	}, []string{"result"})
	m.configInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rampart_config_info",
		Help: "1 for the hash of the config this process serves.",
	}, []string{"hash"})
	m.targets = &targetCollector{
		healthy: prometheus.NewDesc("rampart_target_healthy",
			"1 when a load balancer target passes its health checks, else 0.", []string{"lb", "group", "target"}, nil),
		outstanding: prometheus.NewDesc("rampart_target_outstanding_requests",
			"Requests a load balancer target is serving now.", []string{"lb", "group", "target"}, nil),
		sources: map[string]*TargetSource{},
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.duration, m.integration, m.targetDuration, m.wafMatches, m.originVerify,
		m.throttled, m.quota, m.cors, m.reloads, m.configInfo, m.targets,
	)
	// Reload results exist from the start, so that rate() and absent() work before the first reload.
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	return m
}

// Handler serves the exposition format (text, or protobuf/OpenMetrics when the scraper asks).
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: nil, Registry: m.reg})
}

// Gatherer is the registry, for the dashboard and tests that read values directly.
func (m *Metrics) Gatherer() prometheus.Gatherer {
	if m == nil {
		return prometheus.Gatherers{}
	}
	return m.reg
}

// Registerer lets another package add its own collectors to this process's registry.
func (m *Metrics) Registerer() prometheus.Registerer {
	if m == nil {
		return nil
	}
	return m.reg
}

// ConfigLoaded records the hash of the config the process started with.
func (m *Metrics) ConfigLoaded(hash string) {
	if m == nil {
		return
	}
	m.configInfo.Reset()
	m.configInfo.WithLabelValues(hash).Set(1)
}

// ReloadSucceeded counts a successful reload and records the new config's hash.
func (m *Metrics) ReloadSucceeded(hash string) {
	if m == nil {
		return
	}
	m.reloads.WithLabelValues("success").Inc()
	m.ConfigLoaded(hash)
}

// ReloadFailed counts a reload that was rejected; the running config (and its hash) stays.
func (m *Metrics) ReloadFailed() {
	if m == nil {
		return
	}
	m.reloads.WithLabelValues("failure").Inc()
}

// WAFMatch counts one logged web ACL match.
func (m *Metrics) WAFMatch(acl, rule, action string) {
	if m == nil {
		return
	}
	m.wafMatches.WithLabelValues(acl, rule, action).Inc()
}

// Origin-verify results.
const (
	OriginVerifyOK         = "ok"
	OriginVerifyMissing    = "missing"     // no header
	OriginVerifyDuplicate  = "duplicate"   // the header appears more than once
	OriginVerifyInvalid    = "invalid"     // wrong static value, malformed token or bad MAC
	OriginVerifyUnknownKey = "unknown_key" // a token naming no active key
	OriginVerifyExpired    = "expired"     // a token outside the allowed clock skew
	OriginVerifyReplayed   = "replayed"    // a token whose nonce was already used
	OriginVerifyError      = "error"       // the replay cache or store could not decide
)

// OriginVerify counts one origin-verify check. keyID must be a key id, never a secret; it is
// dropped unless result is ok, as a failed token's key id is whatever the caller wrote.
func (m *Metrics) OriginVerify(result, keyID string) {
	if m == nil {
		return
	}
	if result != OriginVerifyOK {
		keyID = ""
	}
	m.originVerify.WithLabelValues(result, keyID).Inc()
}

// ThrottleRejected counts a 429 from a throttle at level gateway, route or plan.
func (m *Metrics) ThrottleRejected(gateway, level string) {
	if m == nil {
		return
	}
	m.throttled.WithLabelValues(gateway, level).Inc()
}

// QuotaRejected counts a 429 from a usage plan's quota.
func (m *Metrics) QuotaRejected(gateway, plan string) {
	if m == nil {
		return
	}
	m.quota.WithLabelValues(gateway, plan).Inc()
}

// CORS decisions.
const (
	CORSNoOrigin         = "no_origin"         // no Origin header: not a CORS request
	CORSAllowed          = "allowed"           // an actual request from an allowed origin
	CORSRefused          = "refused"           // refused with 403 (enforce)
	CORSPreflightAllowed = "preflight_allowed" // a preflight answered with the allow headers
	CORSPreflightRefused = "preflight_refused" // a preflight refused (403 in enforce, bare 204 otherwise)
	CORSShadowRefused    = "shadow_refused"    // shadow mode: enforce would have refused, passed on
	CORSPassed           = "passed"            // standard mode: not allowed, passed on without CORS headers
)

var corsDecisions = [...]string{CORSNoOrigin, CORSAllowed, CORSRefused, CORSPreflightAllowed, CORSPreflightRefused, CORSShadowRefused, CORSPassed}

// CORSCounters are one gateway's CORS decision counters, resolved once.
type CORSCounters struct {
	byDecision map[string]prometheus.Counter
}

// CORS returns the decision counters of gateway, or nil when m is nil.
func (m *Metrics) CORS(gateway string) *CORSCounters {
	if m == nil {
		return nil
	}
	c := &CORSCounters{byDecision: make(map[string]prometheus.Counter, len(corsDecisions))}
	for _, d := range corsDecisions {
		c.byDecision[d] = m.cors.WithLabelValues(gateway, d)
	}
	return c
}

// Count counts one decision (one of the CORS* constants).
func (c *CORSCounters) Count(decision string) {
	if c == nil {
		return
	}
	if ctr := c.byDecision[decision]; ctr != nil {
		ctr.Inc()
	}
}

// methods are the method label values; any other method counts as OTHER, so that a client
// cannot mint series with made-up methods.
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "OTHER"}

func methodIndex(m string) int {
	switch m {
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "POST":
		return 2
	case "PUT":
		return 3
	case "PATCH":
		return 4
	case "DELETE":
		return 5
	case "OPTIONS":
		return 6
	case "CONNECT":
		return 7
	case "TRACE":
		return 8
	}
	return 9
}

var classes = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// classIndex maps a status to its class; a status outside 100-599 counts as 5xx.
func classIndex(status int) int {
	c := status/100 - 1
	if c < 0 || c >= len(classes) {
		return len(classes) - 1
	}
	return c
}

// StatusClass returns "2xx" for 200, and so on.
func StatusClass(status int) string { return classes[classIndex(status)] }

// NormalizeMethod returns m when it is a standard method, else "OTHER".
func NormalizeMethod(m string) string { return methods[methodIndex(m)] }

// RouteRequests counts the requests of one (component, name, route). Children are resolved the
// first time a method and status class is seen and cached, so counting costs two atomic loads and
// an add, with no allocation; series appear only for combinations that happened.
type RouteRequests struct {
	vec                 *prometheus.CounterVec
	component, name, rt string
	cells               [len(methods)][len(classes)]atomic.Pointer[prometheus.Counter]
}

// Requests returns the counters of route of the component instance; nil when m is nil.
func (m *Metrics) Requests(component, name, route string) *RouteRequests {
	if m == nil {
		return nil
	}
	if route == "" {
		route = NoRoute
	}
	return &RouteRequests{vec: m.requests, component: component, name: name, rt: route}
}

// Inc counts one answered request.
func (rr *RouteRequests) Inc(method string, status int) {
	if rr == nil {
		return
	}
	mi, ci := methodIndex(method), classIndex(status)
	cell := &rr.cells[mi][ci]
	c := cell.Load()
	if c == nil {
		ctr := rr.vec.WithLabelValues(rr.component, rr.name, rr.rt, methods[mi], classes[ci])
		c = &ctr
		cell.Store(c)
	}
	(*c).Inc()
}

// Duration returns the request duration histogram of a component instance; nil when m is nil.
func (m *Metrics) Duration(component, name string) *Histogram {
	if m == nil {
		return nil
	}
	return &Histogram{o: m.duration.WithLabelValues(component, name)}
}

// Integration returns the integration duration histogram of a gateway route; nil when m is nil.
func (m *Metrics) Integration(gateway, route string) *Histogram {
	if m == nil {
		return nil
	}
	return &Histogram{o: m.integration.WithLabelValues(gateway, route)}
}

// TargetDuration returns the duration histogram of a load balancer target; nil when m is nil.
func (m *Metrics) TargetDuration(lb, group, target string) *Histogram {
	if m == nil {
		return nil
	}
	return &Histogram{o: m.targetDuration.WithLabelValues(lb, group, target)}
}

// Histogram is a resolved histogram child; a nil *Histogram observes nothing.
type Histogram struct{ o prometheus.Observer }

// Since observes the seconds elapsed since start.
func (h *Histogram) Since(start time.Time) {
	if h == nil {
		return
	}
	h.o.Observe(time.Since(start).Seconds())
}

// Observe observes d.
func (h *Histogram) Observe(d time.Duration) {
	if h == nil {
		return
	}
	h.o.Observe(d.Seconds())
}

// TargetState is one target's state at scrape time.
type TargetState struct {
	Group, Target string
	Healthy       bool
	Outstanding   int64
}

// TargetSource reports the targets of one load balancer. The gauges are read from it at scrape
// time, so the request path pays nothing for them and a deregistered target disappears.
type TargetSource struct {
	lb    string
	fn    func(yield func(TargetState))
	owner *targetCollector
}

// Targets registers the target states of load balancer lb. A later registration for the same lb
// (a reloaded config) replaces it; Close removes it unless it was replaced. It returns nil when m
// is nil.
func (m *Metrics) Targets(lb string, fn func(yield func(TargetState))) *TargetSource {
	if m == nil {
		return nil
	}
	s := &TargetSource{lb: lb, fn: fn, owner: m.targets}
	m.targets.mu.Lock()
	m.targets.sources[lb] = s
	m.targets.mu.Unlock()
	return s
}

// Close stops reporting the source's targets.
func (s *TargetSource) Close() {
	if s == nil {
		return
	}
	c := s.owner
	c.mu.Lock()
	if c.sources[s.lb] == s {
		delete(c.sources, s.lb)
	}
	c.mu.Unlock()
}

// targetCollector collects rampart_target_healthy and rampart_target_outstanding_requests from
// the registered load balancers.
type targetCollector struct {
	healthy, outstanding *prometheus.Desc
	mu                   sync.Mutex
	sources              map[string]*TargetSource
}

func (c *targetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.healthy
	ch <- c.outstanding
}

func (c *targetCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	sources := make([]*TargetSource, 0, len(c.sources))
	for _, s := range c.sources {
		sources = append(sources, s)
	}
	c.mu.Unlock()
	for _, s := range sources {
		s.fn(func(t TargetState) {
			h := 0.0
			if t.Healthy {
				h = 1
			}
			ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, h, s.lb, t.Group, t.Target)
			ch <- prometheus.MustNewConstMetric(c.outstanding, prometheus.GaugeValue, float64(t.Outstanding), s.lb, t.Group, t.Target)
		})
	}
}
