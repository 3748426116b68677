package desync

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

type verdictKey struct{}

// verdictContext is a request's context carrying its verdict (FromContext).
type verdictContext struct {
	context.Context
	v *Verdict
}

func (c *verdictContext) Value(key any) any {
	if _, ok := key.(verdictKey); ok {
		return c.v
	}
	return c.Context.Value(key)
}

// FromContext returns the verdict of the request whose context ctx is, or nil when the request
// did not come through a guarded connection (HTTP/2, a listener not wrapped by the guard).
func FromContext(ctx context.Context) *Verdict {
	v, _ := ctx.Value(verdictKey{}).(*Verdict)
	return v
}

// Handler returns next behind the guard: each request served on a connection that Wrap accepted
// gets its verdict in its context (FromContext), an ambiguous request in defensive mode is
// answered with Connection: close and without its Upgrade header (a tunnel would outlive the
// close), and a guarded TLS connection's request gets its Request.TLS back. Requests from other
// connections pass through untouched.
func (g *Guard) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		found, ok := g.conns.Load(r.RemoteAddr)
		if !ok && inProcess(r.Context()) {
			g.serveInProcess(w, r, next)
			return
		}
		if !ok || r.ProtoMajor != 1 {
			next.ServeHTTP(w, r)
			return
		}
		gc := found.(*conn)
		if gc.tls != nil && r.TLS == nil {
			r = r.WithContext(r.Context()) // a shallow copy: the server's request is not ours to change
			r.TLS = gc.tls
		}
		v := gc.begin(r)
		defer gc.end(v)
		if v == nil {
			next.ServeHTTP(w, r)
			return
		}
		r = v.attach(w, r)
		if v.upgrade {
			w = &upgradeWriter{ResponseWriter: w, gc: gc, v: v}
		}
		next.ServeHTTP(w, r)
	})
}

// upgradeWriter tells the guard when the handler of an upgrade request hijacks the connection
// (httputil.ReverseProxy does so to relay a 101). Unwrap lets http.ResponseController find it
// and everything else of the underlying writer.
type upgradeWriter struct {
	http.ResponseWriter
	gc *conn
	v  *Verdict
}

func (w *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.gc.hijacked(w.v)
	}
	return conn, brw, err
}

func (w *upgradeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type inProcessKey struct{}

// InProcessContext marks ctx as the context of a request that a client of this process hands to
// a guarded handler without a connection (proxy.InProcess): Guard.Handler then classifies the head
// that net/http's client would have written for it on a connection, and applies its mode to that
// verdict, so that the handler sees in-process what it would have seen over the network.
func InProcessContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, inProcessKey{}, true)
}

func inProcess(ctx context.Context) bool {
	v, _ := ctx.Value(inProcessKey{}).(bool)
	return v
}

// serveInProcess is Guard.Handler for a request handed over in-process.
func (g *Guard) serveInProcess(w http.ResponseWriter, r *http.Request, next http.Handler) {
	v := classifyForwarded(r)
	v.apply(g.mode())
	if v.Block {
		g.logBlocked(r.Context(), v, r.RemoteAddr, ReasonDesync)
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Length", strconv.Itoa(len(blockedBody)))
		h.Set("Connection", "close")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, blockedBody)
		return
	}
	next.ServeHTTP(w, v.attach(w, r))
}

// attach gives r's handler its verdict (FromContext) and, for an ambiguous request in defensive
// mode, answers with Connection: close and without the Upgrade header (a tunnel would outlive the
// close).
func (v *Verdict) attach(w http.ResponseWriter, r *http.Request) *http.Request {
	v.ctx = verdictContext{Context: r.Context(), v: v}
	r = r.WithContext(&v.ctx)
	if v.CloseConns {
		w.Header().Set("Connection", "close")
		r.Header.Del("Upgrade")
	}
	return r
}

// classifyForwarded classifies the head net/http's client writes for r, a request as a server
// parsed it: its request line, Host and header lines are compliant by construction (the client
// validates them), so only header names that normalize to a framing header and the framing of a
// GET or HEAD can make it less than Compliant, as Classify would find on the connection.
func classifyForwarded(r *http.Request) *Verdict {
	v := &Verdict{Reason: "Compliant", Method: r.Method}
	v.Path, _, _ = strings.Cut(r.RequestURI, "?")
	for name := range r.Header {
		if suspiciousName(name) {
			v.raise(Ambiguous, "SuspiciousHeader")
		}
	}
	var cls, tes []string
	if len(r.TransferEncoding) > 0 {
		tes = []string{strings.Join(r.TransferEncoding, ", ")}
	} else if cl := r.Header.Values("Content-Length"); len(cl) > 0 {
		cls = cl
	}
	classifyFraming(v, cls, tes, r.Proto)
	return v
}
