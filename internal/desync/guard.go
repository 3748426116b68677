package desync

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// What the guard does, by class and mode (as AWS documents it): monitor serves everything;
// defensive (the default) answers severe requests 400 and closes the connection, and serves
// ambiguous ones but then closes the client connection (and, through Verdict.CloseConns, the
// backend's); strictest serves compliant requests only.
//
// After a protocol upgrade request (WebSocket) the guard holds what follows until the response
// is known: a 101 relayed on the hijacked connection turns it into an opaque tunnel, anything else
// leaves it HTTP and the held bytes are classified, so "Upgrade: websocket" cannot switch the
// guard off for the requests pipelined behind it.

// DefaultHandshakeTimeout bounds a TLS handshake on a guarded TLS listener.
const DefaultHandshakeTimeout = 10 * time.Second

// Guard is the request-smuggling guard of one listener. Set its fields, then call Wrap on the
// listener and serve it with a handler wrapped by Handler; a Guard must not be copied after
// that. Its methods are safe for concurrent use.
type Guard struct {
	// Mode is Monitor, Defensive (also when empty) or Strictest.
	Mode string
	// IdleTimeout, when positive, closes a connection with no request in flight and no byte read
	// or written for that long (a WebSocket tunnel too).
	IdleTimeout time.Duration
	// HandshakeTimeout bounds a TLS handshake (DefaultHandshakeTimeout when zero).
	HandshakeTimeout time.Duration
	// Logger receives the access line of each blocked request and the guard's warnings; nil
	// discards them.
	Logger *slog.Logger
	// Listener names the listener in log lines (its address).
	Listener string

	conns sync.Map // remote address → *conn, for the connections Wrap accepted
	// parsers recycles the readers net/http's parser reads heads through (*headParser): a
	// bufio.Reader per head was a third of the bytes allocated per request in the chain.
	parsers sync.Pool
}

func (g *Guard) mode() string {
	if g.Mode == "" {
		return Defensive
	}
	return g.Mode
}

func (g *Guard) logger() *slog.Logger {
	if g.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return g.Logger
}

// ListenerWrapper is implemented by the handlers whose listener must be served through a guard
// (the load balancer's listeners and the gateway): the server applies WrapListener to the
// listener it serves them on.
type ListenerWrapper interface {
	WrapListener(net.Listener) net.Listener
}

// Wrap returns ln with every accepted connection guarded. A TLS listener (tls.NewListener) is
// guarded too: the guard completes the handshake itself, off the accept path, then guards the
// plaintext of an HTTP/1 connection (Handler restores Request.TLS, which net/http only fills in
// for a *tls.Conn), and hands a connection that negotiated h2 by ALPN to net/http unchanged:
// HTTP/2 frames every message with its own length, so the CL/TE ambiguity this guard exists for
// does not arise there, and net/http's HTTP/2 server refuses Transfer-Encoding and a
// Content-Length that disagrees with the DATA frames by itself.
func (g *Guard) Wrap(ln net.Listener) net.Listener {
	ctx, cancel := context.WithCancel(context.Background())
	return &listener{Listener: ln, g: g, ready: make(chan accepted), ctx: ctx, cancel: cancel}
}

// listener accepts in a goroutine of its own (started by the first Accept, ended by Close), so
// that a slow TLS handshake never holds up the connections behind it.
type listener struct {
	net.Listener
	g      *Guard
	start  sync.Once
	ready  chan accepted
	ctx    context.Context // done once Close was called
	cancel context.CancelFunc
	loops  sync.WaitGroup
	// mu orders starting the accept loop before Close waits for it: a WaitGroup must not be
	// added to while it is waited on (a server stopped right after it started).
	mu     sync.Mutex
	closed bool
}

type accepted struct {
	c   net.Conn
	err error
}

