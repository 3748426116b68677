package lb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-edge/rampart/internal/desync"
)

// listener is one listener: its handler pipeline behind the desync guard of its connections.
type listener struct {
	lb            *LoadBalancer
	listen        string
	handler       http.Handler // the pipeline (newListener)
	guarded       http.Handler // handler behind guard.Handler
	guard         *desync.Guard
	xff           string
	secretHeaders []string
	dropInvalid   bool
}

func (l *listener) ServeHTTP(w http.ResponseWriter, r *http.Request) { l.guarded.ServeHTTP(w, r) }

// serve is the handler the guard calls. The request's access record carries the listener.
func (l *listener) serve(w http.ResponseWriter, r *http.Request) {
	ctx := &recordContext{Context: r.Context()}
	ctx.rec.listener = l
	l.handler.ServeHTTP(w, r.WithContext(ctx))
}

// recordContext is the request's context with its access record: one allocation for both, where
// context.WithValue cost a second one per request.
type recordContext struct {
	context.Context
	rec accessRecord
}

func (c *recordContext) Value(key any) any {
	if _, ok := key.(accessKey); ok {
		return &c.rec
	}
	return c.Context.Value(key)
}

// WrapListener returns ln with every accepted connection guarded by the listener's desync guard
// (desync.Guard.Wrap): request heads are classified before net/http reads them, blocked requests
// are answered there, and a connection with no request in flight is closed after the idle
// timeout. It makes the handler a desync.ListenerWrapper, which the topology applies.
func (l *listener) WrapListener(ln net.Listener) net.Listener { return l.guard.Wrap(ln) }

// traceHeader carries the request's trace id, as X-Amzn-Trace-Id does on AWS: Root=1-<time>-<id>
// is set when absent, and an existing Root is kept while Self is set to this hop's id.
const traceHeader = "X-Rampart-Trace-Id"

// maxTraceLen bounds a client-supplied trace header; a longer one is replaced.
const maxTraceLen = 512

// appendTraceID appends a new trace id, 1-<unix time, 8 hex digits>-<24 random hex digits>, to
// dst. Built in one buffer: fmt.Sprintf, hex.EncodeToString and a concatenation cost four
// allocations per request.
func appendTraceID(dst []byte, now time.Time) []byte {
	var b [12]byte
	_, _ = rand.Read(b[:])
	dst = append(dst, "1-"...)
	if u := now.Unix(); u >= 0 {
		var digits [16]byte
		h := strconv.AppendUint(digits[:0], uint64(u), 16)
		for i := len(h); i < 8; i++ {
			dst = append(dst, '0')
		}
		dst = append(dst, h...)
	} else {
		dst = fmt.Appendf(dst, "%08x", u)
	}
	dst = append(dst, '-')
	return hex.AppendEncode(dst, b[:])
}

func newTraceID(now time.Time) string {
	var buf [48]byte
	return string(appendTraceID(buf[:0], now))
}

// traceValue returns the trace header to forward given the inbound one.
func traceValue(in string, now time.Time) string {
	if in == "" || len(in) > maxTraceLen || !strings.Contains(in, "Root=") {
		var buf [48]byte
		return string(appendTraceID(append(buf[:0], "Root="...), now))
	}
	id := newTraceID(now)
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
// header. (The desync verdict is applied by the guard's handler, before this stage.)
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
		next.ServeHTTP(w, r)
	})
}
