package proxy

import (
	"bytes"
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
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	stop := context.AfterFunc(req.Context(), cancel)
	release := func() {
		stop()
		cancel()
	}
	in, err := t.serverRequest(ctx, req)
	if err != nil {
		release()
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
		release()
		_ = in.Body.Close()
		return headerTooLarge(req), nil
	}
	ex := &exchange{out: req, in: in, cancel: release, header: http.Header{}, head: make(chan struct{}), logger: t.Logger}
	if in.Body != http.NoBody {
		in.Body = &watchedBody{ReadCloser: in.Body, ex: ex}
	}
	ex.bodyAllowed = true
	ex.isHead = in.Method == http.MethodHead
	ex.trace = httptrace.ContextClientTrace(req.Context())
	go ex.serve(t.Handler)
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
		release()
		// The handler sees its context done; once it answers, its response has nobody to read it.
		go func() {
			<-ex.head
			if ex.res != nil {
				_ = ex.res.Body.Close()
			}
		}()
		return nil, req.Context().Err()
	}
}

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

// serverRequest is req as net/http's server would have parsed it from what net/http's client
// writes: the request-URI form of the URL, Host out of the header map, the client's own
// Content-Length, User-Agent and Transfer-Encoding lines, header values validated and trimmed.
func (t *InProcess) serverRequest(ctx context.Context, req *http.Request) (*http.Request, error) {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return nil, fmt.Errorf("in-process request: invalid Host %q", host)
	}
	ruri := req.URL.RequestURI()
	u, err := url.ParseRequestURI(ruri)
	if err != nil {
		return nil, fmt.Errorf("in-process request: %w", err)
	}
	h := make(http.Header, len(req.Header)+1)
	var odd []string // keys that are not canonical: net/http's server merges them
	for k, vs := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, fmt.Errorf("in-process request: invalid header field name %q", k)
		}
		if ck := textproto.CanonicalMIMEHeaderKey(k); ck != k {
			switch ck {
			case "Host", "Content-Length", "Transfer-Encoding", "Trailer", "User-Agent":
				// The client would write it besides its own line: a second Host or framing
				// header, which the server refuses or takes for another length.
				return nil, fmt.Errorf("in-process request: header %q would repeat one the client writes", k)
			}
			odd = append(odd, k)
			continue
		}
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue // written by the client from the request's fields
		case "User-Agent":
			if len(vs) == 0 || vs[0] == "" {
				continue // an empty User-Agent is how a proxy says "send none"
			}
			vs = vs[:1]
		}
		cp, err := headerValues(k, vs)
		if err != nil {
			return nil, err
		}
		h[k] = cp
	}
	if len(odd) > 0 {
		// The client writes the keys in sorted order, and the server appends the values of each
		// line to its canonical key: the merged values come in the order of the sorted keys.
		for _, k := range odd {
			if _, ok := req.Header[textproto.CanonicalMIMEHeaderKey(k)]; ok {
				odd = append(odd, textproto.CanonicalMIMEHeaderKey(k))
			}
		}
		slices.Sort(odd)
		odd = slices.Compact(odd)
		merged := map[string]bool{}
		for _, k := range odd {
			ck := textproto.CanonicalMIMEHeaderKey(k)
			if !merged[ck] {
				merged[ck] = true
				delete(h, ck)
			}
			cp, err := headerValues(k, req.Header[k])
			if err != nil {
				return nil, err
			}
			h[ck] = append(h[ck], cp...)
		}
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		h["User-Agent"] = []string{"Go-http-client/1.1"}
	}
	in := &http.Request{
		Method: req.Method, URL: u, RequestURI: ruri, Host: host, Header: h,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		RemoteAddr: t.RemoteAddr,
	}
	switch body := req.Body; {
	case body == nil || body == http.NoBody:
		in.Body = http.NoBody
		if req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch {
			h["Content-Length"] = []string{"0"}
		}
	case req.ContentLength > 0:
		in.ContentLength = req.ContentLength
		in.Body = &exactBody{rc: body, left: req.ContentLength}
		h["Content-Length"] = []string{strconv.FormatInt(req.ContentLength, 10)}
	case usuallyBodyless(req.Method) && probeEmpty(&body):
		// net/http's client does not send a body that ends at once on such a method.
		in.Body = &closeOnce{rc: body}
	default: // a body of unknown length: chunked on the wire
		in.ContentLength = -1
		in.TransferEncoding = []string{"chunked"}
		in.Body = body
		if req.Method == http.MethodConnect {
			return nil, errors.New("in-process request: CONNECT with a body of unknown length")
		}
	}
	return in.WithContext(ctx), nil
}

