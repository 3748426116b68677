package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

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
	logger *slog.Logger
	// cancelCtx ends the handler's context; stopAbort unregisters abort from the caller's.
	cancelCtx context.CancelFunc
	stopAbort func() bool
	// aborted is the caller's context's cause once abort ran; pr is the response pipe's reader
	// once there is one. abort and commit each look at what the other stored.
	aborted atomic.Pointer[error]
	pr      atomic.Pointer[io.PipeReader]
	// relaying is held while a 1xx is handed to the caller's trace, which writes it to its own
	// client: RoundTrip takes it before it returns the caller's cancellation, so that the
	// caller's error response never races with a 1xx.
	relaying sync.Mutex

	header      http.Header // the handler's, live
	sent        http.Header // header as of WriteHeader: what the response carries
	status      int
	committed   bool
	bodyAllowed bool   // by the status: not for 204 and 304
	isHead      bool   // the body is computed (length, type) and dropped, as for a HEAD on a connection
	declared    int64  // Content-Length the handler declared, -1 when none
	written     int64  // what the handler tried to write, as net/http counts it: refused writes too
	accepted    int64  // what it wrote: the body the caller gets
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
			ex.relaying.Lock()
			defer ex.relaying.Unlock()
			if ex.aborted.Load() != nil {
				return // the caller has gone, or is going with an error of its own
			}
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
	if len(p) == 0 {
		return 0, nil
	}
	if !ex.bodyAllowed {
		return 0, http.ErrBodyNotAllowed
	}
	// A write over the declared length is refused and still counted, as net/http's server
	// does: every later write is refused too.
	ex.written += int64(len(p))
	if ex.declared >= 0 && ex.written > ex.declared {
		return 0, http.ErrContentLength
	}
	ex.accepted += int64(len(p))
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

// EnableFullDuplex is http.ResponseController's: the handler may read the request body while it
// writes its response. In process it always can (the body is the caller's stream), so it says yes
// as net/http's server does.
func (ex *exchange) EnableFullDuplex() error { return nil }

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
		if ex.declared >= 0 && ex.accepted < ex.declared {
			body.err = io.ErrUnexpectedEOF // shorter than declared, as a client would see it
		}
		res.Body = body
		ex.trailers(res)
	default:
		pr, pw := io.Pipe()
		ex.pw = pw
		res.Body = &pipeBody{pr: pr, ex: ex}
		ex.pr.Store(pr)
		if err := ex.aborted.Load(); err != nil {
			_ = pr.CloseWithError(*err)
		}
		if res.ContentLength < 0 {
			res.TransferEncoding = []string{"chunked"}
		}
	}
	ex.res = res
	close(ex.head)
}

// release ends the exchange on the handler's side: its context is done, and the caller's no
// longer matters to it.
func (ex *exchange) release() {
	ex.stopAbort()
	ex.cancelCtx()
}

// abort is what the caller's context ending does to an exchange still running, as a client
// closing its connection does: the handler's context ends, a response body still being written
// fails for both sides (its reader with the caller's context's cause, as http.Transport's does),
// and the request body is closed, which ends a handler's read that waits for more of it.
// Closing a server's request body waits for a read in progress, so abort runs on its own
// goroutine (context.AfterFunc's, or RoundTrip's).
func (ex *exchange) abort() {
	if ex.markAborted() {
		ex.finishAbort()
	}
}

// markAborted records the caller's context's cause; false when abort has already begun.
func (ex *exchange) markAborted() bool {
	err := context.Cause(ex.out.Context())
	if err == nil {
		err = context.Canceled
	}
	return ex.aborted.CompareAndSwap(nil, &err)
}

// finishAbort is the rest of abort, once markAborted said so.
func (ex *exchange) finishAbort() {
	err := *ex.aborted.Load()
	ex.cancelCtx()
	if pr := ex.pr.Load(); pr != nil {
		_ = pr.CloseWithError(err)
	}
	if ex.out.Body != nil {
		_ = ex.out.Body.Close()
	}
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
	defer ex.release() // as net/http does once a handler returns
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
				ex.release()
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
		if ex.bodyAllowed && ex.declared >= 0 && ex.accepted < ex.declared {
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
	b.ex.release()
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
	if err != nil && err != io.EOF {
		if cause := b.ex.aborted.Load(); cause != nil {
			err = *cause // the pipe's reader says only io.ErrClosedPipe
		}
	}
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
	b.ex.release()
	return b.pr.CloseWithError(errors.New("in-process response body closed"))
}

// Compile-time checks.
var (
	_ http.RoundTripper = (*InProcess)(nil)
	_ http.Flusher      = (*exchange)(nil)
)
