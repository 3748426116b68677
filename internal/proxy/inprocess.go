package proxy

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/rampart-edge/rampart/internal/desync"
)

// LocalHandlers are the plain-HTTP listeners this process serves itself, by the address a client
// dials. When `rampart run` puts a gateway and the load balancer it calls in one process, the
// gateway's integration reaches the load balancer's handler through InProcess instead of a
// loopback connection: the same pipeline (WAF, origin verification, rules, access log) sees the
// same request, without a second HTTP server and client in the path (docs/performance.md), much
// as an Envoy internal listener does.
type LocalHandlers struct {
	// MaxHeaderBytes is the listeners' http.Server.MaxHeaderBytes (http.DefaultMaxHeaderBytes
	// when zero): a request whose head is over it, as a client would write it, gets the 431 the
	// listener's server would answer, and never reaches the handler.
	MaxHeaderBytes int

	byAddr map[string]localHandler
}

type localHandler struct {
	handler http.Handler
	local   *net.TCPAddr // what LocalAddrContextKey holds, as on a real connection
	remote  string       // the RemoteAddr the handler sees (see Add)
}

// Add registers h as served on listen (a listener address as written in the config: "host:port",
// ":port", "0.0.0.0:port"); port 0 registers nothing. A listener on every address is reached in-process through the
// loopback names, since those are the ones this process knows to be its own.
func (l *LocalHandlers) Add(listen string, h http.Handler) error {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("in-process listener %q: %w", listen, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("in-process listener %q: port %q is not a port number", listen, port)
	}
	if p == 0 {
		return nil // a port the kernel picks is no address a gateway's config could name
	}
	if l.byAddr == nil {
		l.byAddr = map[string]localHandler{}
	}
	add := func(name string, ip netip.Addr) {
		// A loopback connection leaves from the loopback address (127.0.0.1 for all of
		// 127.0.0.0/8, as Linux chooses it); port 0, which no TCP peer has, marks the hop as
		// in-process in logs and keeps it apart from every real connection.
		src := ip
		if ip.Is4() && ip.IsLoopback() {
			src = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
		l.byAddr[net.JoinHostPort(name, port)] = localHandler{
			handler: h,
			local:   &net.TCPAddr{IP: ip.AsSlice(), Port: int(p)},
			remote:  netip.AddrPortFrom(src, 0).String(),
		}
	}
	switch ip, err := netip.ParseAddr(host); {
	case host == "" || err == nil && ip.IsUnspecified():
		add("127.0.0.1", netip.AddrFrom4([4]byte{127, 0, 0, 1}))
		add("localhost", netip.AddrFrom4([4]byte{127, 0, 0, 1}))
		if host == "" || ip.Is6() {
			add("::1", netip.IPv6Loopback())
		}
	case err == nil:
		add(ip.Unmap().String(), ip.Unmap())
	case strings.EqualFold(host, "localhost"):
		add("localhost", netip.AddrFrom4([4]byte{127, 0, 0, 1}))
		add("127.0.0.1", netip.AddrFrom4([4]byte{127, 0, 0, 1}))
	default:
		// A name other than localhost may resolve elsewhere: the network decides.
	}
	return nil
}

// Transport returns the transport for calls to target: an in-process one when target is a plain
// HTTP URL of a registered listener, next otherwise. next also carries the requests InProcess
// cannot serve (protocol upgrades, request trailers).
func (l *LocalHandlers) Transport(target *url.URL, next http.RoundTripper, logger *slog.Logger) http.RoundTripper {
	if l == nil || target.Scheme != "http" {
		return next
	}
	host := strings.ToLower(target.Hostname())
	port := target.Port()
	if port == "" {
		port = "80"
	}
	lh, ok := l.byAddr[net.JoinHostPort(host, port)]
	if !ok {
		return next
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ip := &InProcess{Handler: lh.handler, Local: lh.local, RemoteAddr: lh.remote, Next: next, Logger: logger, MaxHeaderBytes: l.MaxHeaderBytes}
	ip.base = ip.baseContext()
	// The transport it stands in for asks for gzip and undoes it, unless told not to; a
	// transport of another kind is not known to.
	if tr, ok := next.(*http.Transport); ok {
		ip.DisableCompression = tr.DisableCompression
	} else {
		ip.DisableCompression = true
	}
	return ip
}

// Len is the number of addresses registered.
func (l *LocalHandlers) Len() int {
	if l == nil {
		return 0
	}
	return len(l.byAddr)
}

// InProcess is an http.RoundTripper that serves each request with Handler, in this process, as
// the handler would have seen it arriving on an HTTP/1.1 connection to Local: the request line,
// Host, Content-Length and header values are what a client would have written and a server
// parsed. The response is what a client would have read: net/http's server buffering is
// mimicked (a response that ends within 2 KB gets its Content-Length), longer or flushed ones
// stream through a pipe while the handler still runs. Requests InProcess cannot serve without a
// connection (Upgrade, request trailers) go to Next.
type InProcess struct {
	Handler    http.Handler
	Local      net.Addr // LocalAddrContextKey of the handler's requests
	RemoteAddr string   // the handler's Request.RemoteAddr
	Next       http.RoundTripper
	Logger     *slog.Logger
	// MaxHeaderBytes is the listener's http.Server.MaxHeaderBytes (http.DefaultMaxHeaderBytes
	// when zero): a head over it gets the server's 431 instead of reaching Handler.
	MaxHeaderBytes int
	// DisableCompression is http.Transport's: unless set, a request that does not say which
	// encodings it accepts asks for gzip, and a gzip response is decompressed, as the network
	// transport does it (so the handler sees Accept-Encoding: gzip, which its WAF inspects too).
	DisableCompression bool

	base context.Context // baseContext, made once by LocalHandlers.Transport
}

// baseContext is what every request's context starts from: what a server's connection context
// holds (LocalAddrContextKey), and the mark of a request handed over in-process, which makes the
// handler's desync guard classify it (desync.InProcessContext).
func (t *InProcess) baseContext() context.Context {
	return context.WithValue(desync.InProcessContext(context.Background()), http.LocalAddrContextKey, t.Local)
}

// errHandlerPanicked is the error of a response cut because the handler panicked.
var errHandlerPanicked = errors.New("in-process handler panicked")

// RoundTrip implements http.RoundTripper.
func (t *InProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" || len(req.Trailer) > 0 || httpguts.HeaderValuesContainsToken(req.Header["Connection"], "upgrade") {
		return t.Next.RoundTrip(req)
	}
	// The handler's context is a server's: done when the caller's is (the connection would have
	// closed) or the handler returns, but without the caller's deadline (the server would see a
	// cancellation, not a timeout) nor its values (the caller's desync verdict, server, spans,
	// which the handler would otherwise take for its own).
	base := t.base
	if base == nil {
		base = t.baseContext()
	}
	ctx, cancel := context.WithCancel(base)
	in, err := t.serverRequest(ctx, req)
	if err != nil {
		cancel()
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	addedGzip := !t.DisableCompression && req.Header.Get("Accept-Encoding") == "" && req.Header.Get("Range") == "" && req.Method != http.MethodHead
	if addedGzip {
		in.Header["Accept-Encoding"] = []string{"gzip"}
	}
	if headBytes(in) > t.maxHeaderBytes()+4096 { // net/http's server reads up to that much
		cancel()
		_ = in.Body.Close()
		return headerTooLarge(req), nil
	}
	ex := &exchange{out: req, in: in, cancelCtx: cancel, header: http.Header{}, head: make(chan struct{}), logger: t.Logger}
	// The caller going away is a connection closing: the handler's context ends, its reads of the
	// request body and writes of the response fail (exchange.abort).
	ex.stopAbort = context.AfterFunc(req.Context(), ex.abort)
	if in.Body != http.NoBody {
		in.Body = &watchedBody{ReadCloser: in.Body, ex: ex}
	}
	ex.bodyAllowed = true
	ex.isHead = in.Method == http.MethodHead
	ex.trace = httptrace.ContextClientTrace(req.Context())
	handler := t.Handler
	if in.RequestURI == "*" && in.Method == http.MethodOptions {
		handler = globalOptions // net/http's server answers OPTIONS * itself
	}
	go ex.serve(handler)
	select {
	case <-ex.head:
		if ex.err != nil {
			return nil, ex.err
		}
		res := ex.res
		if addedGzip && res.ContentLength != 0 && strings.EqualFold(res.Header.Get("Content-Encoding"), "gzip") {
			res.Body = &gunzipBody{body: res.Body}
			res.Header.Del("Content-Encoding")
			res.Header.Del("Content-Length")
			res.ContentLength = -1
			res.Uncompressed = true
		}
		return res, nil
	case <-req.Context().Done():
		// ctx's AfterFunc may not have started yet, and release would stop it: abort here. The
		// handler sees its context done; once it answers, its response has nobody to read it.
		ex.release()
		first := ex.markAborted()
		// A 1xx being relayed ends first, and none starts after this: the caller writes its
		// own error response next.
		ex.relaying.Lock()
		ex.relaying.Unlock()
		go func() {
			if first {
				ex.finishAbort()
			}
			<-ex.head
			if ex.res != nil {
				_ = ex.res.Body.Close()
			}
		}()
		return nil, req.Context().Err()
	}
}

// globalOptions is net/http's server's answer to "OPTIONS *" (globalOptionsHandler): an empty 200,
// after draining a small body.
var globalOptions = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "0")
	if r.ContentLength != 0 {
		_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 4<<10))
	}
})

