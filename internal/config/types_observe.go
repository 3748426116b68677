package config

// Tracing exporters (tracing.exporter).
const (
	TracingNone     = "none"      // the default: no tracer at all, nothing is recorded
	TracingStdout   = "stdout"    // spans as JSON lines on stderr, or in tracing.file
	TracingOTLPHTTP = "otlp_http" // OTLP over HTTP to tracing.endpoint
)

// DefaultTracingServiceName is the service.name resource attribute of exported spans.
const DefaultTracingServiceName = "rampart"

// Tracing configures OpenTelemetry tracing (docs/observability.md). Absent, or with exporter
// none, components get no tracer and pay nothing; a W3C traceparent a client sends still reaches
// the app unchanged, as any other header does.
type Tracing struct {
	Exporter string `yaml:"exporter"`
	// Endpoint is the OTLP/HTTP collector URL for otlp_http, such as http://127.0.0.1:4318
	// (spans are posted to its /v1/traces unless the URL has a path).
	Endpoint string `yaml:"endpoint"`
	// File, for stdout, writes the spans to this file (appending) instead of stderr.
	File string `yaml:"file"`
	// SampleRatio is the share of new traces recorded, 0 to 1 (default 1). A request that arrives
	// with a traceparent follows its sampled flag instead.
	SampleRatio *float64 `yaml:"sample_ratio"`
	// ServiceName is the service.name of the spans (default rampart).
	ServiceName string `yaml:"service_name"`
}