// usuallyBodyless are the methods whose body of unknown length net/http's client probes
// (requestMethodUsuallyLacksBody): a GET is only sent chunked when its body has a first byte.
func usuallyBodyless(method string) bool {
	switch method {
	case "GET", "HEAD", "DELETE", "OPTIONS", "PROPFIND", "SEARCH":
		return true
	}
	return false
}

// probeTimeout is how long net/http's client waits for a probed body's first byte before it
// sends the request chunked anyway.
const probeTimeout = 200 * time.Millisecond

// probeEmpty reads the first byte of *body, as net/http's client probes it: true when the body
// ends at once. Otherwise *body becomes a reader that starts with what the probe read; when the
// probe is still waiting after probeTimeout, that reader waits for it.
func probeEmpty(body *io.ReadCloser) bool {
	p := &probedBody{rc: *body, done: make(chan struct{})}
	go p.probe()
	timer := time.NewTimer(probeTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		if p.n == 0 && p.err == io.EOF {
			return true
		}
	case <-timer.C:
	}
	*body = p
	return false
}

// probedBody is a body whose first byte was read ahead by probe. It owns the body: the probe's
// goroutine, which ends when its one read does, closes it when Close came first.
type probedBody struct {
	rc   io.ReadCloser
	done chan struct{} // closed when the probe's read has returned
	b    byte
	n    int
	err  error
	used bool // the probe's result has been read

	mu     sync.Mutex
	closed bool
	probed bool
}

func (p *probedBody) probe() {
	var b [1]byte
	p.n, p.err = p.rc.Read(b[:])
	p.b = b[0]
	p.mu.Lock()
	p.probed = true
	closed := p.closed
	p.mu.Unlock()
	close(p.done)
	if closed {
		_ = p.rc.Close()
	}
}

func (p *probedBody) Read(b []byte) (int, error) {
	if !p.used {
		<-p.done
		p.used = true
		if p.n == 1 {
			if len(b) == 0 {
				p.used = false
				return 0, nil
			}
			b[0] = p.b
			return 1, p.err
		}
		if p.err != nil {
			return 0, p.err
		}
	}
	return p.rc.Read(b)
}

// Close closes the body, or leaves that to the probe while its read is still blocked: closing
// net/http's body waits for a read in progress to end.
func (p *probedBody) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if !p.probed {
		return nil
	}
	return p.rc.Close()
}

// closeOnce closes rc once however many times it is closed.
type closeOnce struct {
	rc   io.ReadCloser
	once sync.Once
}

func (c *closeOnce) Read([]byte) (int, error) { return 0, io.EOF }
func (c *closeOnce) Close() error {
	c.once.Do(func() { _ = c.rc.Close() })
	return nil
}

// headerValues validates vs as net/http's client does and trims them as its server does.
func headerValues(k string, vs []string) ([]string, error) {
	cp := make([]string, len(vs))
	for i, v := range vs {
		if !httpguts.ValidHeaderFieldValue(v) {
			return nil, fmt.Errorf("in-process request: invalid header field value for %q", k)
		}
		cp[i] = strings.Trim(v, " \t")
	}
	return cp, nil
}