func (t *InProcess) maxHeaderBytes() int {
	if t.MaxHeaderBytes > 0 {
		return t.MaxHeaderBytes
	}
	return http.DefaultMaxHeaderBytes
}

// headBytes is the size of in's request line and header as net/http's client writes them.
func headBytes(in *http.Request) int {
	n := len(in.Method) + 1 + len(in.RequestURI) + len(" HTTP/1.1\r\n") + len("Host: \r\n") + len(in.Host)
	for k, vs := range in.Header {
		for _, v := range vs {
			n += len(k) + len(": \r\n") + len(v)
		}
	}
	if len(in.TransferEncoding) > 0 {
		n += len("Transfer-Encoding: chunked\r\n")
	}
	return n + len("\r\n")
}

// wireHeader is h as net/http's server writes a response header and its client reads it back:
// names that are not tokens are dropped, CR and LF in values become spaces and values are
// trimmed, and keys are canonical (keys that differ in case only are merged, in the sorted order
// the server writes them). It returns h itself when none of that changes anything, as usual.
func wireHeader(h http.Header) http.Header {
	wire := func(v string) bool {
		return !strings.ContainsAny(v, "\r\n") && (v == "" || v[0] != ' ' && v[0] != '\t' && v[len(v)-1] != ' ' && v[len(v)-1] != '\t')
	}
	clean := true
	for k, vs := range h {
		if !httpguts.ValidHeaderFieldName(k) || textproto.CanonicalMIMEHeaderKey(k) != k || !allFunc(vs, wire) {
			clean = false
			break
		}
	}
	if clean {
		return h
	}
	newlines := strings.NewReplacer("\r", " ", "\n", " ")
	out := make(http.Header, len(h))
	for _, k := range slices.Sorted(maps.Keys(h)) {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		ck := textproto.CanonicalMIMEHeaderKey(k)
		for _, v := range h[k] {
			v = newlines.Replace(v)
			out[ck] = append(out[ck], strings.Trim(v, " \t"))
		}
	}
	return out
}

func allFunc(vs []string, f func(string) bool) bool {
	for _, v := range vs {
		if !f(v) {
			return false
		}
	}
	return true
}

// gunzipBody decompresses a gzip response that InProcess asked for, as http.Transport's
// gzipReader does: the gzip header is read on the first Read.
type gunzipBody struct {
	body io.ReadCloser
	zr   *gzip.Reader
	err  error
}

func (g *gunzipBody) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if g.zr == nil {
		if g.zr, g.err = gzip.NewReader(g.body); g.err != nil {
			return 0, g.err
		}
	}
	return g.zr.Read(p)
}

func (g *gunzipBody) Close() error { return g.body.Close() }

// headerTooLarge is the response net/http's server writes for a head over its MaxHeaderBytes, as
// its client reads it.
func headerTooLarge(req *http.Request) *http.Response {
	const msg = "431 Request Header Fields Too Large"
	return &http.Response{
		Status: msg, StatusCode: http.StatusRequestHeaderFieldsTooLarge,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
		ContentLength: -1, Close: true, Request: req,
		Body: io.NopCloser(strings.NewReader(msg)),
	}
}
