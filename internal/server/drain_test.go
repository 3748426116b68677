package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// drainOutcome counts the outcomes of drainLoad's connection attempts.
type drainOutcome struct {
	answered, refused, dropped atomic.Int64
	mu                         sync.Mutex
	examples                   []string
}

// drainLoad opens a new connection per request from each worker until stop is closed. A
// connection the kernel refused is fine (the socket is closing); one it accepted must be answered:
// a reset or a close without a response is a drop.
func drainLoad(addr string, workers int, stop <-chan struct{}, out *drainOutcome) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					out.refused.Add(1)
					time.Sleep(time.Millisecond)
					continue
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_, err = io.WriteString(c, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
				var resp *http.Response
				if err == nil {
					resp, err = http.ReadResponse(bufio.NewReader(c), nil)
				}
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				c.Close()
				if err == nil && resp.StatusCode == 200 {
					out.answered.Add(1)
					continue
				}
				out.dropped.Add(1)
				out.mu.Lock()
				if len(out.examples) < 5 {
					out.examples = append(out.examples, fmt.Sprintf("%s %v (reset: %v)", time.Now().Format("05.000"), err, errors.Is(err, syscall.ECONNRESET)))
				}
				out.mu.Unlock()
			}
		})
	}
	return &wg
}

// TestShutdownDrainsAcceptQueue: under a stream of new connections, a shutdown (Drain, the drain
// delay, Shutdown) answers every connection the kernel accepted: none is reset from the accept
// queue and none is closed unanswered; the attempts after the intake stopped are refused.
//
// Where the kernel refuses socket filters (some sandboxes), the queue is taken in one pass right
// before the socket stops listening, and a connection the kernel completes within those two system
// calls (microseconds) is still reset: one such is tolerated there. net/http's Shutdown drops
// about one per worker here.
func TestShutdownDrainsAcceptQueue(t *testing.T) {
	tolerance := int64(0)
	if probe, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		if err := refuseHandshakes(probe.(*net.TCPListener)); err != nil {
			t.Logf("no SYN filter on this kernel (%v): tolerating one reset in the final accept pass", err)
			tolerance = 1
		}
		probe.Close()
	}
	for _, tc := range []struct {
		name       string
		drainDelay time.Duration
	}{
		{"no drain delay", 0},
		{"drain delay", 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sw, err := Open("127.0.0.1:0", nil)
			if err != nil {
				t.Fatal(err)
			}
			var served atomic.Int64
			sw.Install(Generation{Name: "t", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				served.Add(1)
				io.WriteString(w, "ok")
			})})
			runDone := make(chan error, 1)
			go func() { runDone <- sw.Run() }()

			var out drainOutcome
			stop := make(chan struct{})
			wg := drainLoad(sw.Addr().String(), 16, stop, &out)
			waitFor(t, func() bool { return served.Load() > 300 })

			sw.Drain()
			time.Sleep(tc.drainDelay) // the drain delay: still accepting
			before := out.answered.Load()
			t.Logf("shutdown at %s", time.Now().Format("05.000"))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := sw.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if err := <-runDone; err != nil {
				t.Errorf("Run: %v", err)
			}
			// Keep knocking on the closed socket for a moment: those attempts must be refused.
			waitFor(t, func() bool { return out.refused.Load() > 50 })
			close(stop)
			wg.Wait()
			t.Logf("answered %d (%d during the shutdown), refused %d, dropped %d", out.answered.Load(), out.answered.Load()-before, out.refused.Load(), out.dropped.Load())
			if n := out.dropped.Load(); n > tolerance {
				t.Errorf("%d accepted connections dropped (at most %d expected): %q", n, tolerance, out.examples)
			}
		})
	}
}

// TestDrainClosesKeepAlive: once draining, a response on a keep-alive connection says
// Connection: close, and the server closes the connection after it.
func TestDrainClosesKeepAlive(t *testing.T) {
	sw, err := Open("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	sw.Install(Generation{Name: "t", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })})
	go sw.Run()
	defer sw.Shutdown(context.Background())
	c, err := net.Dial("tcp", sw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	get := func() *http.Response {
		t.Helper()
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if r := get(); r.Close {
		t.Fatal("Connection: close before draining")
	}
	sw.Drain()
	if r := get(); !r.Close {
		t.Fatal("while draining: the response does not close the connection")
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("connection still open after the draining response: %v", err)
	}
}
