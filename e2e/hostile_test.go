package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawExchange writes raw bytes to addr and reads every response the server sends until it closes
// the connection or goes quiet for a second. It returns the status codes in order.
func rawExchange(t *testing.T, addr string, raw string) ([]int, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		return nil, err
	}
	var statuses []int
	br := bufio.NewReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return statuses, nil
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
}

// TestHostileInput sends malformed and adversarial requests as raw bytes to the gateway and to
// the load balancer of the default topology. Each case has the statuses it must get; afterwards
// the process must still be alive, and the app must have seen only the marked requests that were
// meant to reach it.
func TestHostileInput(t *testing.T) {
	portsFree(t, defaultAddrs...)
	dir := t.TempDir()
	p := start(t, dir, "run")
	waitHTTP(t, p, gatewayURL+"/items")
	key := currentKey(t, dir)

	const gw, lb = "127.0.0.1:8080", "127.0.0.1:8081"
	bigHeaders := strings.Repeat("X-Filler: 0123456789\r\n", 10000)
	longURI := "/items/hostile-longuri?" + strings.Repeat("a", 100*1024)
	cases := []struct {
		name  string
		addr  string
		raw   string
		want  []int // statuses, in order; nil means the server must answer nothing and close
		reach bool  // whether the marked path must reach the app
	}{
		{"header block over the limit", gw, "GET /items/hostile-1 HTTP/1.1\r\nHost: x\r\n" + bigHeaders + "\r\n", []int{431}, false},
		{"100 KB URI", gw, "GET " + longURI + " HTTP/1.1\r\nHost: x\r\n\r\n", []int{431}, false},
		{"body over the limit, declared", gw, "POST /items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20000000\r\n\r\n{", []int{413}, false},
		{"invalid header name", gw, "GET /items/hostile-2 HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", []int{400}, false},
		{"NUL in a header value", gw, "GET /items/hostile-3 HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", []int{400}, false},
		{"bare CR in a header value", gw, "GET /items/hostile-4 HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", []int{400}, false},
		{"duplicate Host", gw, "GET /items/hostile-5 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", []int{400}, false},
		{"HTTP/0.9", gw, "GET /items/hostile-6\r\n\r\n", []int{400}, false},
		{"HTTP/1.0 without Host", gw, "GET /items/hostile-7 HTTP/1.0\r\n\r\n", []int{404}, true},
		{"absolute-form URI is routed by its path", gw, "GET http://evil.example/items/hostile-8 HTTP/1.1\r\nHost: evil.example\r\n\r\n", []int{404}, true},
		// The gateway has no server-wide OPTIONS: "*" is not a route path.
		{"asterisk-form OPTIONS", gw, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}, false},
		{"asterisk-form GET", gw, "GET * HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}, false},
		{"pipelined requests answered in order", gw, "GET /items/hostile-9 HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /items/hostile-10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", []int{404, 404, 404}, true},
		{"two different Content-Lengths", gw, "POST /items HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello", []int{400}, false},
		// The gateway's listeners carry the desync guard (defensive): an obfuscated
		// Transfer-Encoding is severe → 400 before net/http sees it; a malformed chunk size is
		// found while the handler may already be answering, so the guard closes the connection
		// rather than write a second response into it.
		{"obfuscated Transfer-Encoding", gw, "POST /items HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", []int{400}, false},
		{"bad chunk size", gw, "POST /items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", nil, false},
		{"whitespace before the colon", gw, "GET /items/hostile-11 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n", []int{400}, false},
		{"load balancer: invalid header name", lb, "GET /items/hostile-12 HTTP/1.1\r\nHost: x\r\nX-Origin-Verify: " + key + "\r\nBad Name: v\r\n\r\n", []int{400}, false},
		// Desync mitigation (defensive): an ambiguous request is served, then the connection is
		// closed, so the request hidden behind it is never read.
		{"load balancer: Content-Length and Transfer-Encoding", lb, "POST /items HTTP/1.1\r\nHost: x\r\nX-Origin-Verify: " + key + "\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /items/hostile-smuggled-2 HTTP/1.1\r\nHost: x\r\nX-Origin-Verify: " + key + "\r\n\r\n", []int{400}, false},
		{"load balancer: two Content-Lengths", lb, "POST /items HTTP/1.1\r\nHost: x\r\nX-Origin-Verify: " + key + "\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello", []int{400}, false},
		{"load balancer: header block over the limit", lb, "GET /items/hostile-13 HTTP/1.1\r\nHost: x\r\n" + bigHeaders + "\r\n", []int{431}, false},
		{"load balancer: pipelined, no key", lb, "GET /items/hostile-14 HTTP/1.1\r\nHost: x\r\n\r\nGET /items/hostile-15 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", []int{403, 403}, false},
	}
	for _, tc := range cases {
		got, err := rawExchange(t, tc.addr, tc.raw)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: statuses %v, want %v", tc.name, got, tc.want)
		}
	}

	// h2c: the upgrade is stripped, the request itself is served as HTTP/1.1.
	r := do(t, "GET", gatewayURL+"/whoami", "", "Connection", "Upgrade, HTTP2-Settings", "Upgrade", "h2c", "HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
	if r.status != 200 || strings.Contains(strings.ToLower(r.body), "h2c") || strings.Contains(strings.ToLower(r.body), "http2-settings") {
		t.Errorf("h2c upgrade: status %d, app saw %s", r.status, r.body)
	}

	// Slowloris: a header block that never ends is cut off by the header timeout, not held forever.
	t.Run("slowloris", func(t *testing.T) {
		c, err := net.Dial("tcp", gw)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /items HTTP/1.1\r\nHost: x\r\n")
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err = io.ReadAll(c)
		if err != nil {
			t.Fatalf("connection not closed by the server within 30s: %v", err)
		}
		t.Logf("slow header block closed after %v", time.Since(start).Round(100*time.Millisecond))
	})

	// The process survived everything, and the app saw exactly the requests meant to reach it.
	if r := do(t, "GET", gatewayURL+"/items", ""); r.status != 200 {
		t.Fatalf("after the hostile input: status %d", r.status)
	}
	select {
	case <-p.done:
		t.Fatalf("rampart exited: %v\n%s", p.exitErr, p.output())
	default:
	}
	appLog := appLines(p.stderr.String())
	for _, tc := range cases {
		for _, marker := range markers(tc.raw) {
			if reached := strings.Contains(appLog, marker+`"`); reached != tc.reach {
				t.Errorf("%s: %s reached the app: %v, want %v", tc.name, marker, reached, tc.reach)
			}
		}
	}
}

// markers returns the /items/hostile-N paths a raw request names.
func markers(raw string) []string {
	var out []string
	for _, f := range strings.Fields(raw) {
		if i := strings.Index(f, "/items/hostile-"); i >= 0 {
			m := f[i:]
			if j := strings.IndexAny(m, "? "); j >= 0 {
				m = m[:j]
			}
			out = append(out, m)
		}
	}
	return out
}

// appLines keeps the app tier's log lines.
func appLines(log string) string {
	var b strings.Builder
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `"component":"app"`) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
