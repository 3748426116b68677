package topology

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// gatewayOnlyConfig writes a config with one gateway on listen whose /slow route goes to backend.
func gatewayOnlyConfig(t *testing.T, path, listen, backend string) {
	t.Helper()
	yaml := fmt.Sprintf(`version: 1
gateways:
  - name: gw
    listen: %s
    routes:
      - {path: /slow, methods: [GET], integration: {url: "http://%s"}}
`, listen, backend)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
}

// slowBody is what the slow backend answers: large enough that a cut response is seen as such.
var slowBody = strings.Repeat("0123456789abcdef", 16<<10)

// slowBackend serves GET /slow: it signals entered, waits for release, then writes slowBody.
// release may be called more than once; the test's end calls it too.
func slowBackend(t *testing.T) (addr string, entered <-chan struct{}, release func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in, rel := make(chan struct{}, 16), make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in <- struct{}{}
		<-rel
		_, _ = io.WriteString(w, slowBody)
	})}
	go func() { _ = srv.Serve(ln) }()
	release = sync.OnceFunc(func() { close(rel) })
	t.Cleanup(func() {
		release()
		_ = srv.Close()
	})
	return ln.Addr().String(), in, release
}

// slowGet starts GET /slow through the gateway at addr on a connection of its own and returns
// the body it got, or the error.
func slowGet(addr string) <-chan string {
	got := make(chan string, 1)
	go func() {
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
		resp, err := client.Get("http://" + addr + "/slow")
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			got <- fmt.Sprintf("status %d after %d bytes: %v", resp.StatusCode, len(b), err)
			return
		}
		got <- string(b)
	}()
	return got
}

// refused reports whether a new connection to addr is refused.
func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// connLoad opens a new connection per request from each worker until stop is closed and sorts
// the outcomes: answered (any HTTP response), refused (the socket is closed, which is fine) and
// dropped (accepted by the kernel, then reset or closed without an answer: the bug).
type connLoad struct {
	answered, refused, dropped atomic.Int64
	mu                         sync.Mutex
	examples                   []string
	wg                         sync.WaitGroup
	stop                       chan struct{}
}

