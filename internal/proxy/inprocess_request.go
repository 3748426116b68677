package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

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
	// The client writes "Connection: close" for Close (unless the header says it already), and
	// the server reads the token back as Close.
	if httpguts.HeaderValuesContainsToken(h["Connection"], "close") {
		in.Close = true
	} else if req.Close {
		h["Connection"] = append(h["Connection"], "close")
		in.Close = true
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
	p.mu.Unlock()
	close(p.done)
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

// Close closes the body. While the probe's read is still blocked it does so on a goroutine of its
// own, as http.Transport closes a request body that its writer may still be reading: that ends
// the read of a body such as a pipe, while closing a server's request body waits for the read in
// progress, which must not hold the handler.
func (p *probedBody) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if !p.probed {
		go func() { _ = p.rc.Close() }()
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