// exactBody is a body of a declared length: a shorter one is an error, as on a connection, and a
// longer one ends at the length.
type exactBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *exactBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if err == io.EOF {
		if b.left > 0 {
			return n, io.ErrUnexpectedEOF
		}
	}
	if b.left == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

func (b *exactBody) Close() error { return b.rc.Close() }

// bufferBeforeStreaming is how much of a response is held before its header is committed, as
// net/http's server does (bufferBeforeChunkingSize): a response that ends within it gets a
// Content-Length and crosses in one piece.
const bufferBeforeStreaming = 2048

// exchange is one in-process request: the handler's ResponseWriter, and the response the
// RoundTrip caller reads. The handler goroutine owns every field until head is closed; after
// that the caller owns res and, through the pipe, the body.
type exchange struct {
	out    *http.Request // the caller's request
	in     *http.Request // the handler's
	cancel context.CancelFunc
	logger *slog.Logger

	header      http.Header // the handler's, live
	sent        http.Header // header as of WriteHeader: what the response carries
	status      int
	committed   bool
	bodyAllowed bool  // by the status: not for 204 and 304
	isHead      bool  // the body is computed (length, type) and dropped, as for a HEAD on a connection
	declared    int64 // Content-Length the handler declared, -1 when none
	written     int64
	buf         []byte // body written before the commit
	pw          *io.PipeWriter
	trailerRes  *http.Response         // trailer values for pipeBody to hand over at the end of the body
	trace       *httptrace.ClientTrace // the caller's, for 1xx responses

	head chan struct{} // closed once res or err is set
	// bodyErr is the first error reading the request body gave the handler, from whichever
	// goroutine read it; failed says the exchange ended with it instead of a response.
	bodyErr atomic.Pointer[error]
	failed  bool
	res     *http.Response
	err     error
}

func (ex *exchange) Header() http.Header { return ex.header }

func (ex *exchange) WriteHeader(code int) {
	if ex.status != 0 {
		return // net/http logs a superfluous call; nothing reaches the client
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// An informational response goes to the caller as its transport hands one over
		// (ReverseProxy relays it to its own client); as net/http's server writes it, it
		// carries the header map as it is now, which the handler keeps for the final response.
		if ex.trace != nil && ex.trace.Got1xxResponse != nil {
			h := make(textproto.MIMEHeader, len(ex.header))
			for k, vs := range wireHeader(ex.header) {
				if k != "Content-Length" && k != "Transfer-Encoding" {
					h[k] = slices.Clone(vs)
				}
			}
			if err := ex.trace.Got1xxResponse(code, h); err != nil {
				ex.logger.Debug("in-process informational response refused by the caller", "status", code, "error", err)
			}
		}
		return
	}
	ex.status = code
	if code == http.StatusNoContent || code == http.StatusNotModified {
		ex.bodyAllowed = false
	}
	// What the handler changes in its header map from now on is not sent (trailers aside), as
	// with net/http's server.
	ex.sent = ex.header.Clone()
	ex.declared = -1
	if cl := ex.sent.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			ex.declared = n
		}
	}
}

func (ex *exchange) Write(p []byte) (int, error) {
	if ex.failed {
		return 0, ex.err
	}
	if ex.status == 0 {
		ex.WriteHeader(http.StatusOK)
	}
	if !ex.bodyAllowed {
		return 0, http.ErrBodyNotAllowed
	}
	if ex.declared >= 0 && ex.written+int64(len(p)) > ex.declared {
		return 0, http.ErrContentLength
	}
	ex.written += int64(len(p))
	if !ex.committed {
		if len(ex.buf)+len(p) <= bufferBeforeStreaming {
			ex.buf = append(ex.buf, p...)
			return len(p), nil
		}
		if err := ex.commitStreaming(p); err != nil {
			return 0, err
		}
	}
	if ex.pw == nil { // HEAD: net/http's server eats the body
		return len(p), nil
	}
	return ex.pw.Write(p)
}

