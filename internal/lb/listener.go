package lb

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// listener is one listener: its handler pipeline and the connections its guard wraps.
type listener struct {
	lb            *LoadBalancer
	listen        string
	handler       http.Handler
	tls           bool
	xff           string
	secretHeaders []string
	dropInvalid   bool
	desync        string
	idle          time.Duration

	conns sync.Map // remote address → *guardConn, for connections accepted through WrapListener
}

type listenerKey struct{}

func (l *listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := context.WithValue(r.Context(), listenerKey{}, l)
	if c, ok := l.conns.Load(r.RemoteAddr); ok && r.ProtoMajor == 1 {
		gc := c.(*guardConn)
		v := gc.begin(r)
		defer gc.end(v)
		if v != nil {
			ctx = context.WithValue(ctx, verdictKey{}, v)
			if v.upgrade {
				w = &upgradeWriter{ResponseWriter: w, gc: gc, v: v}
			}
		}
	}
	l.handler.ServeHTTP(w, r.WithContext(ctx))
}

// upgradeWriter tells the guard when the handler of an upgrade request hijacks the connection
// (httputil.ReverseProxy does so to relay a 101). Unwrap lets http.ResponseController find it
// and everything else of the underlying writer.
type upgradeWriter struct {
	http.ResponseWriter
	gc *guardConn
	v  *verdict
}

func (w *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.gc.hijacked(w.v)
	}
	return conn, brw, err
}

func (w *upgradeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// traceHeader carries the request's trace id, as X-Amzn-Trace-Id does on AWS: Root=1-<time>-<id>
// is set when absent, and an existing Root is kept while Self is set to this hop's id.
const traceHeader = "X-Rampart-Trace-Id"

// maxTraceLen bounds a client-supplied trace header; a longer one is replaced.
const maxTraceLen = 512

func newTraceID(now time.Time) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("1-%08x-%s", now.Unix(), hex.EncodeToString(b[:]))
}

// traceValue returns the trace header to forward given the inbound one.
func traceValue(in string, now time.Time) string {
	id := newTraceID(now)
	if in == "" || len(in) > maxTraceLen || !strings.Contains(in, "Root=") {
		return "Root=" + id
	}
	var kept []string
	for _, f := range strings.Split(in, ";") {
		f = strings.TrimSpace(f)
		if f == "" || strings.HasPrefix(f, "Self=") {
			continue
		}
		kept = append(kept, f)
	}
	return "Self=" + id + ";" + strings.Join(kept, ";")
}

// validHeaderName is ALB's rule for drop_invalid_header_fields: letters, digits and hyphens.
// net/http already refuses names that are not HTTP tokens; this also drops tokens such as
// X_Forwarded_For, which some servers and CGI gateways read as X-Forwarded-For.
func validHeaderName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return name != ""
}

// requestHeaders is the header stage of the pipeline: drop invalid header fields, set the trace
// header, and apply the desync verdict (an ambiguous request in defensive mode is served, then
// both the client and the target connection are closed).
func (l *listener) requestHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if l.dropInvalid {
			for name := range r.Header {
				if !validHeaderName(name) {
					delete(r.Header, name)
				}
			}
		}
		tv := traceValue(r.Header.Get(traceHeader), l.lb.now())
		r.Header.Set(traceHeader, tv)
		if rec, ok := r.Context().Value(accessKey{}).(*accessRecord); ok {
			rec.trace = tv
		}
		if v, ok := r.Context().Value(verdictKey{}).(*verdict); ok && v.closeConns {
			w.Header().Set("Connection", "close")
			// Served as a plain request: a protocol switch would turn the connection into a
			// tunnel that outlives the close the verdict asks for.
			r.Header.Del("Upgrade")
		}
		next.ServeHTTP(w, r)
	})
}
