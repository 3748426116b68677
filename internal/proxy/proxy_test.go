package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// seen is what a backend received.
type seen struct {
	header     http.Header
	remoteAddr string
}

func backend(t *testing.T, delay time.Duration) (*httptest.Server, chan seen) {
	t.Helper()
	ch := make(chan seen, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch <- seen{r.Header.Clone(), r.RemoteAddr}
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func front(t *testing.T, target string, appendXFF bool, timeout time.Duration, egress string) *httptest.Server {
	t.Helper()
	u, _ := url.Parse(target)
	tr, err := NewTransport(egress)
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{Transport: tr, Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		SetForwarded(pr, appendXFF)
	}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		p.ServeHTTP(w, r.WithContext(ctx))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, headers ...string) (*http.Response, map[string]string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &body)
	return resp, body
}

func TestForwardedHeaders(t *testing.T) {
	for _, tc := range []struct {
		appendXFF bool
		want      string
	}{
		{false, "127.0.0.1"},             // the public edge starts afresh
		{true, "203.0.113.9, 127.0.0.1"}, // behind a gateway: append
	} {
		be, ch := backend(t, 0)
		fr := front(t, be.URL, tc.appendXFF, time.Second, "")
		resp, _ := get(t, fr.URL+"/x", "X-Forwarded-For", "203.0.113.9")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		got := <-ch
		if xff := got.header.Get("X-Forwarded-For"); xff != tc.want {
			t.Errorf("append=%v: X-Forwarded-For = %q, want %q", tc.appendXFF, xff, tc.want)
		}
		_, port, _ := net.SplitHostPort(fr.Listener.Addr().String())
		if got.header.Get("X-Forwarded-Port") != port || got.header.Get("X-Forwarded-Proto") != "http" {
			t.Errorf("X-Forwarded-Port/Proto = %q/%q, want %s/http", got.header.Get("X-Forwarded-Port"), got.header.Get("X-Forwarded-Proto"), port)
		}
	}
}

func TestErrorsAreJSONWithTheRightStatus(t *testing.T) {
	slow, _ := backend(t, 5*time.Second)
	resp, body := get(t, front(t, slow.URL, false, 100*time.Millisecond, "").URL)
	if resp.StatusCode != http.StatusGatewayTimeout || body["message"] == "" || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("timeout: %d %v %q", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	resp, body = get(t, front(t, dead, false, time.Second, "").URL)
	if resp.StatusCode != http.StatusBadGateway || body["message"] == "" {
		t.Errorf("unreachable: %d %v", resp.StatusCode, body)
	}
}

func TestEgressSourceAddress(t *testing.T) {
	be, ch := backend(t, 0)
	fr := front(t, be.URL, false, time.Second, "127.0.0.3")
	if resp, _ := get(t, fr.URL); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if host, _, _ := net.SplitHostPort((<-ch).remoteAddr); host != "127.0.0.3" {
		t.Fatalf("backend saw the connection from %s, want 127.0.0.3", host)
	}
	if _, err := NewTransport("not-an-ip"); err == nil {
		t.Fatal("want an error for a bad egress")
	}
}

// TestStreamingResponsesAreFlushed: server-sent events reach the client as they are written, not
// when the backend finishes, although the proxy does not flush after every write in general.
func TestStreamingResponsesAreFlushed(t *testing.T) {
	finish := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-finish
	}))
	defer be.Close()
	defer close(finish)
	fr := front(t, be.URL, false, 10*time.Second, "")
	resp, err := http.Get(fr.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 64)
		n, _ := io.ReadAtLeast(resp.Body, buf, len("data: first\n\n"))
		got <- string(buf[:n])
	}()
	select {
	case s := <-got:
		if s != "data: first\n\n" {
			t.Fatalf("got %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first event did not arrive while the stream was open")
	}
}

// TestH2CUpgradeStripped: an h2c upgrade never reaches the backend (it would open an HTTP/2 tunnel
// past the edge's rules), while a WebSocket upgrade still does.
func TestH2CUpgradeStripped(t *testing.T) {
	for _, tc := range []struct {
		upgrade     string
		wantUpgrade string
	}{
		{"h2c", ""},
		{"H2C ", ""},
		{"websocket, h2c", ""},
		{"websocket", "websocket"},
	} {
		be, ch := backend(t, 0)
		fr := front(t, be.URL, false, time.Second, "")
		resp, _ := get(t, fr.URL, "Connection", "Upgrade, HTTP2-Settings", "Upgrade", tc.upgrade, "HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
		if resp.StatusCode != 200 {
			t.Fatalf("Upgrade %q: status %d", tc.upgrade, resp.StatusCode)
		}
		got := <-ch
		if up := got.header.Get("Upgrade"); up != tc.wantUpgrade {
			t.Errorf("Upgrade %q: backend saw Upgrade %q, want %q", tc.upgrade, up, tc.wantUpgrade)
		}
		if got.header.Get("Http2-Settings") != "" {
			t.Errorf("Upgrade %q: backend saw HTTP2-Settings", tc.upgrade)
		}
	}
}

func TestClassify(t *testing.T) {
	timeout := &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"malformed chunked body", &ClientBodyError{Err: errors.New("invalid byte in chunk length")}, 400},
		{"body over the limit", &ClientBodyError{Err: &http.MaxBytesError{Limit: 10}}, 413},
		{"slow body", &ClientBodyError{Err: timeout}, 408},
		{"backend timeout", context.DeadlineExceeded, 504},
		{"backend read timeout", timeout, 504},
		{"refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, 502},
		{"wrapped body error", fmt.Errorf("write: %w", &ClientBodyError{Err: io.ErrUnexpectedEOF}), 400},
	} {
		if got, _ := Classify(nil, tc.err); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestMalformedClientBodyIs400: a chunked body that breaks off mid-way is the client's fault.
func TestMalformedClientBodyIs400(t *testing.T) {
	be, _ := backend(t, 0)
	fr := front(t, be.URL, false, 5*time.Second, "")
	c, err := net.Dial("tcp", fr.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
}

// TestUnderscoreForwardingHeadersDropped: X_Forwarded_For reaches CGI-style backends as
// HTTP_X_FORWARDED_FOR, so a client must not be able to smuggle one past the proxy.
func TestUnderscoreForwardingHeadersDropped(t *testing.T) {
	be, ch := backend(t, 0)
	fr := front(t, be.URL, false, time.Second, "")
	c, err := net.Dial("tcp", fr.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: 10.9.9.9\r\nx_real_ip: 10.9.9.9\r\nX_Other: kept\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := <-ch
	for name := range got.header {
		if strings.EqualFold(strings.ReplaceAll(name, "_", "-"), "X-Forwarded-For") && name != "X-Forwarded-For" || strings.EqualFold(name, "X_real_ip") {
			t.Errorf("backend got %s: %v", name, got.header[name])
		}
	}
	if got.header.Get("X-Forwarded-For") != "127.0.0.1" || got.header.Get("X_other") != "kept" {
		t.Errorf("backend headers: %v", got.header)
	}
}
