package observe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/rampart-edge/rampart/internal/config"
)

// Propagator is the W3C Trace Context propagator (traceparent, tracestate) every component uses
// to continue a trace across hops: a value, never the otel global, so nothing in the process
// depends on global state.
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// StartServerSpan continues the trace of r's traceparent (or starts one) with a server span named
// name. The caller ends it with EndHTTPSpan.
func StartServerSpan(tr trace.Tracer, r *http.Request, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	ctx := Propagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	attrs = append(attrs, attribute.String("http.request.method", NormalizeMethod(r.Method)), attribute.String("url.path", r.URL.Path))
	return tr.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
}

// EndHTTPSpan records the response status on span (an error status for 5xx, as the semantic
// conventions say for server spans) and ends it.
func EndHTTPSpan(span trace.Span, status int) {
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		span.SetStatus(codes.Error, "")
	}
	span.End()
}

// Tracing is the process's tracer provider. With exporter none (the default) it holds nothing:
// Tracer returns nil and the components install no tracing stage at all.
type Tracing struct {
	provider *sdktrace.TracerProvider
	closers  []func() error
}

// TracingOption changes NewTracing.
type TracingOption func(*tracingOptions)

type tracingOptions struct {
	exporter sdktrace.SpanExporter
	stderr   io.Writer
}

// WithSpanExporter sends spans to e synchronously, whatever the config's exporter (tests use an
// in-memory exporter through the same wiring).
func WithSpanExporter(e sdktrace.SpanExporter) TracingOption {
	return func(o *tracingOptions) { o.exporter = e }
}

// WithTraceStderr is where the stdout exporter writes when tracing.file is not set (os.Stderr by
// default).
func WithTraceStderr(w io.Writer) TracingOption { return func(o *tracingOptions) { o.stderr = w } }

// NewTracing builds the tracer provider cfg describes (nil cfg: none). Shutdown flushes and stops
// it.
func NewTracing(cfg *config.Tracing, opts ...TracingOption) (*Tracing, error) {
	o := tracingOptions{stderr: os.Stderr}
	for _, opt := range opts {
		opt(&o)
	}
	var c config.Tracing
	if cfg != nil {
		c = *cfg
	}
	t := &Tracing{}
	var exp sdktrace.SpanExporter
	var spo []sdktrace.TracerProviderOption
	switch {
	case o.exporter != nil:
		exp = o.exporter
		spo = append(spo, sdktrace.WithSyncer(exp))
	case c.Exporter == "" || c.Exporter == config.TracingNone:
		return t, nil
	case c.Exporter == config.TracingStdout:
		w := o.stderr
		if c.File != "" {
			f, err := os.OpenFile(c.File, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
			if err != nil {
				return nil, fmt.Errorf("tracing: %w", err)
			}
			t.closers = append(t.closers, f.Close)
			w = f
		}
		e, err := stdouttrace.New(stdouttrace.WithWriter(w))
		if err != nil {
			return nil, fmt.Errorf("tracing: stdout exporter: %w", err)
		}
		exp = e
		spo = append(spo, sdktrace.WithBatcher(exp))
	case c.Exporter == config.TracingOTLPHTTP:
		e, err := otlpExporter(c.Endpoint)
		if err != nil {
			return nil, err
		}
		exp = e
		spo = append(spo, sdktrace.WithBatcher(exp))
	default:
		return nil, fmt.Errorf("tracing: unknown exporter %q (write none, stdout or otlp_http)", c.Exporter)
	}
	ratio := 1.0
	if c.SampleRatio != nil {
		ratio = *c.SampleRatio
	}
	name := c.ServiceName
	if name == "" {
		name = config.DefaultTracingServiceName
	}
	spo = append(spo,
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name))),
	)
	t.provider = sdktrace.NewTracerProvider(spo...)
	return t, nil
}

// otlpExporter builds the OTLP/HTTP exporter for endpoint, an http(s) URL whose path, when set,
// replaces /v1/traces. Creating it does not connect: an unreachable collector costs dropped spans,
// never a failed start.
func otlpExporter(endpoint string) (sdktrace.SpanExporter, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tracing: endpoint %q: want http(s)://host:port", endpoint)
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(u.Host)}
	if u.Scheme == "http" {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	if p := strings.TrimRight(u.Path, "/"); p != "" {
		opts = append(opts, otlptracehttp.WithURLPath(u.Path))
	}
	// A plain client: the exporter must not follow HTTP_PROXY from the environment either.
	opts = append(opts, otlptracehttp.WithProxy(func(*http.Request) (*url.URL, error) { return nil, nil }))
	e, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: otlp_http exporter: %w", err)
	}
	return e, nil
}

// Enabled reports whether spans are recorded.
func (t *Tracing) Enabled() bool { return t != nil && t.provider != nil }

// Tracer returns the tracer of a component (gateway, lb, waf, proxy), or nil when tracing is off.
func (t *Tracing) Tracer(component string) trace.Tracer {
	if !t.Enabled() {
		return nil
	}
	return t.provider.Tracer("github.com/rampart-edge/rampart/" + component)
}

// Shutdown exports the spans still queued and stops the provider, within ctx.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	var errs []error
	if t.provider != nil {
		if err := t.provider.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("tracing: shutdown: %w", err))
		}
	}
	for _, c := range t.closers {
		errs = append(errs, c())
	}
	t.closers = nil
	return errors.Join(errs...)
}

// TraceID returns the trace id of ctx's span as 32 hex digits, or "" when there is none: for the
// trace_id access-log field that links a log line to its trace.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

// TraceIDFromHeader returns the trace id of a W3C traceparent header value
// (version-traceid-parentid-flags), or "" when it is not one. It allocates nothing.
func TraceIDFromHeader(tp string) string {
	// 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' {
		return ""
	}
	id := tp[3:35]
	zero := true
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return ""
		}
		if c != '0' {
			zero = false
		}
	}
	if zero {
		return ""
	}
	return id
}