func startConnLoad(addr string, workers int) *connLoad {
	l := &connLoad{stop: make(chan struct{})}
	for range workers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					l.refused.Add(1)
					time.Sleep(time.Millisecond)
					continue
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_, err = io.WriteString(c, "GET /nothing-here HTTP/1.1\r\nHost: t\r\n\r\n")
				var resp *http.Response
				if err == nil {
					resp, err = http.ReadResponse(bufio.NewReader(c), nil)
				}
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				c.Close()
				if err == nil {
					l.answered.Add(1)
					continue
				}
				l.dropped.Add(1)
				l.mu.Lock()
				if len(l.examples) < 5 {
					l.examples = append(l.examples, err.Error())
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

func (l *connLoad) end() {
	close(l.stop)
	l.wg.Wait()
}

// synFilterTolerance is how many dropped connections a retiring listener may cause: none where
// the kernel takes the SYN filter (drain_linux.go), one where it does not (the final accept pass
// then leaves a window of two system calls).
func synFilterTolerance(t *testing.T) int64 {
	t.Helper()
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	rc, err := probe.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	_ = rc.Control(func(fd uintptr) {
		// The same kind of filter as drain_linux.go's: accept everything.
		serr = attachAcceptAllFilter(int(fd))
	})
	if serr != nil {
		t.Logf("no socket filter on this kernel (%v): tolerating one reset in the final accept pass", serr)
		return 1
	}
	return 0
}

// TestReloadRetiresRemovedListener: a reload that removes a listen address retires its listener
// gracefully. A request in flight on it gets its full response; a keep-alive connection gets
// Connection: close on its next request; connections the kernel had queued when the reload came
// are answered, not reset; and once the reload has returned, the address refuses connections.
func TestReloadRetiresRemovedListener(t *testing.T) {
	tolerance := synFilterTolerance(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "rampart.yaml")
	backend, entered, release := slowBackend(t)
	gwA, gwB := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	gatewayOnlyConfig(t, path, gwA, backend)
	topo := serveFile(t, path, Selection{Kinds: map[Kind]bool{KindGateway: true}}, &syncBuffer{})

	// A keep-alive connection, idle at the time of the reload.
	idle, err := net.Dial("tcp", gwA)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_ = idle.SetDeadline(time.Now().Add(10 * time.Second))
	idleR := bufio.NewReader(idle)
	idleGet := func() *http.Response {
		t.Helper()
		if _, err := io.WriteString(idle, "GET /nothing-here HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(idleR, nil)
		if err != nil {
			t.Fatalf("keep-alive connection: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := idleGet(); resp.Close {
		t.Fatal("Connection: close before the reload")
	}

	slow := slowGet(gwA)
	<-entered
	load := startConnLoad(gwA, 16)
	waitFor(t, "load on the listener", func() bool { return load.answered.Load() > 200 })

	gatewayOnlyConfig(t, path, gwB, backend)
	if err := topo.Reload(context.Background(), "test"); err != nil {
		load.end()
		t.Fatal(err)
	}
	if !refused(gwA) {
		t.Errorf("%s still accepts connections after the reload that removed it returned", gwA)
	}
	if resp := idleGet(); !resp.Close {
		t.Error("a keep-alive connection of the removed listener got no Connection: close")
	}
	if _, err := idleR.ReadByte(); err != io.EOF {
		t.Errorf("the keep-alive connection stays open after its Connection: close response: %v", err)
	}
	waitFor(t, "connection attempts refused", func() bool { return load.refused.Load() > 50 })
	load.end()
	t.Logf("answered %d, refused %d, dropped %d", load.answered.Load(), load.refused.Load(), load.dropped.Load())
	if n := load.dropped.Load(); n > tolerance {
		t.Errorf("%d connections the removed listener had accepted were dropped (at most %d expected): %q", n, tolerance, load.examples)
	}

	release()
	if got := <-slow; got != slowBody {
		t.Errorf("the request in flight on the removed listener: %.200q, want its full response", got)
	}
	if code, err := httpStatus("http://"+gwB+"/nothing-here", ""); err != nil || code != 404 {
		t.Errorf("the gateway on its new address: %d %v", code, err)
	}

	// Which connections are queued at the instant of a reload is up to the scheduler: a few more
	// moves under load, each of which must drop none either.
	for i, move := range [][2]string{{gwB, gwA}, {gwA, gwB}} {
		from, to := move[0], move[1]
		load := startConnLoad(from, 16)
		waitFor(t, "load on the listener", func() bool { return load.answered.Load() > 200 })
		gatewayOnlyConfig(t, path, to, backend)
		err := topo.Reload(context.Background(), "test")
		if err == nil {
			waitFor(t, "connection attempts refused", func() bool { return load.refused.Load() > 50 })
		}
		load.end()
		if err != nil {
			t.Fatalf("move %d: %v", i, err)
		}
		if n := load.dropped.Load(); n > tolerance {
			t.Errorf("move %d: %d connections the removed listener had accepted were dropped (at most %d expected): %q", i, n, tolerance, load.examples)
		}
	}
}

// TestReloadReaddsRemovedAddress: a reload removes an address and the next one adds it back,
// while the first listener's connections may still be draining: the address opens again (its
// socket was closed before the first reload returned, so no EADDRINUSE) and serves, and a request
// still in flight on the retired listener completes.
func TestReloadReaddsRemovedAddress(t *testing.T) {
	for _, tc := range []struct {
		name     string
		inFlight bool
	}{
		{"idle", false},
		{"request in flight", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "rampart.yaml")
			backend, entered, release := slowBackend(t)
			gwA, gwB := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
			gatewayOnlyConfig(t, path, gwA, backend)
			topo := serveFile(t, path, Selection{Kinds: map[Kind]bool{KindGateway: true}}, &syncBuffer{})
			var slow <-chan string
			if tc.inFlight {
				slow = slowGet(gwA)
				<-entered
			}
			for i, addr := range []string{gwB, gwA, gwB, gwA} {
				gatewayOnlyConfig(t, path, addr, backend)
				if err := topo.Reload(context.Background(), "test"); err != nil {
					t.Fatalf("reload %d to %s: %v", i, addr, err)
				}
				if code, err := httpStatus("http://"+addr+"/nothing-here", ""); err != nil || code != 404 {
					t.Fatalf("reload %d: the gateway on %s: %d %v", i, addr, code, err)
				}
				other := gwA
				if addr == gwA {
					other = gwB
				}
				if !refused(other) {
					t.Fatalf("reload %d: %s, removed, still accepts", i, other)
				}
			}
			release()
			if tc.inFlight {
				if got := <-slow; got != slowBody {
					t.Errorf("the request in flight on the retired listener: %.200q, want its full response", got)
				}
			}
		})
	}
}