func (l *listener) Accept() (net.Conn, error) {
	if l.ctx.Err() != nil {
		return nil, net.ErrClosed
	}
	l.start.Do(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if !l.closed { // else Close came first: ctx is done, and so is this Accept
			l.loops.Go(l.acceptLoop)
		}
	})
	select {
	case a := <-l.ready:
		return a.c, a.err
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

func (l *listener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cancel()
	err := l.Listener.Close()
	l.loops.Wait()
	return err
}

func (l *listener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			// net/http decides what to do with an error (it retries temporary ones after a
			// pause); after a permanent one nobody calls Accept again and Close ends the loop.
			select {
			case l.ready <- accepted{err: err}:
			case <-l.ctx.Done():
				return
			}
			continue
		}
		if tc, ok := c.(*tls.Conn); ok {
			l.loops.Go(func() { l.handshake(tc) })
			continue
		}
		l.deliver(l.g.newConn(c, nil))
	}
}

// handshake completes a TLS handshake and delivers the connection: unchanged when it negotiated
// HTTP/2, guarded otherwise.
func (l *listener) handshake(tc *tls.Conn) {
	timeout := l.g.HandshakeTimeout
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(l.ctx, timeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		l.g.logger().Debug("TLS handshake failed", "listener", l.g.Listener, "remote", tc.RemoteAddr().String(), "error", err.Error())
		_ = tc.Close()
		return
	}
	state := tc.ConnectionState()
	if state.NegotiatedProtocol == "h2" {
		l.deliver(tc)
		return
	}
	l.deliver(l.g.newConn(tc, &state))
}

func (l *listener) deliver(c net.Conn) {
	select {
	case l.ready <- accepted{c: c}:
	case <-l.ctx.Done():
		_ = c.Close()
	}
}

func (g *Guard) newConn(c net.Conn, state *tls.ConnectionState) *conn {
	gc := &conn{Conn: c, g: g, key: c.RemoteAddr().String(), tls: state}
	gc.touch()
	if g.IdleTimeout > 0 {
		gc.idle = time.AfterFunc(g.IdleTimeout, gc.onIdle)
	}
	g.conns.Store(gc.key, gc)
	return gc
}

// IsTimeout reports whether err is a deadline or timeout, from a context or from the network.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
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

// MaxHeld is the longest head the guard holds back for classification; a longer one is
// passed through, and net/http answers 431.
const MaxHeld = 80 << 10

var errBlocked = errors.New("desync: request blocked by desync mitigation")

// conn is a server-side connection whose reads go through the request classifier. Reads come
// from one goroutine at a time (net/http's connection reader), so the parser state needs no lock;
// mu guards what the handler touches.
type conn struct {
	net.Conn
	g   *Guard
	key string
	tls *tls.ConnectionState // of a guarded TLS connection, for Handler to restore Request.TLS

	// Parser state (reader goroutine only).
	in        []byte // an incomplete head
	out       []byte // bytes classified and ready for net/http
	state     int
	remaining int64
	line      []byte // an incomplete chunk-size or trailer line
	crlf      int
	afterBody int      // the state once the current request's body ends: stHead or stUpgrade
	waiting   *Verdict // the upgrade request that held bytes wait for (in stUpgrade)
	held      []byte   // bytes read after an upgrade request, before its response
	err       error
	buf       [16 << 10]byte

	mu       sync.Mutex
	queue    []*Verdict // verdicts of heads read but not yet handled, in order
	inflight int
	// finishing: the last handler returned, and net/http may still be writing its response
	// (until it next sets a read deadline). The guard's own 400 waits for it: written earlier, it
	// would overtake that response.
	finishing bool
	idle      *time.Timer
	last      atomic.Int64 // unix nanoseconds of the last read or write
	closed    atomic.Bool

	// An upgrade request's handler hijacked the connection: the first bytes written on it are
	// the response's status line, which decides between tunnel and HTTP.
	sniffing atomic.Bool
	sniff    *Verdict
	status   []byte
	tunnel   bool // a 101 switched the connection to an opaque tunnel

	// pending is a blocked request that arrived behind requests still being answered; its 400
	// is written once they are, so that responses stay in order.
	pending *Verdict
}

