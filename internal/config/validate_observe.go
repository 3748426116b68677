package config

import (
	"fmt"
	"net/url"
)

// checkTracing checks the tracing section: a known exporter, the endpoint otlp_http needs, and a
// sample ratio between 0 and 1.
func (c *checker) checkTracing() {
	t := c.cfg.Tracing
	if t == nil {
		return
	}
	if t.Exporter == "" {
		t.Exporter = TracingNone
	}
	if !c.enum("tracing.exporter", "exporter", t.Exporter, []string{TracingNone, TracingStdout, TracingOTLPHTTP}) {
		return
	}
	switch t.Exporter {
	case TracingOTLPHTTP:
		if c.httpURL("tracing.endpoint", t.Endpoint, "the OTLP/HTTP endpoint") {
			if u, err := url.Parse(t.Endpoint); err == nil && u.User != nil {
				// The config is shown by the admin API and logged on errors: no credentials in it.
				c.errf("tracing.endpoint", "remove user:password@ from the URL", "the OTLP/HTTP endpoint must not carry credentials")
			}
		}
	default:
		if t.Endpoint != "" {
			c.errf("tracing.endpoint", "set exporter: otlp_http, or remove endpoint",
				"endpoint applies to exporter otlp_http only (exporter is %s)", t.Exporter)
		}
	}
	if t.File != "" && t.Exporter != TracingStdout {
		c.errf("tracing.file", "set exporter: stdout, or remove file", "file applies to exporter stdout only (exporter is %s)", t.Exporter)
	}
	if r := t.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		c.errf("tracing.sample_ratio", "write a number from 0 (no new trace) to 1 (every trace), such as 0.1",
			"sample_ratio %s is outside 0..1", fmt.Sprint(*r))
	}
	if t.ServiceName == "" {
		t.ServiceName = DefaultTracingServiceName
	}
}
