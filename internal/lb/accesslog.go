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
	target string
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
				lb.logger.LogAttrs(r.Context(), slog.LevelInfo, "access",
					slog.String("listener", listen),
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.Int("status", status),
					slog.Int64("bytes", sw.bytes),
					slog.Duration("duration", time.Since(start)),
					slog.String("source_ip", source),
					slog.String("request_id", r.Header.Get("X-Request-Id")),
					slog.String("target", rec.target),
				)
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
