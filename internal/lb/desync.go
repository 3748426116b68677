package lb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rampart-edge/rampart/internal/config"
	"golang.org/x/net/http/httpguts"
)

// Desync (request smuggling) mitigation, after AWS ALB and its open-source http_desync_guardian.
// Every HTTP/1 request head is classified from its raw bytes, before net/http parses it (net/http
// normalizes or rejects much of what matters, so a handler cannot see it):
//
//   - compliant: RFC 9112 compliant;
//   - acceptable: not compliant but harmless (bare LF line ends, a space in the URI, HTTP/1.2,
//     a control character in an ordinary header, GET with Content-Length: 0);
//   - ambiguous: servers may disagree on it (both Transfer-Encoding and Content-Length, the same
//     Content-Length twice, a header that normalizes to Transfer-Encoding or Content-Length,
//     obs-fold lines, GET or HEAD with a body, a header line without a colon, an empty name);
//   - severe: built to confuse parsers (different Content-Length values, a non-numeric one or a
//     list, an unknown or repeated chunked Transfer-Encoding, NUL or CR inside a header or the
//     URI, a bad method or version, a bad chunk size in the body).
//
// Header names and codings are compared in ASCII only, as HTTP servers do: Unicode case folding
// would make "Tran\u017Ffer-Encoding" (long s) the Transfer-Encoding header.
//
// After a protocol upgrade request (WebSocket) the guard holds what follows until the response
// is known: a 101 relayed on the hijacked connection turns it into an opaque tunnel, anything else
// leaves it HTTP and the held bytes are classified, so "Upgrade: websocket" cannot switch the
// guard off for the requests pipelined behind it.
//
// Modes, as AWS documents them: monitor serves everything; defensive (the default) blocks severe
// requests with 400 and closes the connection, and serves ambiguous ones but then closes the
// client and the target connection; strictest serves compliant requests only. Every request
// that is not compliant carries classification and classification_reason in its access log line.

type class int

const (
	classCompliant class = iota
	classAcceptable
	classAmbiguous
	classSevere
)

func (c class) String() string {
	return [...]string{"Compliant", "Acceptable", "Ambiguous", "Severe"}[c]
}

// verdict is the classification of one request and what the mode makes of it.
type verdict struct {
	class      class
	reason     string
	closeConns bool // serve, then close the client and target connections
	block      bool // answer 400 and close
	goRejects  bool // net/http would refuse the head: answered with a JSON 400 here instead
	method     string
	path       string

	// upgrade marks an admitted protocol upgrade (WebSocket; never h2c): the guard holds what
	// follows it until the response is known. outcome is guarded by guardConn.mu.
	upgrade bool
	outcome upgradeOutcome
}

// upgradeOutcome is what became of an upgrade request.
type upgradeOutcome int

const (
	upPending upgradeOutcome = iota
	upTunnel                 // answered 101 on the hijacked connection: bytes are no longer HTTP
	upRefused                // answered otherwise: the connection stays HTTP and guarded
)

type verdictKey struct{}

func (v *verdict) raise(c class, reason string) {
	if c > v.class {
		v.class, v.reason = c, reason
	}
}

// apply decides what mode does with the classification.
func (v *verdict) apply(mode string) {
	switch mode {
	case config.DesyncMonitor:
	case config.DesyncStrictest:
		v.block = v.class > classCompliant
	default:
		v.block = v.class == classSevere
		v.closeConns = v.class == classAmbiguous
	}
	if v.goRejects {
		v.block = true
	}
}

