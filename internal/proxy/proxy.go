// Package proxy is the reverse proxy shared by the gateway and the load balancer: an
// httputil.ReverseProxy driven by Rewrite (never Director, whose hop-by-hop handling lets a client
// strip headers the proxy added), a transport tuned for many short requests, X-Forwarded-* handling
// and JSON error responses that tell a timeout (504) from an unreachable backend (502).
package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// NewTransport returns a transport for proxying. When egress is non-empty, every connection is
// made from that source address, so that the private tier's allow_from can name the proxy alone.
func NewTransport(egress string) (*http.Transport, error) {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if egress != "" {
		ip := net.ParseIP(egress)
		if ip == nil {
			return nil, fmt.Errorf("egress %q is not an IP address", egress)
		}
		dialer.LocalAddr = &net.TCPAddr{IP: ip}
	}
	return &http.Transport{
		Proxy:                 nil, // an edge never follows HTTP_PROXY from its environment
		DialContext:           dialer.DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0, // bounded per request by the caller's context
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     false,
	}, nil
}

// Options configure New.
type Options struct {
	Transport http.RoundTripper
	// Rewrite sets the outbound URL and headers. The inbound hop-by-hop headers and X-Forwarded-*
	// headers have already been removed from pr.Out when it runs.
	Rewrite func(pr *httputil.ProxyRequest)
	// ModifyResponse, when set, edits the backend's response before it is copied out.
	ModifyResponse func(*http.Response) error
	// OnError is called before the error response is written, for headers such as CORS that
	// every response of the component carries.
	OnError func(w http.ResponseWriter, r *http.Request)
	Logger  *slog.Logger
	// BufferPool, when set, is shared by several proxies; New makes one per proxy otherwise.
	BufferPool httputil.BufferPool
	// Tracer, when set, makes each backend call a client span named SpanName and sends its
	// traceparent to the backend (tracing.go). Nil: no tracing, no cost.
	Tracer   trace.Tracer
	SpanName string
}

// New returns a reverse proxy with Rampart's error handling.
func New(o Options) *httputil.ReverseProxy {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pool := o.BufferPool
	if pool == nil {
		pool = NewBufferPool()
	}
	return &httputil.ReverseProxy{
		BufferPool:     pool,
		Rewrite:        guardOutbound(o.Rewrite),
		Transport:      traced(o.Transport, o.Tracer, o.SpanName),
		ModifyResponse: o.ModifyResponse,
		// Zero: no flush per write, which would split every response into extra syscalls (13 % of
		// the CPU of the benchmark chain). ReverseProxy still flushes at once for streaming
		// responses (text/event-stream, or no Content-Length), so server-sent events keep working.
		FlushInterval: 0,
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			status, msg := Classify(r, err)
			logger.Warn("upstream error", "method", r.Method, "path", r.URL.Path, "status", status, "error", err)
			if o.OnError != nil {
				o.OnError(w, r)
			}
			WriteJSONError(w, status, msg)
		},
	}
}

// Classify maps a proxy error to a status and a short message. The client's body comes first: 413
// over a limit, 408 too slow, 400 malformed; then 504 for a backend timeout and 502 for the rest.
func Classify(r *http.Request, err error) (int, string) {
	var netErr net.Error
	var tooLarge *http.MaxBytesError
	var bodyErr *ClientBodyError
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, "Request Entity Too Large"
	case errors.As(err, &bodyErr) && (errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout()):
		return http.StatusRequestTimeout, "Request Timeout: the request body did not arrive in time"
	case errors.As(err, &bodyErr):
		return http.StatusBadRequest, "Bad Request: malformed request body"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return http.StatusGatewayTimeout, "Endpoint request timed out"
	default:
		return http.StatusBadGateway, "Bad Gateway"
	}
}

