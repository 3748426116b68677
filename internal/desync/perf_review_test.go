package desync

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// newTestConn returns a guarded conn over one end of a pipe, for driving the framing state
// machine directly (feed, resumeAfterUpgrade) without net/http's goroutines.
func newTestConn(t *testing.T, g *Guard) *conn {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	return g.newConn(a, nil)
}

const wsHead = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"

// Two upgrade requests pipelined: the first is refused (no 101), so the bytes held behind it are
// classified as HTTP, and the second is an upgrade again. resumeAfterUpgrade cleared c.waiting and
// c.held only after feeding the held bytes, wiping the second upgrade's state: the connection was
// left in stUpgrade with c.waiting nil, and the next Read (net/http's background read while the
// second request's handler runs, a goroutine without recover) dereferenced nil and crashed the
// process. Bytes behind the second head were also held twice (c.held was appended to itself).
func TestGuardPipelinedUpgradeAfterRefusedUpgrade(t *testing.T) {
	for _, tail := range []string{"", "GET /after HTTP/1.1\r\nHost: a\r\n\r\n"} {
		c := newTestConn(t, &Guard{})
		c.feed([]byte(wsHead + wsHead + tail))
		if c.state != stUpgrade || c.waiting == nil || string(c.out) != wsHead {
			t.Fatalf("after the first upgrade head: state %d, waiting %v, out %q", c.state, c.waiting, c.out)
		}
		first := c.waiting
		c.out = c.out[:0] // net/http read the first head
		c.mu.Lock()
		first.outcome = upRefused // its handler answered without a 101
		c.mu.Unlock()

		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("tail %q: resumeAfterUpgrade panicked: %v", tail, p)
				}
			}()
			if !c.resumeAfterUpgrade() {
				t.Fatal("resumeAfterUpgrade did not move on after a refused upgrade")
			}
		}()
		if string(c.out) != wsHead {
			t.Fatalf("tail %q: delivered %q, want the second head only", tail, c.out)
		}
		if c.state != stUpgrade || c.waiting == nil || c.waiting == first {
			t.Fatalf("tail %q: second upgrade lost: state %d, waiting %p (first %p)", tail, c.state, c.waiting, first)
		}
		if string(c.held) != tail {
			t.Fatalf("tail %q: held %q, want only the bytes behind the second head", tail, c.held)
		}
		// The next read (net/http's background read) must find the second upgrade pending.
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("tail %q: next resumeAfterUpgrade panicked: %v", tail, p)
				}
			}()
			if c.resumeAfterUpgrade() {
				t.Fatalf("tail %q: moved on before the second upgrade's response", tail)
			}
		}()
	}
}

// A head read whole is classified where it lies, in the connection's read buffer: the verdict
// (Method, Path, read by handlers and the access log long after the buffer was reused) must not
// alias it, nor must the bytes queued for net/http.
func TestGuardVerdictDoesNotAliasReadBuffer(t *testing.T) {
	c := newTestConn(t, &Guard{})
	raw := "POST /first?q=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /second HTTP/1.1\r\nHost: a\r\n\r\n"
	n := copy(c.buf[:], raw)
	c.feed(c.buf[:n])
	if len(c.queue) != 2 {
		t.Fatalf("queued %d verdicts, want 2", len(c.queue))
	}
	for i := range c.buf[:n] {
		c.buf[i] = 'X' // the next read of this connection
	}
	if v := c.queue[0]; v.Method != "POST" || v.Path != "/first" {
		t.Errorf("first verdict %q %q after the buffer was reused", v.Method, v.Path)
	}
	if v := c.queue[1]; v.Method != "GET" || v.Path != "/second" {
		t.Errorf("second verdict %q %q after the buffer was reused", v.Method, v.Path)
	}
	if string(c.out) != raw {
		t.Errorf("bytes for net/http changed with the read buffer: %q", c.out)
	}
}

// Read moves what is left to the front of out: partial reads must deliver every byte once, in
// order, and never what lies beyond len(out) from an earlier, longer request.
func TestGuardReadCompactsWithoutStaleBytes(t *testing.T) {
	c := newTestConn(t, &Guard{})
	long := "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\n\r\n" + strings.Repeat("L", 40)
	short := "GET /b HTTP/1.1\r\nHost: a\r\n\r\n"
	c.feed([]byte(long))
	var got []byte
	p := make([]byte, 7)
	for len(c.out) > 0 {
		n, err := c.Read(p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p[:n]...)
	}
	c.feed([]byte(short))
	for len(c.out) > 0 {
		n, _ := c.Read(p)
		got = append(got, p[:n]...)
	}
	if string(got) != long+short {
		t.Fatalf("read %q, want %q", got, long+short)
	}
}

// Header names are compared case-insensitively (ASCII only) on the single-string path.
func TestClassifyFramingNamesAnyCase(t *testing.T) {
	for _, raw := range []string{
		"POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 3\r\nTRANSFER-ENCODING: chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nCoNtEnT-LeNgTh: 3\r\ntRaNsFeR-eNcOdInG: chunked\r\n\r\n",
	} {
		if v := Classify([]byte(raw)); v.Reason != "BothTeClPresent" {
			t.Errorf("%q: %s %s, want BothTeClPresent", raw, v.Class, v.Reason)
		}
	}
	if v := Classify([]byte("POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 1\r\nCONTENT-LENGTH: 2\r\n\r\n")); v.Reason != "MultipleContentLength" {
		t.Errorf("differing lengths in mixed case: %s %s", v.Class, v.Reason)
	}
	if v := Classify([]byte("POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n")); v.Reason != "SuspiciousHeader" {
		t.Errorf("Transfer_Encoding: %s %s", v.Class, v.Reason)
	}
}

// End to end: two WebSocket upgrades pipelined to a route that answers 404 (no 101). Before the
// fix the guard's Read panicked in net/http's background-read goroutine, which has no recover:
// one client connection took the whole process down.
func TestGuardPipelinedRefusedUpgradesEndToEnd(t *testing.T) {
	addr := serveGuarded(t, &Guard{}, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond) // the second head arrives while the first is answered
		http.NotFound(w, r)
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, wsHead+wsHead+"GET /after HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := newReader(c)
	for i := 0; i < 3; i++ {
		resp, body := readResponse(r)
		if resp == nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("response %d: %v %q, want 404", i+1, resp, body)
		}
	}
}