// classifyHead classifies a raw request head: the request line and header lines, up to and
// including the empty line that ends them.
func classifyHead(head []byte) *verdict {
	v := &verdict{reason: "Compliant"}
	lines := bytes.Split(head, []byte("\n"))
	// The head ends with an empty line, so the split ends with two empty elements (or one, for a
	// head ending in "\n\n" preceded by a line).
	if n := len(lines); n > 0 && len(lines[n-1]) == 0 {
		lines = lines[:n-1]
	}
	for i, ln := range lines {
		if len(ln) > 0 && ln[len(ln)-1] == '\r' {
			lines[i] = ln[:len(ln)-1]
		} else {
			v.raise(classAcceptable, "NonCrLfLineTermination")
		}
	}
	if len(lines) == 0 {
		v.raise(classSevere, "BadMethod")
		return v
	}
	version := classifyRequestLine(v, string(lines[0]))

	var cls, tes []string
	prevContentType := false
	for _, raw := range lines[1:] {
		line := string(raw)
		if line == "" {
			break // the empty line that ends the head
		}
		if line[0] == ' ' || line[0] == '\t' {
			switch {
			case strings.TrimLeft(line, " \t") == "":
				v.raise(classAmbiguous, "EmptyHeader")
			case !prevContentType:
				v.raise(classAmbiguous, "MultilineHeader")
			}
			if sus := suspiciousName(strings.SplitN(line, ":", 2)[0]); sus {
				v.raise(classAmbiguous, "SuspiciousHeader")
			}
			continue
		}
		colon := strings.IndexByte(line, ':')
		if colon < 0 {
			v.raise(classAmbiguous, "MissingHeaderColon")
			continue
		}
		name, value := line[:colon], strings.Trim(line[colon+1:], " \t")
		prevContentType = asciiEqualFold(name, "Content-Type")
		if strings.ContainsAny(name, "\x00\r") || strings.ContainsAny(value, "\x00\r") {
			v.raise(classSevere, "BadHeader")
			continue
		}
		if strings.Trim(name, " \t") == "" {
			v.raise(classAmbiguous, "EmptyHeader")
			continue
		}
		switch {
		case asciiEqualFold(name, "Content-Length"):
			cls = append(cls, value)
		case asciiEqualFold(name, "Transfer-Encoding"):
			tes = append(tes, value)
		case suspiciousName(name):
			v.raise(classAmbiguous, "SuspiciousHeader")
		case !isToken(name) || !printable(value):
			v.raise(classAcceptable, "NonCompliantHeader")
		}
	}
	classifyFraming(v, cls, tes, version)
	return v
}

