package topology

import (
	"github.com/rampart-edge/rampart/internal/admin"
	"github.com/rampart-edge/rampart/internal/gateway"
	"github.com/rampart-edge/rampart/internal/lb"
	"github.com/rampart-edge/rampart/internal/observe"
	"github.com/rampart-edge/rampart/internal/waf"
)

// observeSet is what a generation's components are instrumented with: the process's metrics and
// tracer provider (Options.Metrics, Options.Tracing). Both outlive generations, so a reload keeps
// counting into the same series and tracing into the same exporter.
type observeSet struct {
	metrics *observe.Metrics
	tracing *observe.Tracing
}

func newObserveSet(opts Options) observeSet {
	return observeSet{metrics: opts.Metrics, tracing: opts.Tracing}
}

func (o observeSet) gatewayOptions() []gateway.Option {
	return []gateway.Option{gateway.WithMetrics(o.metrics), gateway.WithTracer(o.tracing.Tracer("gateway"))}
}

func (o observeSet) lbOptions() []lb.Option {
	return []lb.Option{lb.WithMetrics(o.metrics), lb.WithTracer(o.tracing.Tracer("lb"))}
}

func (o observeSet) wafOptions() []waf.Option {
	return []waf.Option{waf.WithMetrics(o.metrics), waf.WithTracer(o.tracing.Tracer("waf"))}
}

// adminRoutes is GET /metrics on the admin listener when the process has metrics.
func (o observeSet) adminRoutes() []admin.Route {
	if o.metrics == nil {
		return nil
	}
	return []admin.Route{{Pattern: "GET /metrics", Handler: o.metrics.Handler()}}
}