// Flush commits the header and what is buffered: the caller gets its response now.
func (ex *exchange) Flush() {
	if ex.status == 0 {
		ex.WriteHeader(http.StatusOK)
	}
	if !ex.committed {
		_ = ex.commitStreaming(nil)
	}
}

// commitStreaming commits the response with a body that streams, and sends what is buffered;
// next is the write that did not fit, which the Content-Type is sniffed from when nothing is.
func (ex *exchange) commitStreaming(next []byte) error {
	ex.commit(false, next)
	if ex.failed {
		return ex.err
	}
	if ex.pw == nil || len(ex.buf) == 0 {
		return nil
	}
	buf := ex.buf
	ex.buf = nil
	_, err := ex.pw.Write(buf)
	return err
}

// commit hands the response to the RoundTrip caller. done says the handler has returned: the body
// is then whole in buf, and gets its length when the handler declared none.
func (ex *exchange) commit(done bool, next []byte) {
	ex.committed = true
	if err := ex.bodyErr.Load(); err != nil {
		// Reading the caller's body failed (over its size limit, cut short) before the handler
		// answered. Over a connection the caller's client would have failed writing the
		// request, and returned that error rather than a response to a truncated request: the
		// caller's proxy then answers it (413, 400, 408) instead of relaying the handler's.
		ex.failed, ex.err = true, *err
		close(ex.head)
		return
	}
	h := wireHeader(ex.sent)
	res := &http.Response{
		Status:     strconv.Itoa(ex.status) + " " + http.StatusText(ex.status),
		StatusCode: ex.status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Request: ex.out, ContentLength: ex.declared,
	}
	if names := h["Trailer"]; len(names) > 0 {
		res.Trailer = http.Header{}
		for _, v := range names {
			for _, name := range strings.Split(v, ",") {
				if name = strings.TrimSpace(name); name != "" {
					res.Trailer[http.CanonicalHeaderKey(name)] = nil
				}
			}
		}
		delete(h, "Trailer")
	}
	_, typed := h["Content-Type"]
	sniff := ex.buf
	if len(sniff) == 0 {
		sniff = next
	}
	if !typed && ex.bodyAllowed && len(sniff) > 0 && h.Get("Content-Encoding") == "" && h.Get("Transfer-Encoding") == "" {
		h["Content-Type"] = []string{http.DetectContentType(sniff)} // net/http's server sniffs too
	}
	h.Del("Transfer-Encoding")
	switch {
	case !ex.bodyAllowed || ex.isHead:
		res.Body = http.NoBody
		if ex.status == http.StatusNoContent || ex.status == http.StatusNotModified {
			res.ContentLength = 0
		} else if done && res.ContentLength < 0 && len(res.Trailer) == 0 && len(ex.buf) > 0 {
			// A HEAD whose handler wrote a short body and returned: the server declares the
			// length of that body.
			res.ContentLength = int64(len(ex.buf))
			h["Content-Length"] = []string{strconv.Itoa(len(ex.buf))}
		}
	case done:
		if res.ContentLength < 0 && len(res.Trailer) == 0 {
			res.ContentLength = int64(len(ex.buf))
			h["Content-Length"] = []string{strconv.Itoa(len(ex.buf))}
		}
		if len(res.Trailer) > 0 {
			res.TransferEncoding = []string{"chunked"}
		}
		body := &bufferedBody{r: bytes.NewReader(ex.buf), ex: ex}
		if ex.declared >= 0 && ex.written < ex.declared {
			body.err = io.ErrUnexpectedEOF // shorter than declared, as a client would see it
		}
		res.Body = body
		ex.trailers(res)
	default:
		pr, pw := io.Pipe()
		ex.pw = pw
		res.Body = &pipeBody{pr: pr, ex: ex}
		if res.ContentLength < 0 {
			res.TransferEncoding = []string{"chunked"}
		}
	}
	ex.res = res
	close(ex.head)
}