// classifyRequestLine classifies "METHOD SP target SP version" and returns the version.
func classifyRequestLine(v *verdict, line string) string {
	fields := strings.Split(line, " ")
	v.method = fields[0]
	if !isToken(fields[0]) {
		v.raise(classSevere, "BadMethod")
	}
	if len(fields) < 2 || (len(fields) == 2 && strings.HasPrefix(fields[1], "HTTP/")) {
		v.raise(classAmbiguous, "MissingUri")
		return ""
	}
	version := ""
	uriFields := fields[1:]
	if len(fields) > 2 {
		version = fields[len(fields)-1]
		uriFields = fields[1 : len(fields)-1]
	}
	uri := strings.Join(uriFields, " ")
	v.path, _, _ = strings.Cut(uri, "?")
	switch {
	case strings.ContainsAny(uri, "\x00\r"):
		v.raise(classSevere, "BadUri")
	case strings.ContainsFunc(uri, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		v.raise(classAmbiguous, "AmbiguousUri")
	case len(uriFields) > 1:
		v.raise(classAcceptable, "SpaceInUri")
	}
	switch {
	case version == "HTTP/1.1" || version == "HTTP/1.0":
	case version == "":
		v.raise(classAcceptable, "NonCompliantVersion") // HTTP/0.9
	case len(version) == 8 && strings.HasPrefix(version, "HTTP/1.") && version[7] >= '2' && version[7] <= '9':
		v.raise(classAcceptable, "NonCompliantVersion")
	default:
		v.raise(classSevere, "BadVersion")
	}
	return version
}

// classifyFraming classifies the headers that decide where the body ends.
func classifyFraming(v *verdict, cls, tes []string, version string) {
	bodyless := v.method == http.MethodGet || v.method == http.MethodHead
	var length string
	for _, h := range cls {
		// One decimal number per header, as http_desync_guardian requires: a list ("1, 1") is
		// BadContentLength, whatever RFC 9110 allows for identical values, since servers
		// disagree on it (net/http refuses it, others take the first or the last).
		if h == "" || len(h) > 18 || strings.Trim(h, "0123456789") != "" {
			v.raise(classSevere, "BadContentLength")
			continue
		}
		switch {
		case length == "":
			length = h
		case strings.TrimLeft(h, "0") != strings.TrimLeft(length, "0"):
			v.raise(classSevere, "MultipleContentLength")
		default:
			v.raise(classAmbiguous, "DuplicateContentLength")
		}
	}
	chunked := 0
	for _, h := range tes {
		for _, part := range strings.Split(h, ",") {
			coding := asciiLower(strings.Trim(part, " \t")) // not Unicode: "chun\u212Aed" is not chunked
			switch coding {
			case "chunked":
				chunked++
			case "gzip", "deflate", "compress", "identity", "x-gzip", "x-compress":
				if chunked > 0 {
					v.raise(classSevere, "BadTransferEncoding") // chunked must be last
				}
			default:
				v.raise(classSevere, "BadTransferEncoding")
			}
		}
	}
	if chunked > 1 {
		v.raise(classSevere, "MultipleTransferEncodingChunked")
	}
	switch {
	case len(tes) > 0 && len(cls) > 0:
		v.raise(classAmbiguous, "BothTeClPresent")
	case len(tes) > 0 && (bodyless || version != "HTTP/1.1"):
		v.raise(classAmbiguous, "UndefinedTransferEncodingSemantics")
	case len(cls) > 0 && bodyless && strings.TrimLeft(length, "0") == "" && length != "":
		v.raise(classAcceptable, "GetHeadZeroContentLength")
	case len(cls) > 0 && bodyless:
		v.raise(classAmbiguous, "UndefinedContentLengthSemantics")
	}
}

// suspiciousName reports a header name that is not exactly Transfer-Encoding or Content-Length
// but becomes one under common normalizations: case folding (ſ, ı, K), dropping delimiters,
// whitespace, control and non-ASCII characters, or cutting a short suffix.
func suspiciousName(name string) bool {
	if asciiEqualFold(name, "Transfer-Encoding") || asciiEqualFold(name, "Content-Length") {
		return false
	}
	var b strings.Builder
	for _, r := range name {
		switch r {
		case 'ſ':
			r = 's'
		case 'ı':
			r = 'i'
		case 'K': // Kelvin sign
			r = 'k'
		}
		r = unicode.ToLower(r)
		if r >= 'a' && r <= 'z' {
			b.WriteRune(r)
		}
	}
	n := b.String()
	for _, want := range []string{"transferencoding", "contentlength"} {
		if strings.HasPrefix(n, want) && len(n)-len(want) <= 2 {
			return true
		}
	}
	return false
}

// asciiEqualFold is strings.EqualFold for ASCII only, as HTTP compares header names:
// strings.EqualFold folds Unicode, so "Tran\u017Ffer-Encoding" (long s) would equal
// "Transfer-Encoding" there while every HTTP server sees another header.
func asciiEqualFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if asciiLowerByte(s[i]) != asciiLowerByte(t[i]) {
			return false
		}
	}
	return true
}

func asciiLowerByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// asciiLower lowers ASCII letters only, leaving every other byte as it is.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = asciiLowerByte(c)
	}
	return string(b)
}

// isToken reports whether s is an RFC 9110 token (the grammar of header names and methods).
func isToken(s string) bool { return httpguts.ValidHeaderFieldName(s) }

// printable reports a header value of visible ASCII, spaces and tabs only.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return utf8.ValidString(s)
}

// goRejectsHead reports whether net/http's server would refuse the head, so that the guard can
// answer with the same JSON 400 as every other error (and log it) instead of net/http's text one.
func goRejectsHead(head []byte) bool {
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		return true
	}
	hosts := req.Header.Values("Host")
	if req.ProtoAtLeast(1, 1) && req.Host == "" && len(hosts) == 0 {
		return true
	}
	if len(hosts) > 1 {
		return true
	}
	for name, vs := range req.Header {
		if !isToken(name) {
			return true // "invalid header name"
		}
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
					return true
				}
			}
		}
	}
	return false
}

// ListenerWrapper is implemented by the handlers that LoadBalancer.Handler returns: the server
// must serve the listener's connections through WrapListener for the desync guard and the idle
// timeout to apply.
type ListenerWrapper interface {
	WrapListener(net.Listener) net.Listener
}

