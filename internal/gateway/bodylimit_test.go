package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// bodyBackend records, for every request it receives, how much body it read and whether the
// body ended cleanly (a complete body) or with an error (a broken one).
type bodyBackend struct {
	mu       sync.Mutex
	started  int
	complete []int // lengths of bodies read to a clean EOF
	broken   int
}

func (b *bodyBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.started++
	b.mu.Unlock()
	n, err := io.Copy(io.Discard, r.Body)
	b.mu.Lock()
	if err != nil {
		b.broken++
	} else {
		b.complete = append(b.complete, int(n))
	}
	b.mu.Unlock()
	if err == nil {
		fmt.Fprintf(w, "got %d", n)
	}
}

// snapshot returns how many requests started, the complete bodies' lengths, and the broken ones.
func (b *bodyBackend) snapshot() (int, []int, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.started, append([]int(nil), b.complete...), b.broken
}

const bodyLimitYAML = `
gateways:
  - name: api
    listen: 127.0.0.1:0
    max_body_bytes: 5000
    cors: {allow_origins: ["http://localhost:3000"]}
    routes:
      - {path: /small, methods: [POST], max_body_bytes: 1000, integration: {url: "%BACKEND%"}}
      - {path: /big, methods: [POST], integration: {url: "%BACKEND%"}}
`

func newBodyLimitGateway(t *testing.T) (gwAddr string, backend *bodyBackend) {
	t.Helper()
	backend = &bodyBackend{}
	bs := httptest.NewServer(backend)
	t.Cleanup(bs.Close)
	gw, err := New(parseGateway(t, t.TempDir(), bs.URL, bodyLimitYAML), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(func() { srv.Close(); gw.Close() })
	return srv.Listener.Addr().String(), backend
}

// rawExchange writes raw request bytes on a fresh connection and reads one response.
func rawExchange(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func want413(t *testing.T, res *http.Response, body string) {
	t.Helper()
	var m struct{ Message string }
	if res.StatusCode != 413 || json.Unmarshal([]byte(body), &m) != nil || m.Message != "Request Entity Too Large" {
		t.Fatalf("got %d %q, want 413 {\"message\":\"Request Entity Too Large\"}", res.StatusCode, body)
	}
	if res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("Content-Type %q", res.Header.Get("Content-Type"))
	}
	if res.Header.Get("Access-Control-Allow-Origin") != allowedOrigin {
		t.Fatalf("413 for an allowed origin lacks CORS headers: %v", res.Header)
	}
}

func chunked(sizes ...int) string {
	var b strings.Builder
	for _, n := range sizes {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", n, strings.Repeat("x", n))
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

func TestBodyLimitContentLength(t *testing.T) {
	addr, backend := newBodyLimitGateway(t)
	head := func(path string, n int) string {
		return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: api\r\nOrigin: %s\r\nContent-Length: %d\r\n\r\n", path, allowedOrigin, n)
	}
	// Declared sizes over the route's limit (1000) and the gateway's (5000): the body is never
	// sent, so an answer proves the gateway did not wait to read it.
	for _, tc := range []struct {
		path string
		n    int
	}{{"/small", 1001}, {"/small", 4000}, {"/big", 5001}, {"/big", 1 << 30}} {
		res, body := rawExchange(t, addr, head(tc.path, tc.n))
		want413(t, res, body)
		if !res.Close {
			t.Errorf("%s %d: connection kept open after an unread body", tc.path, tc.n)
		}
	}
	if started, _, _ := backend.snapshot(); started != 0 {
		t.Fatalf("backend saw %d requests over the limit", started)
	}
	// At the limit, the whole body reaches the backend.
	for _, tc := range []struct {
		path string
		n    int
	}{{"/small", 1000}, {"/big", 4000}, {"/big", 5000}} {
		res, body := rawExchange(t, addr, head(tc.path, tc.n)+strings.Repeat("x", tc.n))
		if res.StatusCode != 200 || body != fmt.Sprintf("got %d", tc.n) {
			t.Fatalf("%s %d bytes: %d %q", tc.path, tc.n, res.StatusCode, body)
		}
	}
}

func TestBodyLimitChunked(t *testing.T) {
	addr, backend := newBodyLimitGateway(t)
	send := func(path, body string) (*http.Response, string) {
		return rawExchange(t, addr, fmt.Sprintf("POST %s HTTP/1.1\r\nHost: api\r\nOrigin: %s\r\nTransfer-Encoding: chunked\r\n\r\n%s", path, allowedOrigin, body))
	}
	res, body := send("/small", chunked(600, 600, 600))
	want413(t, res, body)
	res, body = send("/big", chunked(4000, 1001))
	want413(t, res, body)

	// Under the limit, a chunked body passes whole.
	res, body = send("/small", chunked(500, 500))
	if res.StatusCode != 200 || body != "got 1000" {
		t.Fatalf("chunked 1000 bytes: %d %q", res.StatusCode, body)
	}
	// Whatever the backend saw of the refused bodies ended in an error, never in a clean EOF.
	waitFor(t, func() bool {
		started, complete, broken := backend.snapshot()
		return started == len(complete)+broken
	})
	if _, complete, _ := backend.snapshot(); len(complete) != 1 || complete[0] != 1000 {
		t.Fatalf("backend read complete bodies of %v bytes, want only the 1000-byte one", complete)
	}
}