// trailers sets the trailer values the handler left in its header map on res: the declared ones
// and those named with http.TrailerPrefix. A client sees them once the body has been read.
func (ex *exchange) trailers(res *http.Response) {
	for k, vs := range ex.header {
		if _, declared := res.Trailer[k]; declared {
			res.Trailer[k] = vs
		} else if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			if res.Trailer == nil {
				res.Trailer = http.Header{}
			}
			res.Trailer[http.CanonicalHeaderKey(name)] = vs
		}
	}
}

// serve runs the handler and ends the exchange as net/http's server ends a response: a handler
// that panics with the header still held gets an error instead of a response; one that panics
// later cuts the body short. http.ErrAbortHandler is the quiet way to do that.
func (ex *exchange) serve(h http.Handler) {
	defer ex.cancel() // as net/http does once a handler returns
	defer func() {
		p := recover()
		if ex.in.Body != nil {
			_ = ex.in.Body.Close() // RoundTrip owns the request body
		}
		if p != nil {
			if p != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				ex.logger.Error("in-process handler panicked", "method", ex.in.Method, "path", ex.in.URL.Path, "panic", fmt.Sprint(p), "stack", string(buf))
			}
			if !ex.committed {
				ex.committed = true
				ex.err = errHandlerPanicked
				ex.cancel()
				close(ex.head)
			} else if ex.pw != nil {
				_ = ex.pw.CloseWithError(io.ErrUnexpectedEOF)
			}
			return
		}
		if ex.status == 0 {
			ex.WriteHeader(http.StatusOK)
		}
		if !ex.committed {
			ex.commit(true, nil)
		}
		if ex.pw == nil {
			return
		}
		// The caller reads res.Trailer once the body has ended (pipeBody.Read), not before: the
		// values travel with the end of the pipe.
		ex.trailerRes = &http.Response{Trailer: ex.res.Trailer.Clone()}
		if ex.trailerRes.Trailer == nil {
			ex.trailerRes.Trailer = http.Header{}
		}
		ex.trailers(ex.trailerRes)
		if ex.bodyAllowed && ex.declared >= 0 && ex.written < ex.declared {
			_ = ex.pw.CloseWithError(io.ErrUnexpectedEOF) // shorter than declared, as a client would see it
			return
		}
		_ = ex.pw.Close()
	}()
	h.ServeHTTP(ex, ex.in)
}

// watchedBody is the handler's request body: it records the first read error (watchedBody.Read
// runs on whatever goroutine the handler reads from, such as its own transport's).
type watchedBody struct {
	io.ReadCloser
	ex *exchange
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.ex.bodyErr.CompareAndSwap(nil, &err)
	}
	return n, err
}

// bufferedBody is a response that was whole when the handler returned.
type bufferedBody struct {
	r   *bytes.Reader
	ex  *exchange
	err error // instead of io.EOF at the end
}

func (b *bufferedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF && b.err != nil {
		err = b.err
	}
	return n, err
}
func (b *bufferedBody) Close() error {
	b.ex.cancel()
	return nil
}

// pipeBody is a response still being written. Closing it early is a client going away: the
// handler's writes fail and its context is done.
type pipeBody struct {
	pr *io.PipeReader
	ex *exchange
}

func (b *pipeBody) Read(p []byte) (int, error) {
	n, err := b.pr.Read(p)
	if err == io.EOF && b.ex.trailerRes != nil {
		// The handler set trailerRes before closing the pipe, which this EOF follows.
		res := b.ex.res
		for k, vs := range b.ex.trailerRes.Trailer {
			if res.Trailer == nil {
				res.Trailer = http.Header{}
			}
			res.Trailer[k] = vs
		}
		b.ex.trailerRes = nil
	}
	return n, err
}
func (b *pipeBody) Close() error {
	b.ex.cancel()
	return b.pr.CloseWithError(errors.New("in-process response body closed"))
}

// Compile-time checks.
var (
	_ http.RoundTripper = (*InProcess)(nil)
	_ http.Flusher      = (*exchange)(nil)
)