// WrapListener returns ln with every accepted connection guarded: request heads are classified
// before net/http reads them, blocked requests are answered here, and a connection with no
// request in flight is closed after the idle timeout. A TLS listener is returned unchanged:
// net/http must see its *tls.Conn to negotiate HTTP/2 and to fill in Request.TLS.
func (l *listener) WrapListener(ln net.Listener) net.Listener {
	if l.tls {
		return ln
	}
	return &guardListener{Listener: ln, l: l}
}

type guardListener struct {
	net.Listener
	l *listener
}

func (gl *guardListener) Accept() (net.Conn, error) {
	c, err := gl.Listener.Accept()
	if err != nil {
		return nil, err
	}
	gc := &guardConn{Conn: c, l: gl.l, key: c.RemoteAddr().String()}
	gc.touch()
	gc.idle = time.AfterFunc(gl.l.idle, gc.onIdle)
	gl.l.conns.Store(gc.key, gc)
	return gc, nil
}

// Request framing states of a guarded connection.
const (
	stHead = iota
	stFixed
	stChunkSize
	stChunkData
	stChunkCRLF
	stTrailer
	stUpgrade // after an upgrade request: bytes are held until its response is known
	stPassthrough
)

// maxGuardHead is the longest head the guard holds back for classification; a longer one is
// passed through, and net/http answers 431.
const maxGuardHead = 80 << 10

var errBlocked = errors.New("lb: request blocked by desync mitigation")

// guardConn is a server-side connection whose reads go through the request classifier. Reads come
// from one goroutine at a time (net/http's connection reader), so the parser state needs no lock;
// mu guards what the handler touches.
type guardConn struct {
	net.Conn
	l   *listener
	key string

	// Parser state (reader goroutine only).
	in        []byte // an incomplete head
	out       []byte // bytes classified and ready for net/http
	state     int
	remaining int64
	line      []byte // an incomplete chunk-size or trailer line
	crlf      int
	afterBody int      // the state once the current request's body ends: stHead or stUpgrade
	waiting   *verdict // the upgrade request that held bytes wait for (in stUpgrade)
	held      []byte   // bytes read after an upgrade request, before its response
	err       error
	buf       [16 << 10]byte

	mu       sync.Mutex
	queue    []*verdict // verdicts of heads read but not yet handled, in order
	inflight int
	idle     *time.Timer
	last     atomic.Int64 // unix nanoseconds of the last read or write
	closed   atomic.Bool

	// An upgrade request's handler hijacked the connection: the first bytes written on it are
	// the response's status line, which decides between tunnel and HTTP.
	sniffing atomic.Bool
	sniff    *verdict
	status   []byte
	tunnel   bool // a 101 switched the connection to an opaque tunnel

	// pending is a blocked request that arrived behind requests still being answered; its 400
	// is written once they are, so that responses stay in order.
	pending *verdict
}

// rejectWhenIdle writes the pending 400 once no earlier request is queued or in flight. Until
// then it reads (and discards: the connection is ending) from the client, so that the deadlines
// net/http sets still interrupt it.
func (c *guardConn) rejectWhenIdle() error {
	c.mu.Lock()
	busy := c.inflight > 0 || len(c.queue) > 0
	c.mu.Unlock()
	if !busy {
		v := c.pending
		c.pending = nil
		c.reject(v)
		return c.err
	}
	if c.err != nil {
		return c.err
	}
	_, err := c.Conn.Read(c.buf[:])
	if err != nil && !isTimeout(err) {
		c.err = err
	}
	return err
}

func (c *guardConn) touch() { c.last.Store(time.Now().UnixNano()) }

func (c *guardConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.state == stUpgrade && c.resumeAfterUpgrade() {
			continue
		}
		if c.pending != nil {
			return 0, c.rejectWhenIdle()
		}
		if c.err != nil {
			return 0, c.err
		}
		n, err := c.Conn.Read(c.buf[:])
		if n > 0 {
			c.touch()
			c.feed(c.buf[:n])
		}
		if err != nil && c.err == nil {
			if len(c.out) > 0 || c.pending != nil {
				break // deliver what we have; the error comes back on the next read
			}
			if isTimeout(err) {
				// net/http sets past deadlines to stop its background read: not an end.
				return 0, err
			}
			if len(c.in) > 0 { // a truncated head: let net/http report it
				c.out = append(c.out, c.in...)
				c.in = nil
				c.err = err
				break
			}
			c.err = err
		}
	}
	if len(c.out) == 0 {
		return 0, c.err
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

func (c *guardConn) Write(p []byte) (int, error) {
	c.touch()
	if c.sniffing.Load() {
		c.sniffStatus(p) // before the bytes leave: the client may answer a 101 at once
	}
	return c.Conn.Write(p)
}

func (c *guardConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.idle.Stop()
		c.l.conns.CompareAndDelete(c.key, c)
	}
	return c.Conn.Close()
}

