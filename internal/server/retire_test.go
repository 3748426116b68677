package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// gatedListener holds each Accept while its gate is shut: the generation's server stops taking
// connections, so the switch's accept loop stalls handing one over and the kernel queues the rest.
type gatedListener struct {
	net.Listener
	mu   sync.Mutex
	shut chan struct{} // nil: open
}

func (l *gatedListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	ch := l.shut
	l.mu.Unlock()
	if ch != nil {
		<-ch
	}
	return l.Listener.Accept()
}

func (l *gatedListener) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shut == nil {
		l.shut = make(chan struct{})
	}
}

func (l *gatedListener) open() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shut != nil {
		close(l.shut)
		l.shut = nil
	}
}

// rawGet sends GET path on c and reads the response through br.
func rawGet(c net.Conn, br *bufio.Reader, path string) (*http.Response, string, error) {
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
		return nil, "", err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// TestSwitchRetire: retiring a switch (a reload removed its address) cuts nothing it has. The
// connections the kernel had queued are accepted and answered, not reset; a request in flight
// gets its full response; a keep-alive connection gets Connection: close on its next request and
// is then closed; when Retire returns the socket is closed, so new attempts are refused and the
// address can be listened on again at once.
func TestSwitchRetire(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	for _, tc := range []struct {
		name   string
		queued int // connections held in the kernel's accept queue at Retire
	}{
		{"nothing queued", 0},
		{"connections queued", 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sw, err := Open("127.0.0.1:0", nil)
			if err != nil {
				t.Fatal(err)
			}
			addr := sw.Addr().String()
			entered, release := make(chan struct{}), make(chan struct{})
			var gate *gatedListener
			sw.Install(Generation{Name: "t", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/slow" {
					close(entered)
					<-release
					io.WriteString(w, big)
					return
				}
				io.WriteString(w, "ok")
			}), Wrap: func(ln net.Listener) net.Listener {
				gate = &gatedListener{Listener: ln}
				return gate
			}})
			runDone := make(chan error, 1)
			go func() { runDone <- sw.Run() }()

			idle, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer idle.Close()
			_ = idle.SetDeadline(time.Now().Add(10 * time.Second))
			idleR := bufio.NewReader(idle)
			if resp, _, err := rawGet(idle, idleR, "/"); err != nil || resp.Close {
				t.Fatalf("keep-alive connection before Retire: %v", err)
			}

			slow := make(chan string, 1)
			go func() {
				resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://" + addr + "/slow")
				if err != nil {
					slow <- err.Error()
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					slow <- err.Error()
					return
				}
				slow <- string(b)
			}()
			<-entered

			// Stall the generation's server, then queue connections with a request each: the
			// server takes at most one more, the accept loop one, the kernel queues the rest.
			if tc.queued > 0 {
				gate.close()
			}
			type queuedConn struct {
				c  net.Conn
				br *bufio.Reader
			}
			var queued []queuedConn
			for range tc.queued {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				queued = append(queued, queuedConn{c, bufio.NewReader(c)})
			}

			retired := make(chan *Serving, 1)
			go func() { retired <- sw.Retire(context.Background()) }()
			// Let the stalled server go once Retire has begun (or, if it does not wait for the
			// accept loop, has returned).
			var v *Serving
			waitFor(t, func() bool {
				select {
				case v = <-retired:
					return true
				default:
					return sw.stopping.Load()
				}
			})
			gate.open()
			if v == nil {
				v = <-retired
			}
			if err := <-runDone; err != nil {
				t.Errorf("Run: %v", err)
			}
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				t.Error("the socket still accepts after Retire returned")
			} else if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("a new connection after Retire: %v, want it refused", err)
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Errorf("listening on the retired address again: %v", err)
			} else {
				ln.Close()
			}

			for i, q := range queued {
				resp, err := http.ReadResponse(q.br, nil)
				if err != nil {
					t.Errorf("queued connection %d: %v, want an answer", i, err)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != "ok" {
					t.Errorf("queued connection %d: %q", i, b)
				}
			}
			if resp, _, err := rawGet(idle, idleR, "/"); err != nil || !resp.Close {
				t.Errorf("keep-alive connection after Retire: %v, want a response with Connection: close", err)
			} else if _, err := idleR.ReadByte(); err != io.EOF {
				t.Errorf("the keep-alive connection stays open after its Connection: close response: %v", err)
			}

			shut := make(chan error, 1)
			go func() { shut <- v.Shutdown(context.Background()) }()
			close(release)
			if got := <-slow; got != big {
				t.Errorf("the request in flight: %d bytes (%.80q), want its full response", len(got), got)
			}
			if err := <-shut; err != nil {
				t.Error(err)
			}
		})
	}
}

// TestSwitchRetireStates: Retire returns promptly, closes the socket and hands back the current
// generation whatever state the switch is in: Run never started, Run already returned on an
// accept error, or the switch already retired (a reload and a stop racing for one listener).
func TestSwitchRetireStates(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, sw *Switch)
	}{
		{"run never started", func(*testing.T, *Switch) {}},
		{"run returned on an accept error", func(t *testing.T, sw *Switch) {
			runDone := make(chan error, 1)
			go func() { runDone <- sw.Run() }()
			waitFor(t, func() bool { sw.mu.Lock(); defer sw.mu.Unlock(); return sw.running })
			// A listening socket shut down for reading fails every Accept without being closed.
			rc, err := sw.ln.(*net.TCPListener).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var serr error
			if err := rc.Control(func(fd uintptr) { serr = shutdownRead(fd) }); err != nil {
				t.Fatal(err)
			}
			if serr != nil {
				t.Skipf("shutdown(SHUT_RD): %v", serr)
			}
			select {
			case err := <-runDone:
				if err == nil {
					t.Skip("Accept did not fail on a socket shut down for reading")
				}
			case <-time.After(5 * time.Second):
				t.Skip("Accept did not fail on a socket shut down for reading")
			}
		}},
		{"already retired", func(t *testing.T, sw *Switch) {
			go func() { _ = sw.Run() }()
			waitFor(t, func() bool { sw.mu.Lock(); defer sw.mu.Unlock(); return sw.running })
			sw.Retire(context.Background())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sw, err := Open("127.0.0.1:0", nil)
			if err != nil {
				t.Fatal(err)
			}
			sw.Install(Generation{Name: "t", Handler: http.NotFoundHandler()})
			want := sw.Current()
			tc.setup(t, sw)
			done := make(chan *Serving, 1)
			go func() { done <- sw.Retire(context.Background()) }()
			select {
			case v := <-done:
				if v != want {
					t.Errorf("Retire returned %p, want the current generation %p", v, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Retire did not return")
			}
			if c, err := net.DialTimeout("tcp", sw.Addr().String(), time.Second); err == nil {
				c.Close()
				t.Error("the socket still accepts after Retire returned")
			}
			if err := want.Shutdown(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
}
