package proxy

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/rampart-edge/rampart/internal/observe"
)

// tracingTransport makes each proxied attempt a client span and writes that span's traceparent
// into the outbound request, replacing the one the client sent, so the next hop continues the
// trace under this call. The span ends when the response headers arrive (or the call fails):
// what it measures is the backend's answer time, as rampart_target_duration_seconds does.
type tracingTransport struct {
	base   http.RoundTripper
	tracer trace.Tracer
	name   string
}

// traced wraps base when tracer is set; with tracing off the transport is base itself.
func traced(base http.RoundTripper, tracer trace.Tracer, name string) http.RoundTripper {
	if tracer == nil {
		return base
	}
	if base == nil {
		base = http.DefaultTransport
	}
	if name == "" {
		name = "proxy"
	}
	return &tracingTransport{base: base, tracer: tracer, name: name}
}

func (t *tracingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, span := t.tracer.Start(req.Context(), t.name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("http.request.method", observe.NormalizeMethod(req.Method)),
			attribute.String("server.address", req.URL.Host),
			attribute.String("url.path", req.URL.Path),
		))
	// The outbound request is ReverseProxy's own copy (headers cloned in ServeHTTP), so setting
	// the header here does not touch the inbound request.
	observe.Propagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "")
	} else {
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
		if resp.StatusCode >= 500 {
			span.SetStatus(codes.Error, "")
		}
	}
	span.End()
	return resp, err
}

// CloseIdleConnections reaches the wrapped transport's.
func (t *tracingTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