// begin hands the handler the verdict of its request r and marks a request in flight.
func (c *guardConn) begin(r *http.Request) *verdict {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight++
	// An http.Server without DisableGeneralOptionsHandler (server.Serve sets it) answers
	// "OPTIONS *" itself: that verdict has no handler to go to, and keeping it would hand every
	// later request the verdict of the one before.
	for len(c.queue) > 0 && c.queue[0].isOptionsAsterisk() && !(r.Method == http.MethodOptions && r.RequestURI == "*") {
		c.queue = c.queue[1:]
	}
	if len(c.queue) == 0 {
		return nil
	}
	v := c.queue[0]
	c.queue = c.queue[1:]
	return v
}

func (v *verdict) isOptionsAsterisk() bool { return v.method == http.MethodOptions && v.path == "*" }

// end marks the request of verdict v (nil when it had none) finished. An upgrade request that
// ends without a 101 leaves the connection HTTP: the bytes held behind it are classified.
func (c *guardConn) end(v *verdict) {
	c.mu.Lock()
	c.inflight--
	if v != nil && v.upgrade && v.outcome == upPending {
		v.outcome = upRefused
	}
	if c.sniff == v {
		c.sniff, c.status = nil, nil
		c.sniffing.Store(false)
	}
	c.mu.Unlock()
	c.touch()
}

// hijacked records that the handler of upgrade request v took over the connection; its response
// head is written next.
func (c *guardConn) hijacked(v *verdict) {
	c.mu.Lock()
	c.sniff, c.status = v, nil
	c.sniffing.Store(true)
	c.mu.Unlock()
}

// sniffStatus reads the status line of the response written after a hijack: 101 turns the
// connection into a tunnel, anything else leaves it HTTP.
func (c *guardConn) sniffStatus(p []byte) {
	const statusLen = len("HTTP/1.1 101")
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.sniff
	if v == nil {
		return
	}
	c.status = append(c.status, p[:min(len(p), statusLen-len(c.status))]...)
	if len(c.status) < statusLen {
		return
	}
	if v.outcome == upPending {
		v.outcome = upRefused
		if s := string(c.status); s == "HTTP/1.1 101" || s == "HTTP/1.0 101" {
			v.outcome, c.tunnel = upTunnel, true
		}
	}
	c.sniff, c.status = nil, nil
	c.sniffing.Store(false)
}

// resumeAfterUpgrade moves on from stUpgrade once the upgrade's outcome is known: the held bytes
// go through untouched after a 101, or are classified as HTTP otherwise. It reports whether the
// state changed.
func (c *guardConn) resumeAfterUpgrade() bool {
	c.mu.Lock()
	outcome := c.waiting.outcome
	c.mu.Unlock()
	held := c.held
	switch outcome {
	case upTunnel:
		c.state = stPassthrough
		c.out = append(c.out, held...)
	case upRefused:
		c.state = stHead
		// A read error that came while bytes were held is reported after them.
		err := c.err
		c.err = nil
		c.feed(held)
		if c.err == nil {
			c.err = err
		}
	default:
		return false
	}
	c.held, c.waiting = nil, nil
	return true
}

// onIdle closes the connection when nothing was read or written for the idle timeout and no
// request is in flight; a request waiting for its target is bounded by request_timeout instead.
func (c *guardConn) onIdle() {
	c.mu.Lock()
	busy := c.inflight > 0 && !c.tunnel // a tunnel's request lasts as long as the tunnel
	c.mu.Unlock()
	since := time.Since(time.Unix(0, c.last.Load()))
	if busy || since < c.l.idle {
		c.idle.Reset(max(c.l.idle-since, time.Millisecond))
		return
	}
	c.l.lb.logger.Debug("idle timeout: closing client connection", "listener", c.l.listen, "remote", c.key)
	_ = c.Close()
}

