package lb

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/rampart-edge/rampart/internal/desync"
	"github.com/rampart-edge/rampart/internal/observe"
)

// accessKey is the context key of a request's *accessRecord.
type accessKey struct{}

// accessRecord collects what inner handlers learn about a request for its access log line. It is
// also the request's one per-request allocation of the load balancer: listener.serve puts it in
// the context once, with the listener, and the access log's writer and the current attempt live
// in it (each of them a separate allocation and context value before).
type accessRecord struct {
	listener *listener
	sw       statusWriter // the access log's writer
	attempt  attempt      // the current try (serveGroup)

	target  string
	reason  string // error_reason of a response the load balancer wrote itself
	trace   string
	retries int
	// requests are the counters of the rule that took the request (metrics.go); nil before one.
	requests *observe.RouteRequests
}

// accessLog returns a middleware that writes one log line per request once it is answered: the
// listener, method, path (never the query, which may carry tokens), status, size, duration,
// source IP, the X-Request-Id the gateway set, and the target that served it.
func (lb *LoadBalancer) accessLog(listen string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec, ok := r.Context().Value(accessKey{}).(*accessRecord)
			if !ok {
				rec = &accessRecord{}
				r = r.WithContext(context.WithValue(r.Context(), accessKey{}, rec))
			}
			rec.sw = statusWriter{ResponseWriter: w}
			sw := &rec.sw
			// Deferred so that a request aborted mid-body (the proxy panics with
			// http.ErrAbortHandler) is logged too.
			defer func() {
				status := sw.status
				if status == 0 {
					status = http.StatusOK
				}
				elapsed := time.Since(start)                   // once: reading the clock is not free
				lb.obs.request(r.Method, status, rec, elapsed) // metrics.go
				if !lb.logger.Enabled(r.Context(), slog.LevelInfo) {
					return // nothing below may allocate for a line nobody reads
				}
				source, port, err := net.SplitHostPort(r.RemoteAddr)
				if err != nil {
					source, port = r.RemoteAddr, ""
				}
				attrs := []slog.Attr{
					slog.String("listener", listen),
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.Int("status", status),
					slog.Int64("bytes", sw.bytes),
					slog.Duration("duration", elapsed),
					slog.String("source_ip", source),
					// As ALB logs client:port; port 0 is a gateway of this process calling
					// in-process (proxy.InProcess), which no TCP peer can have.
					slog.String("source_port", port),
					slog.String("request_id", clip(r.Header.Get("X-Request-Id"), maxRequestIDLen)),
					slog.String("target", rec.target),
				}
				if rec.reason != "" {
					attrs = append(attrs, slog.String("error_reason", rec.reason))
				}
				if rec.retries > 0 {
					attrs = append(attrs, slog.Int("retries", rec.retries))
				}
				if rec.trace != "" {
					attrs = append(attrs, slog.String("trace_id", clip(rec.trace, maxTraceLen)))
				}
				if id := lb.obs.traceID(r); id != "" {
					attrs = append(attrs, slog.String("otel_trace_id", id))
				}
				if v := desync.FromContext(r.Context()); v != nil && v.Class != desync.Compliant {
					attrs = append(attrs, slog.String("classification", v.Class.String()), slog.String("classification_reason", v.Reason))
				}
				lb.logger.LogAttrs(r.Context(), slog.LevelInfo, "access", attrs...)
			}()
			next.ServeHTTP(sw, r)
		})
	}
}

// statusWriter records the final status and the body size. Unwrap lets http.ResponseController
// (used by the proxy to flush) reach the underlying writer.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 { // 1xx responses are informational, not the answer
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// maxRequestIDLen bounds the client-controlled request id in a log line: the gateway's ids are 26
// characters, and a direct caller must not be able to write 64 KB into every line.
const maxRequestIDLen = 128

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
