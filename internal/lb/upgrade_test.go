package lb

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/desync"
	"github.com/rampart-edge/rampart/internal/server"
)

// newUpgradeBackend is a WebSocket-like target: a request with an Upgrade header is answered 101
// on the raw connection, which then echoes every byte; /refuse, and any request without Upgrade,
// is answered 200 "no upgrade"; /hold is not answered until the client leaves.
func newUpgradeBackend(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			<-r.Context().Done() // answers nothing until the client is gone
			return
		}
		if r.Header.Get("Upgrade") == "" || r.URL.Path == "/refuse" {
			io.WriteString(w, "no upgrade")
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("backend hijack: %v", err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		if brw.Flush() != nil {
			return
		}
		_, _ = io.Copy(conn, brw.Reader) // echo, starting with what the server had buffered
	}))
	t.Cleanup(srv.Close)
	return srv
}

func upgradeLB(backend string, idle time.Duration) config.LoadBalancer {
	return config.LoadBalancer{
		Name:         "alb",
		IdleTimeout:  config.Duration{Duration: idle},
		Listeners:    []config.Listener{{DefaultAction: forward("ws")}},
		TargetGroups: []config.TargetGroup{{Name: "ws", Algorithm: config.RoundRobin, Targets: []string{backend}, HealthCheck: testHealthCheck(time.Hour)}},
	}
}

// dialRaw connects to the listener at url and sends raw.
func dialRaw(t *testing.T, url, raw string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// readResponse reads one response and its body; nil when the connection ended instead.
func readResponse(r *bufio.Reader) (*http.Response, string) {
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return nil, err.Error()
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

const wsHandshake = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"

func TestWebSocketTunnel(t *testing.T) {
	be := newUpgradeBackend(t)
	_, url := serve(t, upgradeLB(be.Listener.Addr().String(), time.Minute), nil)
	c, r := dialRaw(t, url, wsHandshake)
	resp, body := readResponse(r)
	if resp == nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %q, want 101", resp, body)
	}
	// Frames are opaque bytes to the guard: blank lines, a smuggling-shaped head and more than
	// desync.MaxHeld of data without a blank line all go through, both ways, in order.
	for _, msg := range []string{
		"hello",
		"a\n\nb",
		"\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy",
		strings.Repeat("x", desync.MaxHeld+1000),
	} {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatalf("write %.20q: %v", msg, err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(r, got); err != nil || string(got) != msg {
			t.Fatalf("echo of %.20q: %.40q, %v", msg, got, err)
		}
	}
}

func TestWebSocketIdleTimeout(t *testing.T) {
	be := newUpgradeBackend(t)
	_, url := serve(t, upgradeLB(be.Listener.Addr().String(), 200*time.Millisecond), nil)
	c, r := dialRaw(t, url, wsHandshake)
	if resp, body := readResponse(r); resp == nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %q, want 101", resp, body)
	}
	// Traffic keeps the tunnel open past the idle timeout...
	for range 4 {
		time.Sleep(100 * time.Millisecond)
		io.WriteString(c, "ping")
		got := make([]byte, 4)
		if _, err := io.ReadFull(r, got); err != nil {
			t.Fatalf("tunnel closed while in use: %v", err)
		}
	}
	// ...and silence closes it, as ALB does.
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("idle tunnel: read = %v, want EOF", err)
	}
}

