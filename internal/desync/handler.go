package desync

import (
	"bufio"
	"context"
	"net"
	"net/http"
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
		v.ctx = verdictContext{Context: r.Context(), v: v}
		r = r.WithContext(&v.ctx)
		if v.CloseConns {
			w.Header().Set("Connection", "close")
			r.Header.Del("Upgrade")
		}
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
