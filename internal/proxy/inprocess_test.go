package proxy

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// handlerSaw is what a handler observed of its request.
type handlerSaw struct {
	Method, RequestURI, Path, RawPath, RawQuery, Host, Proto string
	Header                                                   http.Header
	ContentLength                                            int64
	TransferEncoding                                         []string
	Body                                                     string
	RemoteIP                                                 string
	LocalPort                                                string
	Close                                                    bool // the connection ends after this exchange
	// What the handler's context holds: a server's context has no deadline and none of the
	// caller's values (callerKey).
	CallerValue, Deadline bool
}

// callerKey is a context key of the caller's request, which a handler across a connection never
// sees.
type callerKey struct{}

// got is what the client read.
type got struct {
	StatusCode       int
	Status           string
	Header           http.Header
	ContentLength    int64
	TransferEncoding []string
	Body             string
	Trailer          http.Header
	BodyErr          bool
	Informational    []string // 1xx responses before the final one: "103 Link=[...]"
}

// parityCase is one exchange run twice: over a real loopback connection and through InProcess.
// Everything the handler sees and everything the client reads must be the same both ways.
type parityCase struct {
	name    string
	request func(base string) *http.Request
	handler http.HandlerFunc
}

func observeRequest(r *http.Request) handlerSaw {
	body, _ := io.ReadAll(r.Body)
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	var lport string
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		_, lport, _ = net.SplitHostPort(la.String())
	}
	_, deadline := r.Context().Deadline()
	return handlerSaw{
		CallerValue: r.Context().Value(callerKey{}) != nil, Deadline: deadline,
		Method: r.Method, RequestURI: r.RequestURI, Path: r.URL.Path, RawPath: r.URL.RawPath,
		RawQuery: r.URL.RawQuery, Host: r.Host, Proto: r.Proto, Header: r.Header.Clone(),
		ContentLength: r.ContentLength, TransferEncoding: r.TransferEncoding, Body: short(string(body)),
		RemoteIP: ip, LocalPort: lport, Close: r.Close,
	}
}

func mustRequest(t *testing.T, method, u string, body io.Reader) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// gzipHandler compresses its answer when the request accepts gzip.
func gzipHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		_, _ = io.WriteString(w, "plain body")
		return
	}
	w.Header().Set("Content-Encoding", "gzip")
	zw := gzip.NewWriter(w)
	_, _ = io.WriteString(zw, "compressed body")
	_ = zw.Close()
}

// testMaxHeaderBytes is the test listeners' MaxHeaderBytes, the one rampart's servers use.
const testMaxHeaderBytes = 64 << 10

// onlyReader hides a reader's type, so that net/http does not know its length: chunked.
type onlyReader struct{ io.Reader }

