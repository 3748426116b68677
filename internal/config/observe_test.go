package config

import (
	"strings"
	"testing"
)

func TestTracingConfig(t *testing.T) {
	const base = "version: 1\nadmin: {listen: 127.0.0.1:9900}\n"
	tests := []struct {
		name, yaml string
		wantErr    []string // substrings of the error, in order; none: valid
		check      func(t *testing.T, c *Config)
	}{
		{name: "absent", yaml: "", check: func(t *testing.T, c *Config) {
			if c.Tracing != nil {
				t.Errorf("tracing %+v, want nil", c.Tracing)
			}
		}},
		{name: "defaults", yaml: "tracing: {}\n", check: func(t *testing.T, c *Config) {
			if c.Tracing.Exporter != TracingNone || c.Tracing.ServiceName != DefaultTracingServiceName || c.Tracing.SampleRatio != nil {
				t.Errorf("tracing %+v", c.Tracing)
			}
		}},
		{name: "otlp_http", yaml: "tracing: {exporter: otlp_http, endpoint: \"http://127.0.0.1:4318\", sample_ratio: 0.25, service_name: edge}\n", check: func(t *testing.T, c *Config) {
			if c.Tracing.Endpoint != "http://127.0.0.1:4318" || *c.Tracing.SampleRatio != 0.25 || c.Tracing.ServiceName != "edge" {
				t.Errorf("tracing %+v", c.Tracing)
			}
		}},
		{name: "stdout to a file", yaml: "tracing: {exporter: stdout, file: /tmp/spans.json, sample_ratio: 1}\n"},
		{name: "unknown exporter", yaml: "tracing: {exporter: otlp_grpc}\n", wantErr: []string{"t.yaml:3:", "unknown exporter \"otlp_grpc\"", "otlp_http"}},
		{name: "otlp without endpoint", yaml: "tracing: {exporter: otlp_http}\n", wantErr: []string{"t.yaml:3:", "tracing.endpoint"}},
		{name: "endpoint not a URL", yaml: "tracing: {exporter: otlp_http, endpoint: \"127.0.0.1:4318\"}\n", wantErr: []string{"t.yaml:3:", "absolute http:// or https:// URL"}},
		{name: "endpoint with credentials", yaml: "tracing: {exporter: otlp_http, endpoint: \"http://u:p@collector:4318\"}\n", wantErr: []string{"t.yaml:3:", "must not carry credentials"}},
		{name: "endpoint without otlp", yaml: "tracing: {exporter: stdout, endpoint: \"http://x:1\"}\n", wantErr: []string{"t.yaml:3:", "endpoint applies to exporter otlp_http only"}},
		{name: "file without stdout", yaml: "tracing: {file: spans.json}\n", wantErr: []string{"t.yaml:3:", "file applies to exporter stdout only"}},
		{name: "ratio above 1", yaml: "tracing: {exporter: stdout, sample_ratio: 1.5}\n", wantErr: []string{"t.yaml:3:", "sample_ratio 1.5 is outside 0..1"}},
		{name: "ratio not a number", yaml: "tracing: {exporter: stdout, sample_ratio: half}\n", wantErr: []string{"t.yaml:3:", "expected a number"}},
		{name: "misspelt key", yaml: "tracing: {exporter: stdout, sample_rate: 0.5}\n", wantErr: []string{"t.yaml:3:", "sample_rate"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("t.yaml", []byte(base+tc.yaml), nil)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if tc.check != nil {
					tc.check(t, c)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			rest := msg
			for _, w := range tc.wantErr {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error %q lacks %q", msg, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}
