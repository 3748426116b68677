package gateway

import (
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/cors"
	"github.com/rampart-edge/rampart/internal/observe"
)

// WithMetrics makes the gateway count its requests, latencies, throttle and quota rejections and
// CORS decisions in m (docs/observability.md). Nil m: no metrics, no cost.
func WithMetrics(m *observe.Metrics) Option { return func(o *options) { o.observe.metrics = m } }

// WithTracer makes the gateway record a server span per request (continuing the caller's W3C
// traceparent) and a client span per integration call, whose traceparent the backend receives.
// Nil t: no tracing, no cost.
func WithTracer(t trace.Tracer) Option { return func(o *options) { o.observe.tracer = t } }

// observeOptions are the WithMetrics and WithTracer settings.
type observeOptions struct {
	metrics *observe.Metrics
	tracer  trace.Tracer
}

// gatewayObserve is a gateway's instrumentation with every label child resolved at build time:
// a request costs a map lookup by route template and a few atomic adds.
type gatewayObserve struct {
	name     string
	metrics  *observe.Metrics
	tracer   trace.Tracer
	duration *observe.Histogram
	none     *observe.RouteRequests       // requests answered before a route was chosen
	routes   map[string]*routeInstruments // by route template
}

type routeInstruments struct {
	requests    *observe.RouteRequests
	integration *observe.Histogram
}

func newGatewayObserve(cfg config.Gateway, o observeOptions) *gatewayObserve {
	g := &gatewayObserve{name: cfg.Name, metrics: o.metrics, tracer: o.tracer}
	if o.metrics == nil {
		return g
	}
	g.duration = o.metrics.Duration(observe.ComponentGateway, cfg.Name)
	g.none = o.metrics.Requests(observe.ComponentGateway, cfg.Name, observe.NoRoute)
	g.routes = make(map[string]*routeInstruments, len(cfg.Routes))
	for _, rc := range cfg.Routes {
		if g.routes[rc.Path] == nil {
			g.routes[rc.Path] = &routeInstruments{
				requests:    o.metrics.Requests(observe.ComponentGateway, cfg.Name, rc.Path),
				integration: o.metrics.Integration(cfg.Name, rc.Path),
			}
		}
	}
	return g
}

// instrument hands the CORS policy and the access stages their counters.
func (o *gatewayObserve) instrument(p *cors.Policy, a *access) {
	if o.metrics == nil {
		return
	}
	p.SetMetrics(o.metrics.CORS(o.name))
	a.metrics = o.metrics
}

// request records one answered request; the access log calls it with what it logs.
func (o *gatewayObserve) request(method string, status int, ex *exchange, elapsed time.Duration) {
	if o.metrics == nil {
		return
	}
	o.duration.Observe(elapsed)
	var ri *routeInstruments
	if ex.route != nil {
		ri = o.routes[ex.route.template]
	}
	if ri == nil {
		o.none.Inc(method, status)
		return
	}
	ri.requests.Inc(method, status)
	if ex.integrationLatency > 0 {
		ri.integration.Observe(ex.integrationLatency)
	}
}

// trace is the pipeline stage of the gateway's server span. It runs after the request id is
// assigned (the span carries it) and before the access log (whose line then carries trace_id).
// With tracing off it is not in the pipeline at all.
func (o *gatewayObserve) trace(next http.Handler) http.Handler {
	if o.tracer == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := exchangeFrom(r.Context())
		ctx, span := observe.StartServerSpan(o.tracer, r, "gateway",
			attribute.String("rampart.gateway", o.name), attribute.String("rampart.request_id", ex.id))
		defer func() {
			// The access-log stage, just inside this one, records the status for every request.
			status := ex.sw.status
			if status == 0 {
				status = http.StatusOK
			}
			if ex.route != nil {
				span.SetName("gateway " + ex.route.template)
				span.SetAttributes(attribute.String("http.route", ex.route.template))
			}
			observe.EndHTTPSpan(span, status)
		}()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// traceID is the access log's trace_id: the id of the request's span when tracing is on.
func (o *gatewayObserve) traceID(r *http.Request) string {
	if o.tracer == nil {
		return ""
	}
	return observe.TraceID(r.Context())
}

// countThrottle counts a throttle refusal by the level of the rule that refused: gateway, route
// or plan (compileThrottles and loadAPIKeys encode it in the bucket prefix).
func (a *access) countThrottle(rule *throttleRule) {
	if a.metrics == nil {
		return
	}
	level := "gateway"
	switch p := rule.prefix; {
	case strings.HasPrefix(p, "p|"):
		level = "plan"
	case len(p) > len(a.gateway)+3 && strings.HasPrefix(p[len(a.gateway)+3:], "route"): // "t|" + gateway + "|"
		level = "route"
	}
	a.metrics.ThrottleRejected(a.gateway, level)
}

// countQuota counts a quota refusal of k's plan.
func (a *access) countQuota(k *apiKey) {
	if a.metrics == nil || k.plan == nil {
		return
	}
	a.metrics.QuotaRejected(a.gateway, k.plan.name)
}