// feed runs the framing state machine over b, moving classified bytes to out.
func (c *guardConn) feed(b []byte) {
	for len(b) > 0 && c.err == nil {
		if c.pending != nil {
			return // discarded: the connection ends after the pending 400
		}
		switch c.state {
		case stPassthrough:
			c.out = append(c.out, b...)
			return
		case stUpgrade:
			c.held = append(c.held, b...)
			if len(c.held) > maxGuardHead {
				// A WebSocket client waits for the 101 before it sends a frame (RFC 6455 4.1).
				c.l.lb.logger.Warn("desync: too much data before the response to an upgrade request; closing", "listener", c.l.listen, "remote", c.key)
				c.err = errBlocked
				_ = c.Conn.Close()
			}
			return
		case stHead:
			old := len(c.in)
			c.in = append(c.in, b...)
			b = nil
			end := headEnd(c.in, max(old-3, 0))
			if end < 0 {
				if len(c.in) > maxGuardHead {
					c.out = append(c.out, c.in...)
					c.in = nil
					c.state = stPassthrough
				}
				return
			}
			head, rest := c.in[:end], c.in[end:]
			c.in = nil
			if !c.admit(head) {
				return
			}
			c.out = append(c.out, head...)
			b = rest
		case stFixed:
			n := int(min(int64(len(b)), c.remaining))
			c.out = append(c.out, b[:n]...)
			b = b[n:]
			if c.remaining -= int64(n); c.remaining == 0 {
				c.state = c.afterBody
			}
		case stChunkData:
			n := int(min(int64(len(b)), c.remaining))
			c.out = append(c.out, b[:n]...)
			b = b[n:]
			if c.remaining -= int64(n); c.remaining == 0 {
				c.state, c.crlf = stChunkCRLF, 0
			}
		case stChunkCRLF:
			want := "\r\n"[c.crlf]
			if b[0] != want {
				c.badBody("BadChunkTerminator")
				return
			}
			c.out = append(c.out, b[0])
			b = b[1:]
			if c.crlf++; c.crlf == 2 {
				c.state = stChunkSize
			}
		case stChunkSize, stTrailer:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				c.line = append(c.line, b...)
				c.out = append(c.out, b...)
				if len(c.line) > 4096 {
					c.badBody("ChunkLineTooLong")
				}
				return
			}
			c.line = append(c.line, b[:i+1]...)
			c.out = append(c.out, b[:i+1]...)
			b = b[i+1:]
			line := strings.TrimSuffix(strings.TrimSuffix(string(c.line), "\n"), "\r")
			c.line = c.line[:0]
			if c.state == stTrailer {
				if line == "" {
					c.state = c.afterBody
				}
				continue
			}
			size, ok := parseChunkSize(line)
			switch {
			case !ok:
				c.badBody("BadChunkSize")
				return
			case size == 0:
				c.state = stTrailer
			default:
				c.state, c.remaining = stChunkData, size
			}
		}
	}
}

// headEnd returns the index just after the empty line ending a head in b, or -1.
func headEnd(b []byte, from int) int {
	for i := from; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		if i+1 < len(b) && b[i+1] == '\n' {
			return i + 2
		}
		if i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n' {
			return i + 3
		}
	}
	return -1
}

// parseChunkSize reads "1a2b[;ext]": hex digits only (no sign, no 0x, no spaces inside), at most
// 15 of them so the size fits an int64.
func parseChunkSize(line string) (int64, bool) {
	size, _, _ := strings.Cut(line, ";")
	size = strings.TrimRight(size, " \t")
	if size == "" || len(size) > 15 || strings.Trim(size, "0123456789abcdefABCDEF") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(size, 16, 64)
	return n, err == nil
}