// rejectWhenIdle writes the pending 400 once no earlier request is queued or in flight. Until
// then it reads (and discards: the connection is ending) from the client, so that the deadlines
// net/http sets still interrupt it.
func (c *conn) rejectWhenIdle() error {
	if !c.busy() {
		v := c.pending
		c.pending = nil
		c.reject(v)
		return c.err
	}
	if c.err != nil {
		return c.err
	}
	_, err := c.Conn.Read(c.buf[:])
	if err != nil && !IsTimeout(err) {
		c.err = err
	}
	return err
}

func (c *conn) touch() { c.last.Store(time.Now().UnixNano()) }

func (c *conn) Read(p []byte) (int, error) {
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
			if IsTimeout(err) {
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
	// What is left moves to the front, so that the buffer keeps its room for the next bytes:
	// sliced forward instead, it ran out of capacity and each request's bytes (head and body)
	// cost a new one.
	c.out = c.out[:copy(c.out, c.out[n:])]
	return n, nil
}

func (c *conn) Write(p []byte) (int, error) {
	c.touch()
	if c.sniffing.Load() {
		c.sniffStatus(p) // before the bytes leave: the client may answer a 101 at once
	}
	return c.Conn.Write(p)
}

func (c *conn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		if c.idle != nil {
			c.idle.Stop()
		}
		c.g.conns.CompareAndDelete(c.key, c)
	}
	return c.Conn.Close()
}

