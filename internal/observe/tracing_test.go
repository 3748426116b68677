package observe

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/rampart-edge/rampart/internal/config"
)

func TestTracingNoneIsNoTracer(t *testing.T) {
	for _, cfg := range []*config.Tracing{nil, {}, {Exporter: config.TracingNone}} {
		tr, err := NewTracing(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if tr.Enabled() || tr.Tracer("gateway") != nil {
			t.Errorf("%+v: tracing is on", cfg)
		}
		if err := tr.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}
	var nilTracing *Tracing
	if nilTracing.Tracer("lb") != nil || nilTracing.Shutdown(context.Background()) != nil {
		t.Error("a nil *Tracing traces")
	}
}

func TestTracingStdoutFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "spans.json")
	tr, err := NewTracing(&config.Tracing{Exporter: config.TracingStdout, File: file})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Tracer("gateway").Start(context.Background(), "gateway /items")
	span.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"Name":"gateway /items"`)) || !bytes.Contains(b, []byte(`"service.name"`)) {
		t.Errorf("the span is not in the file:\n%s", b)
	}
}

func TestTracingStdoutDefaultsToStderr(t *testing.T) {
	var buf bytes.Buffer
	tr, err := NewTracing(&config.Tracing{Exporter: config.TracingStdout}, WithTraceStderr(&buf))
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Tracer("lb").Start(context.Background(), "lb alb")
	span.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"Name":"lb alb"`) {
		t.Errorf("stderr got %q", buf.String())
	}
}

// TestTracingOTLPHTTP exports to a real HTTP listener standing in for the collector, at the
// default path and at one the endpoint names.
func TestTracingOTLPHTTP(t *testing.T) {
	for _, tc := range []struct{ path, want string }{{"", "/v1/traces"}, {"/otel/traces", "/otel/traces"}} {
		var hits atomic.Int32
		var gotPath atomic.Value
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			gotPath.Store(r.URL.Path)
			if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
				t.Errorf("content type %q", ct)
			}
			_, _ = io.Copy(io.Discard, r.Body)
			hits.Add(1)
			w.WriteHeader(http.StatusOK)
		}))
		ratio := 1.0
		tr, err := NewTracing(&config.Tracing{Exporter: config.TracingOTLPHTTP, Endpoint: srv.URL + tc.path, SampleRatio: &ratio})
		if err != nil {
			t.Fatal(err)
		}
		_, span := tr.Tracer("gateway").Start(context.Background(), "gateway")
		span.End()
		if err := tr.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		if hits.Load() == 0 || gotPath.Load() != tc.want {
			t.Errorf("endpoint path %q: %d posts to %v, want %s", tc.path, hits.Load(), gotPath.Load(), tc.want)
		}
	}
}

// TestSampleRatio: with ratio 0 a new trace is not recorded, but a caller's sampled traceparent
// is followed.
func TestSampleRatio(t *testing.T) {
	zero := 0.0
	var buf bytes.Buffer
	tr, err := NewTracing(&config.Tracing{Exporter: config.TracingStdout, SampleRatio: &zero}, WithTraceStderr(&buf))
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Tracer("gateway").Start(context.Background(), "new")
	if span.SpanContext().IsSampled() {
		t.Error("a new trace was sampled at ratio 0")
	}
	span.End()
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	_, span = StartServerSpan(tr.Tracer("gateway"), r, "continued")
	if !span.SpanContext().IsSampled() || span.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("the caller's sampled trace was not continued: %v", span.SpanContext())
	}
	if span.(interface{ SpanKind() trace.SpanKind }).SpanKind() != trace.SpanKindServer {
		t.Error("not a server span")
	}
	EndHTTPSpan(span, 502)
	_ = tr.Shutdown(context.Background())
}

func TestNewTracingErrors(t *testing.T) {
	for _, cfg := range []*config.Tracing{
		{Exporter: "jaeger"},
		{Exporter: config.TracingOTLPHTTP, Endpoint: "127.0.0.1:4318"},
		{Exporter: config.TracingStdout, File: "/nonexistent-dir/x/spans.json"},
	} {
		if _, err := NewTracing(cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

func TestTraceIDFromHeader(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""}, // the invalid all-zero id
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", ""}, // upper case is invalid
		{"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", ""},
		{"", ""},
		{"garbage", ""},
	} {
		if got := TraceIDFromHeader(tc.in); got != tc.want {
			t.Errorf("TraceIDFromHeader(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	var sink string
	if n := testing.AllocsPerRun(100, func() { sink = TraceIDFromHeader("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") }); n != 0 || sink == "" {
		t.Errorf("%v allocations", n)
	}
}