func parityCases(t *testing.T) []parityCase {
	big := strings.Repeat("0123456789abcdef", 8<<10) // 128 KB: streams
	return []parityCase{
		{
			name:    "small GET, length computed",
			request: func(b string) *http.Request { return mustRequest(t, "GET", b+"/items?x=1", nil) },
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"ok":true}`)
			},
		},
		{
			name:    "large GET streams chunked",
			request: func(b string) *http.Request { return mustRequest(t, "GET", b+"/big", nil) },
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				for i := 0; i < len(big); i += 1000 {
					_, _ = io.WriteString(w, big[i:min(i+1000, len(big))])
				}
			},
		},
		{
			name:    "declared length",
			request: func(b string) *http.Request { return mustRequest(t, "GET", b+"/len", nil) },
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "5000")
				w.Header().Set("Content-Type", "text/plain")
				_, _ = io.WriteString(w, big[:5000])
			},
		},
		{
			name:    "HEAD",
			request: func(b string) *http.Request { return mustRequest(t, "HEAD", b+"/head", nil) },
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "42")
				w.Header().Set("Content-Type", "text/plain")
			},
		},
		{
			name:    "204 drops a body",
			request: func(b string) *http.Request { return mustRequest(t, "DELETE", b+"/items/1", nil) },
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNoContent)
				_, _ = io.WriteString(w, "ignored")
			},
		},
		{
			name:    "304",
			request: func(b string) *http.Request { return mustRequest(t, "GET", b+"/cached", nil) },
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Etag", `"v1"`)
				w.WriteHeader(http.StatusNotModified)
			},
		},
		{
			name: "POST with a length",
			request: func(b string) *http.Request {
				r := mustRequest(t, "POST", b+"/items", strings.NewReader(`{"name":"x"}`))
				r.Header.Set("Content-Type", "application/json")
				r.Header.Set("X-Origin-Verify", "secret")
				return r
			},
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusCreated)
				_, _ = io.WriteString(w, "created")
			},
		},
		{
			name: "POST chunked",
			request: func(b string) *http.Request {
				return mustRequest(t, "POST", b+"/items", onlyReader{strings.NewReader(big[:10000])})
			},
			handler: func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") },
		},
		{
			name:    "POST without a body",
			request: func(b string) *http.Request { return mustRequest(t, "POST", b+"/empty", nil) },
			handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) },
		},
		{
			name: "encoded path, query, odd headers",
			request: func(b string) *http.Request {
				r := mustRequest(t, "GET", b+"/a%2Fb/c%20d?q=%20x&y", nil)
				r.Header["User-Agent"] = []string{""}
				r.Header["X-Spaced"] = []string{"  padded\t"}
				r.Header["X-Empty"] = []string{""}
				r.Header["X-Multi"] = []string{"a", "b"}
				r.Host = "api.example:8443"
				return r
			},
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header()["X-Multi"] = []string{"1", "2"}
				w.WriteHeader(http.StatusTeapot)
			},
		},
		{
			name:    "trailers after a streamed body",
			request: func(b string) *http.Request { return mustRequest(t, "GET", b+"/trailer", nil) },
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Trailer", "X-Checksum")
				_, _ = io.WriteString(w, big[:9000])
				w.Header().Set("X-Checksum", "abc")
				w.Header().Set(http.TrailerPrefix+"X-Late", "late")
			},
		},
		{
			name:    "trailers after a short body",
			request: func(b string) *http.Request { return mustRequest(t, "GET", b+"/trailer", nil) },
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Trailer", "X-Checksum")
				_, _ = io.WriteString(w, "short")
				w.Header().Set("X-Checksum", "abc")
			},
		},
		{
			name:    "header changed after WriteHeader is not sent",
			request: func(b string) *http.Request { return mustRequest(t, "GET", b+"/late", nil) },
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Early", "1")
				w.WriteHeader(http.StatusOK)
				w.Header().Set("X-Late", "2")
				_, _ = io.WriteString(w, "body")
			},
		},
		{
			name:    "declared length not reached",
			request: func(b string) *http.Request { return mustRequest(t, "GET", b+"/short", nil) },
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "10")
				_, _ = io.WriteString(w, "12345")
			},
		},
		{
			name: "non-canonical header keys are sent canonical, duplicates merged",
			request: func(b string) *http.Request {
				r := mustRequest(t, "GET", b+"/keys", nil)
				r.Header["x-origin-verify"] = []string{"token"}
				r.Header["x-dup"] = []string{"1"}
				r.Header["X-Dup"] = []string{"2"}
				return r
			},
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, r.Header.Get("X-Origin-Verify")+" "+strings.Join(r.Header.Values("X-Dup"), ","))
			},
		},
		{
			name:    "1xx before the response (103 Early Hints)",
			request: func(b string) *http.Request { return mustRequest(t, "GET", b+"/hints", nil) },
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Link", "</app.css>; rel=preload")
				w.WriteHeader(http.StatusEarlyHints)
				w.Header().Set("Content-Type", "text/plain")
				_, _ = io.WriteString(w, "final")
			},
		},
		{
			name: "GET with an empty chunked body is sent without one",
			request: func(b string) *http.Request {
				r := mustRequest(t, "GET", b+"/probe", onlyReader{strings.NewReader("")})
				r.ContentLength = -1 // as a server parses "Transfer-Encoding: chunked"
				return r
			},
			handler: func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") },
		},
		{
			name: "GET with a chunked body",
			request: func(b string) *http.Request {
				r := mustRequest(t, "GET", b+"/probe", onlyReader{strings.NewReader("abc")})
				r.ContentLength = -1
				return r
			},
			handler: func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") },
		},
		{
			name: "the caller's context values and deadline stay with the caller",
			request: func(b string) *http.Request {
				ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), callerKey{}, "gateway"), time.Minute)
				t.Cleanup(cancel)
				return mustRequest(t, "GET", b+"/ctx", nil).WithContext(ctx)
			},
			handler: func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") },
		},
		{
			name: "headers over the listener's limit",
			request: func(b string) *http.Request {
				r := mustRequest(t, "GET", b+"/huge", nil)
				r.Header.Set("X-Huge", strings.Repeat("h", testMaxHeaderBytes+8<<10))
				return r
			},
			handler: func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "reached the handler") },
		},
		{
			name: "headers under the listener's limit",
			request: func(b string) *http.Request {
				r := mustRequest(t, "GET", b+"/large", nil)
				r.Header.Set("X-Large", strings.Repeat("h", testMaxHeaderBytes-1<<10))
				return r
			},
			handler: func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") },
		},
		{
			name:    "HEAD whose handler writes a body",
			request: func(b string) *http.Request { return mustRequest(t, "HEAD", b+"/head-body", nil) },
			handler: func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "<html>hello</html>") },
		},
		{
			name:    "HEAD whose handler writes a long body",
			request: func(b string) *http.Request { return mustRequest(t, "HEAD", b+"/head-long", nil) },
			handler: func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, big[:5000]) },
		},
		{
			name:    "gzip asked for and undone, as the client's transport does",
			request: func(b string) *http.Request { return mustRequest(t, "GET", b+"/gzip", nil) },
			handler: gzipHandler,
		},
		{
			name: "gzip the caller asked for itself stays",
			request: func(b string) *http.Request {
				r := mustRequest(t, "GET", b+"/gzip", nil)
				r.Header.Set("Accept-Encoding", "gzip")
				return r
			},
			handler: gzipHandler,
		},
		{
			name: "no gzip asked for with a Range",
			request: func(b string) *http.Request {
				r := mustRequest(t, "GET", b+"/gzip", nil)
				r.Header.Set("Range", "bytes=0-3")
				return r
			},
			handler: gzipHandler,
		},
		{
			name:    "response header names and values as a server writes them",
			request: func(b string) *http.Request { return mustRequest(t, "GET", b+"/odd-response", nil) },
			handler: func(w http.ResponseWriter, r *http.Request) {
				h := w.Header()
				h["X-Split"] = []string{"a\r\nInjected: x", " padded \t"}
				h["x-lower"] = []string{"1"}
				h["X-Lower"] = []string{"2"}
				h["Bad Name"] = []string{"dropped"}
				_, _ = io.WriteString(w, "ok")
			},
		},
		{
			name:    "abort after the header",
			request: func(b string) *http.Request { return mustRequest(t, "GET", b+"/abort", nil) },
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, big[:3000])
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler)
			},
		},
	}
}

// short keeps failure messages readable: the length, a hash and the first bytes of a long body.
func short(s string) string {
	if len(s) <= 64 {
		return s
	}
	h := fnv.New64a()
	_, _ = io.WriteString(h, s)
	return fmt.Sprintf("%d bytes, fnv %x, %q…", len(s), h.Sum64(), s[:32])
}

// roundTrip runs one exchange through rt and records both sides.
func roundTrip(t *testing.T, rt http.RoundTripper, req *http.Request, record *handlerSaw) (got, error) {
	t.Helper()
	var mu sync.Mutex
	var info []string
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			mu.Lock()
			defer mu.Unlock()
			delete(h, "Date")
			info = append(info, fmt.Sprint(code, " ", h))
			return nil
		},
	}))
	res, err := rt.RoundTrip(req)
	if err != nil {
		return got{}, err
	}
	defer res.Body.Close()
	body, rerr := io.ReadAll(res.Body)
	h := res.Header.Clone()
	h.Del("Date") // the server's clock
	g := got{StatusCode: res.StatusCode, Status: res.Status, Header: h, ContentLength: res.ContentLength,
		TransferEncoding: res.TransferEncoding, Body: short(string(body)), Trailer: res.Trailer, BodyErr: rerr != nil}
	if len(g.Trailer) == 0 {
		g.Trailer = nil
	}
	mu.Lock()
	g.Informational = info
	mu.Unlock()
	return g, nil
}

func TestInProcessMatchesAConnection(t *testing.T) {
	for _, tc := range append(parityCases(t), edgeParityCases(t)...) {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var record handlerSaw
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s := observeRequest(r)
				mu.Lock()
				record = s
				mu.Unlock()
				tc.handler(w, r)
			})
			srv := httptest.NewUnstartedServer(h)
			srv.Config.MaxHeaderBytes = testMaxHeaderBytes
			srv.Start()
			defer srv.Close()
			_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

			tcp := &http.Transport{} // as the gateway's: compression asked for and undone
			defer tcp.CloseIdleConnections()
			overTCP, errTCP := roundTrip(t, tcp, tc.request(srv.URL), &record)
			mu.Lock()
			seenTCP := record
			mu.Unlock()

			local := LocalHandlers{MaxHeaderBytes: testMaxHeaderBytes}
			if err := local.Add(srv.Listener.Addr().String(), h); err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(srv.URL)
			// The network transport InProcess stands in for, whose settings it follows; a
			// request that reaches it fails the test.
			next := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) {
				t.Errorf("a request went to the network")
				return nil, errors.New("not expected")
			}}
			rt := local.Transport(u, next, nil)
			if _, ok := rt.(*InProcess); !ok {
				t.Fatalf("Transport(%s) = %T, want *InProcess", srv.URL, rt)
			}
			inProc, errIn := roundTrip(t, rt, tc.request(srv.URL), &record)
			mu.Lock()
			seenIn := record
			mu.Unlock()

			if (errTCP != nil) != (errIn != nil) {
				t.Fatalf("errors differ: over TCP %v, in-process %v", errTCP, errIn)
			}
			if seenTCP.Method != "" && seenIn.LocalPort != port { // the handler was reached
				t.Errorf("in-process LocalAddr port = %q, want %q", seenIn.LocalPort, port)
			}
			if !reflect.DeepEqual(seenTCP, seenIn) {
				t.Errorf("the handler saw different requests:\nover TCP:   %+v\nin-process: %+v", seenTCP, seenIn)
			}
			if !reflect.DeepEqual(overTCP, inProc) {
				t.Errorf("the client read different responses:\nover TCP:   %+v\nin-process: %+v", overTCP, inProc)
			}
		})
	}
}

// failingTransport fails the test when a request that InProcess should serve reaches it.
type failingTransport struct{ t *testing.T }

func (f failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.t.Errorf("request %s %s went to the network", r.Method, r.URL)
	return nil, errors.New("not expected")
}

// recordingTransport answers 599 and counts the requests that reach it.
type recordingTransport struct {
	mu sync.Mutex
	n  int
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.n++
	rt.mu.Unlock()
	return &http.Response{StatusCode: 599, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
}

func TestInProcessLeavesUpgradesAndTrailersToTheNetwork(t *testing.T) {
	next := &recordingTransport{}
	ip := &InProcess{Handler: http.NotFoundHandler(), Next: next}
	up := mustRequest(t, "GET", "http://127.0.0.1:1/ws", nil)
	up.Header.Set("Connection", "Upgrade")
	up.Header.Set("Upgrade", "websocket")
	tr := mustRequest(t, "POST", "http://127.0.0.1:1/t", strings.NewReader("x"))
	tr.Trailer = http.Header{"X-Sum": nil}
	for _, r := range []*http.Request{up, tr} {
		res, err := ip.RoundTrip(r)
		if err != nil || res.StatusCode != 599 {
			t.Fatalf("%s: got %v, %v; want the network's 599", r.URL, res, err)
		}
	}
	if next.n != 2 {
		t.Fatalf("network got %d requests, want 2", next.n)
	}
	plain := mustRequest(t, "GET", "http://127.0.0.1:1/plain", nil)
	res, err := ip.RoundTrip(plain)
	if err != nil || res.StatusCode != http.StatusNotFound {
		t.Fatalf("plain request: %v, %v; want the handler's 404", res, err)
	}
	_ = res.Body.Close()
}

func TestInProcessStreamsBeforeTheHandlerEnds(t *testing.T) {
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-release
		_, _ = io.WriteString(w, "data: second\n\n")
	})
	ip := &InProcess{Handler: h, Next: failingTransport{t}}
	res, err := ip.RoundTrip(mustRequest(t, "GET", "http://127.0.0.1:1/events", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	buf := make([]byte, 64)
	n, err := res.Body.Read(buf)
	if err != nil || string(buf[:n]) != "data: first\n\n" {
		t.Fatalf("first read = %q, %v; want the first event while the handler still runs", buf[:n], err)
	}
	close(release)
	rest, err := io.ReadAll(res.Body)
	if err != nil || string(rest) != "data: second\n\n" {
		t.Fatalf("rest = %q, %v", rest, err)
	}
}

func TestInProcessCancellation(t *testing.T) {
	t.Run("caller gives up before the header", func(t *testing.T) {
		handlerDone := make(chan error, 1)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
			handlerDone <- r.Context().Err()
		})
		ip := &InProcess{Handler: h, Next: failingTransport{t}}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req := mustRequest(t, "GET", "http://127.0.0.1:1/slow", nil).WithContext(ctx)
		if _, err := ip.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("RoundTrip error = %v, want the deadline", err)
		}
		select {
		case err := <-handlerDone:
			if err == nil {
				t.Fatal("handler context not done")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("handler never saw its context end")
		}
	})
	t.Run("caller closes a streaming body", func(t *testing.T) {
		writeErr := make(chan error, 1)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			chunk := make([]byte, 4096)
			for {
				if _, err := w.Write(chunk); err != nil {
					writeErr <- err
					return
				}
			}
		})
		ip := &InProcess{Handler: h, Next: failingTransport{t}}
		res, err := ip.RoundTrip(mustRequest(t, "GET", "http://127.0.0.1:1/endless", nil))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = res.Body.Read(make([]byte, 100))
		_ = res.Body.Close()
		select {
		case err := <-writeErr:
			if err == nil {
				t.Fatal("write succeeded after close")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("handler kept writing after the body was closed")
		}
	})
	t.Run("panic before the header", func(t *testing.T) {
		ip := &InProcess{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }),
			Next: failingTransport{t}, Logger: slog.New(slog.DiscardHandler)}
		if _, err := ip.RoundTrip(mustRequest(t, "GET", "http://127.0.0.1:1/p", nil)); !errors.Is(err, errHandlerPanicked) {
			t.Fatalf("error = %v, want errHandlerPanicked", err)
		}
	})
}

func TestLocalHandlersAddresses(t *testing.T) {
	h := http.NotFoundHandler()
	var l LocalHandlers
	for _, listen := range []string{"127.0.0.2:9111", ":9112", "0.0.0.0:9113", "localhost:9114", "[::1]:9115", "lb.internal:9116"} {
		if err := l.Add(listen, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Add("127.0.0.1:http", h); err == nil {
		t.Fatal("a service name accepted as a port")
	}
	n := l.Len()
	if err := l.Add("127.0.0.1:0", h); err != nil || l.Len() != n {
		t.Fatalf("port 0: err %v, %d addresses registered, want none", err, l.Len()-n)
	}
	cases := []struct {
		url    string
		local  bool
		remote string
	}{
		{"http://127.0.0.2:9111/x", true, "127.0.0.1:0"},
		{"http://127.0.0.1:9111/x", false, ""},
		{"https://127.0.0.2:9111/x", false, ""},
		{"http://127.0.0.1:9112", true, "127.0.0.1:0"},
		{"http://LOCALHOST:9112", true, "127.0.0.1:0"},
		{"http://[::1]:9112", true, "[::1]:0"},
		{"http://127.0.0.1:9113", true, "127.0.0.1:0"},
		{"http://[::1]:9113", false, ""},
		{"http://localhost:9114", true, "127.0.0.1:0"},
		{"http://127.0.0.1:9114", true, "127.0.0.1:0"},
		{"http://[::1]:9115/", true, "[::1]:0"},
		{"http://lb.internal:9116/", false, ""},
		{"http://127.0.0.2/", false, ""},
	}
	for _, c := range cases {
		u, _ := url.Parse(c.url)
		rt := l.Transport(u, http.DefaultTransport, nil)
		ip, ok := rt.(*InProcess)
		if ok != c.local {
			t.Errorf("%s: in-process = %v, want %v", c.url, ok, c.local)
			continue
		}
		if ok && ip.RemoteAddr != c.remote {
			t.Errorf("%s: RemoteAddr = %q, want %q", c.url, ip.RemoteAddr, c.remote)
		}
	}
}

// failAfter is a request body that fails after n bytes, as a client body over its size limit
// (http.MaxBytesReader) or cut short does.
type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	k := min(len(p), f.n)
	for i := range p[:k] {
		p[i] = 'a'
	}
	f.n -= k
	return k, nil
}

// A body that fails while the handler reads it fails the round trip with that error, as the
// client's write of the request would over a connection, whatever the handler answers: the
// caller's proxy must see the 413 or 400 it owes its client, not a response to half a request.
func TestInProcessRequestBodyErrorFailsTheRoundTrip(t *testing.T) {
	tooLarge := &http.MaxBytesError{Limit: 100}
	for _, chunked := range []bool{false, true} {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body) // the error is the handler's to ignore
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, strings.Repeat("x", 5000))
		})
		ip := &InProcess{Handler: h, Next: failingTransport{t}}
		req := mustRequest(t, "POST", "http://127.0.0.1:1/upload", io.NopCloser(&failAfter{n: 100, err: tooLarge}))
		req.ContentLength = 1000
		if chunked {
			req.ContentLength = -1
		}
		res, err := ip.RoundTrip(req)
		if res != nil {
			_ = res.Body.Close()
		}
		var mbe *http.MaxBytesError
		if !errors.As(err, &mbe) {
			t.Fatalf("chunked=%v: RoundTrip = %v, %v; want the body's MaxBytesError", chunked, res, err)
		}
	}
}
