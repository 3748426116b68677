package lb

import (
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/rampart-edge/rampart/internal/observe"
)

// WithMetrics makes the load balancer count its requests by rule, time them and its targets, and
// report target health and outstanding requests (docs/observability.md). Nil m: no metrics, no
// cost.
func WithMetrics(m *observe.Metrics) Option { return func(lb *LoadBalancer) { lb.obs.metrics = m } }

// WithTracer makes the load balancer record a server span per request (continuing the gateway's
// traceparent) and a client span per target attempt, whose traceparent the target receives. Nil
// t: no tracing, no cost.
func WithTracer(t trace.Tracer) Option { return func(lb *LoadBalancer) { lb.obs.tracer = t } }

// lbObserve is a load balancer's instrumentation. Label children are resolved when the rules and
// targets are built (or, for targets registered later, on their first request), so a request
// costs a few atomic adds.
type lbObserve struct {
	metrics  *observe.Metrics
	tracer   trace.Tracer
	duration *observe.Histogram
	none     *observe.RouteRequests // requests answered before a rule was chosen (WAF blocks)
	targets  *observe.TargetSource
}

// start resolves what does not depend on rules and registers the target gauges; New calls it
// once the groups exist.
func (o *lbObserve) start(lb *LoadBalancer) {
	if o.metrics == nil {
		return
	}
	o.duration = o.metrics.Duration(observe.ComponentLB, lb.name)
	o.none = o.metrics.Requests(observe.ComponentLB, lb.name, observe.NoRoute)
	o.targets = o.metrics.Targets(lb.name, func(yield func(observe.TargetState)) {
		for _, g := range lb.groups {
			for _, st := range g.status() {
				yield(observe.TargetState{Group: g.name, Target: st.Address, Outstanding: st.InFlight,
					Healthy: st.State == "healthy" || st.State == "ejected"})
			}
		}
	})
}

// stop unregisters the target gauges (Close).
func (o *lbObserve) stop() { o.targets.Close() }

// rule wraps a rule's (or the default) action so that the access record knows which counters
// the request belongs to. route is the rule's priority, or "default".
func (lb *LoadBalancer) ruleMetrics(h http.Handler, route string) http.Handler {
	if lb.obs.metrics == nil {
		return h
	}
	rr := lb.obs.metrics.Requests(observe.ComponentLB, lb.name, route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rec, ok := r.Context().Value(accessKey{}).(*accessRecord); ok {
			rec.requests = rr
		}
		h.ServeHTTP(w, r)
	})
}

// request records one answered request; the access log calls it.
func (o *lbObserve) request(method string, status int, rec *accessRecord, elapsed time.Duration) {
	if o.metrics == nil {
		return
	}
	o.duration.Observe(elapsed)
	if rec.requests != nil {
		rec.requests.Inc(method, status)
		return
	}
	o.none.Inc(method, status)
}

// trace is the outermost stage of a listener: the load balancer's server span, continuing the
// traceparent the gateway sent. With tracing off it is not in the pipeline.
func (lb *LoadBalancer) trace(next http.Handler) http.Handler {
	tr := lb.obs.tracer
	if tr == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := observe.StartServerSpan(tr, r, "lb "+lb.name, attribute.String("rampart.lb", lb.name),
			attribute.String("rampart.request_id", clip(r.Header.Get("X-Request-Id"), maxRequestIDLen)))
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			observe.EndHTTPSpan(span, status)
		}()
		next.ServeHTTP(sw, r.WithContext(ctx))
	})
}

// traceID is the access log's otel_trace_id when tracing is on.
func (o *lbObserve) traceID(r *http.Request) string {
	if o.tracer == nil {
		return ""
	}
	return observe.TraceID(r.Context())
}

// groupTransport times each attempt on a target of group g, from sending the request to its
// response headers (or failure), into rampart_target_duration_seconds.
func (lb *LoadBalancer) groupTransport(g *targetGroup, base http.RoundTripper) http.RoundTripper {
	if lb.obs.metrics == nil {
		return base
	}
	return &timedTransport{base: base, metrics: lb.obs.metrics, lb: lb.name, group: g.name, byTarget: map[string]*observe.Histogram{}}
}

type timedTransport struct {
	base      http.RoundTripper
	metrics   *observe.Metrics
	lb, group string
	mu        sync.RWMutex
	byTarget  map[string]*observe.Histogram // by target address; resolved on first use
}

func (t *timedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	t.histogram(req.URL.Host).Since(start)
	return resp, err
}

func (t *timedTransport) histogram(addr string) *observe.Histogram {
	t.mu.RLock()
	h := t.byTarget[addr]
	t.mu.RUnlock()
	if h != nil {
		return h
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if h = t.byTarget[addr]; h == nil {
		h = t.metrics.TargetDuration(t.lb, t.group, addr)
		t.byTarget[addr] = h
	}
	return h
}

// CloseIdleConnections reaches the wrapped transport's.
func (t *timedTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