// An upgrade request answered with anything but 101 leaves the connection HTTP: what follows it
// is classified like any request, so "Upgrade: websocket" cannot switch the guard off.
func TestRefusedUpgradeKeepsGuarding(t *testing.T) {
	be := newUpgradeBackend(t)
	_, url := serve(t, upgradeLB(be.Listener.Addr().String(), time.Minute), nil)
	refused := "GET /refuse HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
	for _, tt := range []struct {
		name, next string
		status     int
	}{
		{"severe", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", http.StatusBadRequest},
		{"ambiguous", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", http.StatusOK},
	} {
		_, r := dialRaw(t, url, refused+tt.next)
		resp, body := readResponse(r)
		if resp == nil || resp.StatusCode != http.StatusOK || body != "no upgrade" {
			t.Fatalf("%s: upgrade request: %v %q, want 200", tt.name, resp, body)
		}
		resp, body = readResponse(r)
		if resp == nil || resp.StatusCode != tt.status || !resp.Close {
			t.Fatalf("%s: pipelined request: %v %q, want %d and Connection: close", tt.name, resp, body, tt.status)
		}
		if resp, _ := readResponse(r); resp != nil {
			t.Errorf("%s: connection still open after the verdict", tt.name)
		}
	}
}

// What a client sends before the response to its upgrade request is held, up to desync.MaxHeld.
func TestUpgradeHoldLimit(t *testing.T) {
	be := newUpgradeBackend(t)
	logs := newLogRecorder(nil)
	_, url := serve(t, upgradeLB(be.Listener.Addr().String(), time.Minute), slog.New(logs))
	c, r := dialRaw(t, url, "GET /hold HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	_, _ = io.WriteString(c, strings.Repeat("x", desync.MaxHeld+1)) // may fail once the guard closes
	if _, err := r.ReadByte(); err == nil || desync.IsTimeout(err) {
		t.Fatalf("read = %v; want the connection closed", err)
	}
	if len(logs.find("desync: too much data before the response to an upgrade request; closing")) != 1 {
		t.Error("no warning logged")
	}
}

// An ambiguous upgrade request in defensive mode is served as a plain request, then closed: it
// never becomes a tunnel that the guard cannot follow.
func TestAmbiguousUpgradeNotTunnelled(t *testing.T) {
	be := newUpgradeBackend(t)
	_, url := serve(t, upgradeLB(be.Listener.Addr().String(), time.Minute), nil)
	_, r := dialRaw(t, url, "GET /ws HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	resp, body := readResponse(r)
	if resp == nil || resp.StatusCode != http.StatusOK || body != "no upgrade" || !resp.Close {
		t.Fatalf("ambiguous upgrade: %v %q, want 200 \"no upgrade\" and Connection: close", resp, body)
	}
}

// serveProduction serves the load balancer's first listener through server.Serve, with the
// http.Server settings of the real binary.
func serveProduction(t *testing.T, cfg config.LoadBalancer, logger *slog.Logger) string {
	t.Helper()
	lb, err := New(cfg, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := lb.Handler(0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Serve(ctx, []server.Unit{{Name: "lb", Listener: h.(desync.ListenerWrapper).WrapListener(ln), Handler: h}}, time.Second, nil)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server.Serve: %v", err)
		}
		lb.Close()
	})
	return "http://" + ln.Addr().String()
}

// "OPTIONS *" pipelined before an ambiguous request: the ambiguous request's response, not the
// next one's, carries Connection: close, and the innocent third request is never read.
func TestOptionsAsteriskKeepsVerdictsAligned(t *testing.T) {
	cfg := config.LoadBalancer{Name: "alb", Listeners: []config.Listener{{DefaultAction: fixed(200, "served")}}}
	for _, tt := range []struct {
		name  string
		serve func(*slog.Logger) string
	}{
		{"server.Serve", func(l *slog.Logger) string { return serveProduction(t, cfg, l) }},
		// A plain http.Server answers "OPTIONS *" itself; the guard must still line up.
		{"plain http.Server", func(l *slog.Logger) string { _, url := serve(t, cfg, l); return url }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logs := newLogRecorder(nil)
			url := tt.serve(slog.New(logs))
			_, r := dialRaw(t, url, "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"+
				"GET /ambiguous HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n"+
				"GET /third HTTP/1.1\r\nHost: a\r\n\r\n")
			resp, body := readResponse(r)
			if resp == nil || resp.StatusCode != http.StatusOK || resp.Close {
				t.Fatalf("OPTIONS *: %v %q, want 200 kept alive", resp, body)
			}
			resp, body = readResponse(r)
			if resp == nil || resp.StatusCode != http.StatusOK || body != "served" || !resp.Close {
				t.Fatalf("ambiguous request: %v %q, want 200 \"served\" with Connection: close", resp, body)
			}
			if resp, _ := readResponse(r); resp != nil {
				t.Fatalf("third request answered %d: the connection was not closed after the ambiguous one", resp.StatusCode)
			}
			for _, l := range logs.find("access") {
				want := map[string]string{"/ambiguous": "Ambiguous", "*": ""}[l["path"]]
				if l["classification"] != want || l["path"] == "/third" {
					t.Errorf("access %s: classification %q, want %q", l["path"], l["classification"], want)
				}
			}
		})
	}
}