// SetForwarded sets X-Forwarded-For, -Proto, -Host and -Port on the outbound request. With
// appendInbound the client's X-Forwarded-For is kept and the peer appended (a load balancer behind a
// gateway); without it the header starts afresh at the peer (the public edge must not trust it).
func SetForwarded(pr *httputil.ProxyRequest, appendInbound bool) {
	if appendInbound {
		if prior, ok := pr.In.Header["X-Forwarded-For"]; ok {
			// Not copied: SetXForwarded only reads it, and replaces (or deletes) it in pr.Out.
			pr.Out.Header["X-Forwarded-For"] = prior
		}
	}
	pr.SetXForwarded()
	port := "80"
	if pr.In.TLS != nil {
		port = "443"
	}
	switch la := pr.In.Context().Value(http.LocalAddrContextKey).(type) {
	case *net.TCPAddr:
		// The port alone: la.String() formats the IP too, to be split off again.
		if la != nil {
			port = strconv.Itoa(la.Port)
		}
	case net.Addr:
		if _, p, err := net.SplitHostPort(la.String()); err == nil {
			port = p
		}
	}
	pr.Out.Header.Set("X-Forwarded-Port", port)
}

// WriteJSONError writes {"message": msg} with status, the body shape AWS API Gateway uses.
func WriteJSONError(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(status)
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{msg})
	_, _ = w.Write(append(body, '\n'))
}

// bufferPool recycles the buffers ReverseProxy copies bodies through. Without it every request
// allocates 32 KB, three quarters of all allocation in the benchmark chain. It holds array
// pointers, which a slice converts back to without allocating (a *[]byte cost one per Put).
type bufferPool struct{ p sync.Pool }

const copyBufferSize = 32 << 10

// NewBufferPool returns a pool of 32 KB copy buffers for httputil.ReverseProxy.
func NewBufferPool() httputil.BufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}
}

func (b *bufferPool) Get() []byte { return b.p.Get().(*[copyBufferSize]byte)[:] }

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == copyBufferSize {
		b.p.Put((*[copyBufferSize]byte)(buf[:copyBufferSize]))
	}
}

// guardOutbound wraps rewrite with what every outbound request needs whatever the component:
//
//   - A client's "Upgrade: h2c" never reaches the backend. ReverseProxy forwards protocol upgrades
//     (WebSocket needs that), but an h2c upgrade through a proxy turns the connection into an
//     HTTP/2 tunnel to the backend that bypasses every rule of the edge (h2c smuggling). The
//     request itself is forwarded as plain HTTP/1.1.
//   - Underscore spellings of the forwarding headers (X_Forwarded_For, …) are dropped: CGI, WSGI,
//     PHP and Rack backends read them as the real header, which the proxy sets itself.
//   - Errors reading the client's body are marked, so that a malformed chunked body is answered
//     400 (the client's fault), not 502 (the backend's).
func guardOutbound(rewrite func(*httputil.ProxyRequest)) func(*httputil.ProxyRequest) {
	return func(pr *httputil.ProxyRequest) {
		if upgradesToH2C(pr.Out.Header) {
			pr.Out.Header.Del("Upgrade")
			pr.Out.Header.Del("Connection")
			pr.Out.Header.Del("Http2-Settings")
		}
		dropUnderscoreForwarded(pr.Out.Header)
		if pr.Out.Body != nil && pr.Out.Body != http.NoBody {
			pr.Out.Body = clientBody{pr.Out.Body}
		}
		if rewrite != nil {
			rewrite(pr)
		}
	}
}

// ClientBodyError is an error reading the request body from the client.
type ClientBodyError struct{ Err error }

func (e *ClientBodyError) Error() string {
	return "reading the client's request body: " + e.Err.Error()
}
func (e *ClientBodyError) Unwrap() error { return e.Err }

type clientBody struct{ io.ReadCloser }

func (b clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = &ClientBodyError{Err: err}
	}
	return n, err
}

func dropUnderscoreForwarded(h http.Header) {
	// The headers the proxy sets itself.
	forwardingHeaders := [...]string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port", "Forwarded", "X-Real-Ip"}
	for name := range h {
		if !strings.Contains(name, "_") {
			continue
		}
		dashed := strings.ReplaceAll(name, "_", "-")
		for _, f := range forwardingHeaders {
			if strings.EqualFold(dashed, f) {
				delete(h, name)
				break
			}
		}
	}
}

// upgradesToH2C reports whether any protocol the Upgrade header lists is h2c ("websocket, h2c"
// counts: the backend chooses which one it switches to).
func upgradesToH2C(h http.Header) bool {
	for _, v := range h.Values("Upgrade") {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "h2c") {
				return true
			}
		}
	}
	return false
}
