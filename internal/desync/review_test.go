package desync

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A head longer than MaxHeld cannot be classified. With a server that accepts such heads (the
// gateway's max_header_bytes goes up to 1 MiB), the guard used to switch the connection to
// passthrough for good, so every request pipelined behind the long head reached net/http
// unclassified: "Transfer-Encoding + Content-Length" was then served on a kept-alive connection.
// Now the long head is served as an unclassified request: closed after it in defensive mode,
// refused in strictest mode, served (and the connection kept, unguarded) in monitor mode only.
func TestGuardOversizedHeadDoesNotDisableGuard(t *testing.T) {
	long := "GET /long HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 2*MaxHeld) + "\r\n\r\n"
	smuggle := "POST /next HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	for _, tt := range []struct {
		mode         string
		status       int
		wantSecond   bool
		wantClose    bool
		secondClass  string
		handlerClass string
	}{
		{Monitor, 200, true, false, "none", "Ambiguous"},
		{Defensive, 200, false, true, "", "Ambiguous"},
		{Strictest, 400, false, true, "", ""},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			g := &Guard{Mode: tt.mode}
			// MaxHeaderBytes well above MaxHeld, as a gateway with max_header_bytes: 1048576.
			srv := &http.Server{Handler: g.Handler(classHandler()), MaxHeaderBytes: 1 << 20, ReadHeaderTimeout: 5 * time.Second}
			done := make(chan struct{})
			go func() { defer close(done); _ = srv.Serve(g.Wrap(ln)) }()
			t.Cleanup(func() { _ = srv.Close(); <-done })

			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			go func() { _, _ = io.WriteString(c, long+smuggle) }()
			r := newReader(c)
			resp, body := readResponse(r)
			if resp == nil || resp.StatusCode != tt.status {
				t.Fatalf("long head: %v %q, want %d", resp, body, tt.status)
			}
			if tt.handlerClass != "" && resp.Header.Get("X-Class") != tt.handlerClass {
				t.Errorf("long head: handler saw class %q, want %s", resp.Header.Get("X-Class"), tt.handlerClass)
			}
			if resp.Close != tt.wantClose {
				t.Errorf("long head: Connection: close = %v, want %v", resp.Close, tt.wantClose)
			}
			second, _ := readResponse(r)
			if (second != nil) != tt.wantSecond {
				t.Fatalf("request pipelined behind the long head served = %v, want %v", second != nil, tt.wantSecond)
			}
			if second != nil && second.Header.Get("X-Class") != tt.secondClass {
				t.Errorf("pipelined request: class %q, want %s (it must still be classified)", second.Header.Get("X-Class"), tt.secondClass)
			}
		})
	}
}

// A blocked head that arrives while the previous response is still being written (the handler
// returned, net/http has not flushed yet) must be answered after that response, never before or
// in the middle of it: a front end pipelining several clients' requests on one connection would
// hand the 400 to the wrong client. The wrapper below stands for any layer outside the guard's
// handler (internal/server wraps it) that still runs after it returns.
func TestGuardBlockedResponseAfterPreviousResponse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &Guard{}
	ended := make(chan struct{}, 1)
	inner := g.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first")
	}))
	outer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner.ServeHTTP(w, r)
		ended <- struct{}{}
		time.Sleep(300 * time.Millisecond) // the response is written after this
	})
	srv := &http.Server{Handler: outer, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(g.Wrap(ln)) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
	<-ended
	io.WriteString(c, "POST /blocked HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy")
	r := newReader(c)
	resp, body := readResponse(r)
	if resp == nil || resp.StatusCode != 200 || body != "first" {
		t.Fatalf("first response: %v %q, want 200 \"first\" (the 400 of the blocked request overtook it)", resp, body)
	}
	resp, body = readResponse(r)
	if resp == nil || resp.StatusCode != 400 {
		t.Fatalf("second response: %v %q, want the guard's 400", resp, body)
	}
}