// begin hands the handler the verdict of its request r and marks a request in flight.
func (c *conn) begin(r *http.Request) *Verdict {
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

func (v *Verdict) isOptionsAsterisk() bool { return v.Method == http.MethodOptions && v.Path == "*" }

// end marks the request of verdict v (nil when it had none) finished. An upgrade request that
// ends without a 101 leaves the connection HTTP: the bytes held behind it are classified.
func (c *conn) end(v *Verdict) {
	c.mu.Lock()
	c.inflight--
	c.finishing = c.inflight == 0
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
func (c *conn) hijacked(v *Verdict) {
	c.mu.Lock()
	c.sniff, c.status = v, nil
	c.sniffing.Store(true)
	c.mu.Unlock()
}

// sniffStatus reads the status line of the response written after a hijack: 101 turns the
// connection into a tunnel, anything else leaves it HTTP.
func (c *conn) sniffStatus(p []byte) {
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
func (c *conn) resumeAfterUpgrade() bool {
	c.mu.Lock()
	outcome := c.waiting.outcome
	c.mu.Unlock()
	if outcome != upTunnel && outcome != upRefused {
		return false
	}
	// Cleared before the held bytes are fed: they may hold another upgrade request, whose own
	// waiting verdict and held bytes must survive (cleared after, the connection was left in
	// stUpgrade with no verdict to wait for, and the next read dereferenced nil).
	held := c.held
	c.held, c.waiting = nil, nil
	if outcome == upTunnel {
		c.state = stPassthrough
		c.out = append(c.out, held...)
		return true
	}
	c.state = stHead
	// A read error that came while bytes were held is reported after them.
	err := c.err
	c.err = nil
	c.feed(held)
	if c.err == nil {
		c.err = err
	}
	return true
}

// onIdle closes the connection when nothing was read or written for the idle timeout and no
// request is in flight; a request waiting for its target is bounded by request_timeout instead.
func (c *conn) onIdle() {
	c.mu.Lock()
	busy := c.inflight > 0 && !c.tunnel // a tunnel's request lasts as long as the tunnel
	c.mu.Unlock()
	since := time.Since(time.Unix(0, c.last.Load()))
	if busy || since < c.g.IdleTimeout {
		c.idle.Reset(max(c.g.IdleTimeout-since, time.Millisecond))
		return
	}
	c.g.logger().Debug("idle timeout: closing client connection", "listener", c.g.Listener, "remote", c.key)
	_ = c.Close()
}

// feed runs the framing state machine over b, moving classified bytes to out.
func (c *conn) feed(b []byte) {
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
			if len(c.held) > MaxHeld {
				// A WebSocket client waits for the 101 before it sends a frame (RFC 6455 4.1).
				c.g.logger().Warn("desync: too much data before the response to an upgrade request; closing", "listener", c.g.Listener, "remote", c.key)
				c.err = errBlocked
				_ = c.Conn.Close()
			}
			return
		case stHead:
			var head, rest []byte
			if len(c.in) == 0 {
				// A head read whole, as nearly every one is, is classified where it lies:
				// copying the read (with the body bytes behind the head) cost an allocation
				// of its size per request.
				if end := headEnd(b, 0); end >= 0 {
					head, rest = b[:end], b[end:]
				}
			}
			if head == nil {
				old := len(c.in)
				c.in = append(c.in, b...)
				b = nil
				end := headEnd(c.in, max(old-3, 0))
				if end < 0 {
					if len(c.in) > MaxHeld {
						c.oversized()
					}
					return
				}
				head, rest = c.in[:end], c.in[end:]
				c.in = nil
			}
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
func (c *conn) admit(head []byte) bool {
	// net/http's parser runs once per head: for GoRejects and for the framing below.
	p, _ := c.g.parsers.Get().(*headParser)
	if p == nil {
		p = &headParser{}
	}
	defer c.g.parsers.Put(p)
	req, err := p.parse(head)
	v := Classify(head)
	v.GoRejects = goRejects(req, err)
	v.apply(c.g.mode())
	if v.Block {
		c.block(v)
		return false
	}
	// Frame the body the way net/http will: chunked when Transfer-Encoding is present (it
	// refuses any other coding), else Content-Length, else none.
	c.state, c.afterBody = stHead, stHead
	if err == nil {
		// After an upgrade request nobody knows yet whether the next bytes are a request or
		// another protocol: they are held until the response says (resumeAfterUpgrade). An
		// ambiguous request is served without its upgrade (Handler), so it never is one.
		if isUpgrade(req.Header) && !v.CloseConns {
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
	if v.Class != Compliant && c.g.mode() == Monitor {
		c.g.logger().Info("desync: non-compliant request served (monitor mode)", "listener", c.g.Listener, "remote", c.key, "classification", v.Class.String(), "classification_reason", v.Reason)
	}
	return true
}

// block answers the blocked request v with a 400 once the requests before it are answered, and
// ends the connection: nothing after a blocked head is delivered.
func (c *conn) block(v *Verdict) {
	c.state = stPassthrough
	c.pending = v
	if !c.busy() && len(c.out) == 0 {
		c.pending = nil
		c.reject(v)
	}
}

// busy reports whether a response may still be on its way to the client, so that the guard's
// own 400 must wait: a request is queued or in flight, or the last one's handler returned but
// net/http may not have flushed its response yet (finishing).
func (c *conn) busy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inflight > 0 || len(c.queue) > 0 || c.finishing
}

// SetReadDeadline and SetDeadline end the finishing state: once a handler has returned, net/http
// sets a read deadline only after it flushed the response (to interrupt its background read, or
// before it reads the next request).
func (c *conn) SetReadDeadline(t time.Time) error {
	c.doneFinishing()
	return c.Conn.SetReadDeadline(t)
}

func (c *conn) SetDeadline(t time.Time) error {
	c.doneFinishing()
	return c.Conn.SetDeadline(t)
}

func (c *conn) doneFinishing() {
	c.mu.Lock()
	if c.inflight == 0 {
		c.finishing = false
	}
	c.mu.Unlock()
}

// oversized handles a head longer than MaxHeld: it cannot be held for classification, so it goes
// to net/http unclassified (which answers 431 unless its MaxHeaderBytes is larger, as a gateway's
// max_header_bytes may be) and, since its framing is unknown, so does everything after it on the
// connection. The request therefore counts as ambiguous: strictest refuses it; defensive serves
// it and closes the connection after it, so that nothing pipelined behind it goes unguarded;
// monitor serves on.
func (c *conn) oversized() {
	v := &Verdict{Class: Ambiguous, Reason: ReasonHeadTooLong}
	line, _, _ := bytes.Cut(c.in, []byte("\n"))
	var rl Verdict
	classifyRequestLine(&rl, strings.TrimSuffix(string(line), "\r"))
	v.Method, v.Path = rl.Method, rl.Path
	v.apply(c.g.mode())
	head := c.in
	c.in = nil
	if v.Block {
		c.block(v)
		return
	}
	c.out = append(c.out, head...)
	c.state = stPassthrough
	c.mu.Lock()
	c.queue = append(c.queue, v)
	c.mu.Unlock()
	c.g.logger().Warn("desync: request head too long to classify; served unclassified", "listener", c.g.Listener, "remote", c.key, "classification", v.Class.String(), "classification_reason", v.Reason, "mode", c.g.mode(), "close_after", v.CloseConns)
}

// Access-log reason codes of the requests the guard answers itself, as the load balancer's
// error_reason.
const (
	ReasonDesync     = "DesyncMitigation" // blocked by the mode
	ReasonBadRequest = "BadRequest"       // a head net/http would refuse, answered here in JSON
)

// ReasonHeadTooLong is the classification reason of a head longer than MaxHeld, which the guard
// cannot classify (not an http_desync_guardian code: it holds whole heads).
const ReasonHeadTooLong = "HeadTooLong"

// blockedBody is the body of the guard's 400, the JSON every error of the edge has.
const blockedBody = "{\"message\":\"Bad Request\"}\n"

const blockedResponse = "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nContent-Length: 26\r\nConnection: close\r\n\r\n" + blockedBody

// reject answers 400 on the raw connection, logs the request like the access log does, and ends
// the connection: after a blocked request nobody knows where the next one starts.
func (c *conn) reject(v *Verdict) {
	reason := ReasonDesync
	if v.GoRejects && v.Class < Severe {
		reason = ReasonBadRequest
	}
	c.g.logBlocked(context.Background(), v, c.key, reason)
	c.touch()
	_, _ = c.Conn.Write([]byte(blockedResponse))
	c.linger()
	c.err = errBlocked
}

// logBlocked writes the access line of a request the guard answered 400 itself, with the fields
// the listeners' access logs have. remote is the client's address (host:port).
func (g *Guard) logBlocked(ctx context.Context, v *Verdict, remote, reason string) {
	source, _, _ := net.SplitHostPort(remote)
	g.logger().LogAttrs(ctx, slog.LevelInfo, "access",
		slog.String("listener", g.Listener),
		slog.String("method", clip(v.Method, 32)),
		slog.String("path", clip(v.Path, 256)),
		slog.Int("status", http.StatusBadRequest),
		slog.String("source_ip", source),
		slog.String("target", ""),
		slog.String("error_reason", reason),
		slog.String("classification", v.Class.String()),
		slog.String("classification_reason", v.Reason),
	)
}

// badBody ends a connection whose chunked body is malformed. The head was already handed to
// net/http, so no response can be written here: in monitor mode the bytes go on (net/http's
// chunked reader fails the request), otherwise the connection is closed.
func (c *conn) badBody(reason string) {
	c.g.logger().Warn("desync: malformed chunked body", "listener", c.g.Listener, "remote", c.key, "classification", Severe.String(), "classification_reason", reason, "mode", c.g.mode())
	if c.g.mode() == Monitor {
		c.state = stPassthrough
		return
	}
	c.err = errBlocked
	_ = c.Conn.Close()
}

// linger half-closes the connection and drains what the client still sends for a moment, so that
// the 400 reaches it instead of being lost to a reset.
func (c *conn) linger() {
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

// headParser reads a request head with net/http's own parser, through readers reused from head
// to head (Guard.parsers).
type headParser struct {
	src bytes.Reader
	br  *bufio.Reader
}

func (p *headParser) parse(head []byte) (*http.Request, error) {
	p.src.Reset(head)
	if p.br == nil {
		p.br = bufio.NewReader(&p.src)
	} else {
		p.br.Reset(&p.src)
	}
	return http.ReadRequest(p.br)
}