// admit classifies a complete head. It returns false when the request was blocked (the 400 is
// already written and the connection is ending).
func (c *guardConn) admit(head []byte) bool {
	v := classifyHead(head)
	v.goRejects = goRejectsHead(head)
	v.apply(c.l.desync)
	if v.block {
		c.mu.Lock()
		busy := c.inflight > 0 || len(c.queue) > 0
		c.mu.Unlock()
		c.state = stPassthrough // nothing after a blocked head is delivered
		c.pending = v
		if !busy && len(c.out) == 0 {
			c.pending = nil
			c.reject(v)
		}
		return false
	}
	// Frame the body the way net/http will: chunked when Transfer-Encoding is present (it
	// refuses any other coding), else Content-Length, else none.
	c.state, c.afterBody = stHead, stHead
	if req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head))); err == nil {
		// After an upgrade request nobody knows yet whether the next bytes are a request or
		// another protocol: they are held until the response says (resumeAfterUpgrade). An
		// ambiguous request is served without its upgrade (requestHeaders), so it never is one.
		if isUpgrade(req.Header) && !v.closeConns {
			v.upgrade = true
			c.afterBody, c.waiting = stUpgrade, v
		}
		c.state = c.afterBody
		switch {
		case len(req.TransferEncoding) > 0:
			c.state = stChunkSize
		case req.ContentLength > 0:
			c.state, c.remaining = stFixed, req.ContentLength
		}
	}
	c.mu.Lock()
	c.queue = append(c.queue, v)
	c.mu.Unlock()
	if v.class != classCompliant && c.l.desync == config.DesyncMonitor {
		c.l.lb.logger.Info("desync: non-compliant request served (monitor mode)", "listener", c.l.listen, "remote", c.key, "classification", v.class.String(), "classification_reason", v.reason)
	}
	return true
}

const blockedResponse = "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nContent-Length: 27\r\nConnection: close\r\n\r\n{\"message\":\"Bad Request\"}\n"

// reject answers 400 on the raw connection, logs the request like the access log does, and ends
// the connection: after a blocked request nobody knows where the next one starts.
func (c *guardConn) reject(v *verdict) {
	reason := "DesyncMitigation"
	if v.goRejects && v.class < classSevere {
		reason = reasonBadRequest
	}
	source, _, _ := net.SplitHostPort(c.key)
	c.l.lb.logger.LogAttrs(context.Background(), slog.LevelInfo, "access",
		slog.String("listener", c.l.listen),
		slog.String("method", clip(v.method, 32)),
		slog.String("path", clip(v.path, 256)),
		slog.Int("status", http.StatusBadRequest),
		slog.String("source_ip", source),
		slog.String("target", ""),
		slog.String("error_reason", reason),
		slog.String("classification", v.class.String()),
		slog.String("classification_reason", v.reason),
	)
	c.touch()
	_, _ = c.Conn.Write([]byte(blockedResponse))
	c.linger()
	c.err = errBlocked
}

// badBody ends a connection whose chunked body is malformed. The head was already handed to
// net/http, so no response can be written here: in monitor mode the bytes go on (net/http's
// chunked reader fails the request), otherwise the connection is closed.
func (c *guardConn) badBody(reason string) {
	c.l.lb.logger.Warn("desync: malformed chunked body", "listener", c.l.listen, "remote", c.key, "classification", classSevere.String(), "classification_reason", reason, "mode", c.l.desync)
	if c.l.desync == config.DesyncMonitor {
		c.state = stPassthrough
		return
	}
	c.err = errBlocked
	_ = c.Conn.Close()
}

// linger half-closes the connection and drains what the client still sends for a moment, so that
// the 400 reaches it instead of being lost to a reset.
func (c *guardConn) linger() {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.Conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, _ = io.Copy(io.Discard, io.LimitReader(c.Conn, 256<<10))
}

// isUpgrade reports a protocol upgrade that the proxy forwards, as httputil.ReverseProxy detects
// one: "upgrade" among the Connection tokens and an Upgrade header. h2c is left out (the proxy
// strips it, see internal/proxy), and so is any list naming it: such a request stays guarded.
func isUpgrade(h http.Header) bool {
	return strings.Trim(h.Get("Upgrade"), " \t") != "" && hasToken(h.Values("Connection"), "upgrade") && !hasToken(h.Values("Upgrade"), "h2c")
}

// hasToken reports whether the comma-separated header values name token (ASCII case-insensitive).
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if asciiEqualFold(strings.Trim(t, " \t"), token) {
				return true
			}
		}
	}
	return false
}
