package lb

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// accessKey is the context key of a request's *accessRecord.
type accessKey struct{}

// accessRecord collects what inner handlers learn about a request for its access log line.
type accessRecord struct {
	target  string
	reason  string // error_reason of a response the load balancer wrote itself
	trace   string
	retries int
}

// accessLog returns a middleware that writes one log line per request once it is answered: the
// listener, method, path (never the query, which may carry tokens), status, size, duration,
// source IP, the X-Request-Id the gateway set, and the target that served it.
func (lb *LoadBalancer) accessLog(listen string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := &accessRecord{}
			sw := &statusWriter{ResponseWriter: w}
			// Deferred so that a request aborted mid-body (the proxy panics with
			// http.ErrAbortHandler) is logged too.
			defer func() {
				status := sw.status
				if status == 0 {
					status = http.StatusOK
				}
				source, _, err := net.SplitHostPort(r.RemoteAddr)
				if err != nil {
					source = r.RemoteAddr
				}
				attrs := []slog.Attr{
					slog.String("listener", listen),
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.Int("status", status),
					slog.Int64("bytes", sw.bytes),
					slog.Duration("duration", time.Since(start)),
					slog.String("source_ip", source),
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
				if v, ok := r.Context().Value(verdictKey{}).(*verdict); ok && v.class != classCompliant {
					attrs = append(attrs, slog.String("classification", v.class.String()), slog.String("classification_reason", v.reason))
				}
				lb.logger.LogAttrs(r.Context(), slog.LevelInfo, "access", attrs...)
			}()
			next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), accessKey{}, rec)))
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
