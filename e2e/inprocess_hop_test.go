package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hopBackend is the app behind the load balancer of TestInProcessHop: an echo, a large streamed
// body, server-sent events and a WebSocket-style tunnel that echoes what it is sent.
func hopBackend(t *testing.T) *httptest.Server {
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	h := http.NewServeMux()
	h.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {})
	h.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Saw-Query", r.URL.RawQuery)
		fmt.Fprintf(w, "%s %s body=%q", r.Method, r.URL.Path, body)
	})
	h.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		for i := 0; i < len(big); i += 16 << 10 {
			_, _ = w.Write(big[i : i+16<<10])
		}
	})
	h.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond)
		}
	})
	h.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "not an upgrade", http.StatusBadRequest)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		line, err := brw.ReadString('\n')
		if err == nil {
			_, _ = io.WriteString(c, "echo "+line)
		}
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// hopCase is one request of TestInProcessHop's table, sent the same way to both modes.
type hopCase struct {
	name           string
	method, path   string
	body           string
	headers        []string // name, value pairs
	direct         bool     // to the load balancer itself, not through the gateway
	status         int
	bodyHas        string   // a part the body must contain, to be sure the table tests something
	compareHeaders []string // response headers that must be equal both ways
}

// hopResult is what the client got: compared between the two modes.
type hopResult struct {
	Status  int
	Body    string // short bodies as they are, long ones as length and hash
	Headers map[string]string
}

func hopCases() []hopCase {
	std := []string{"Content-Type", "Access-Control-Allow-Origin", "Vary", "X-Saw-Query", "Content-Encoding"}
	return []hopCase{
		{name: "CORS allowed origin", method: "GET", path: "/echo?q=1", headers: []string{"Origin", "http://allowed.test"},
			status: 200, bodyHas: `GET /echo body=""`, compareHeaders: std},
		{name: "CORS refused origin", method: "GET", path: "/echo", headers: []string{"Origin", "http://evil.test"},
			status: 403, compareHeaders: std},
		{name: "POST with a body", method: "POST", path: "/echo", body: `{"name":"x"}`, headers: []string{"Content-Type", "application/json"},
			status: 200, bodyHas: `POST /echo body="{\"name\":\"x\"}"`, compareHeaders: append(std, "Content-Length")},
		{name: "HEAD", method: "HEAD", path: "/echo", status: 200, compareHeaders: append(std, "Content-Length")},
		{name: "LB default action 404", method: "GET", path: "/missing", status: 404, compareHeaders: std},
		{name: "large streamed response", method: "GET", path: "/big", status: 200, compareHeaders: std},
		{name: "server-sent events", method: "GET", path: "/sse", status: 200, bodyHas: "data: 2", compareHeaders: std},
		{name: "OWASP CRS at the LB", method: "GET", path: "/echo?id=1%27%20OR%20%271%27%3D%271", status: 403, compareHeaders: std},
		{name: "encoded path keeps its signature", method: "GET", path: "/echo?a=%2F%20b&c", status: 200, bodyHas: "GET /echo", compareHeaders: std},
		{name: "origin verify blocks a direct call", method: "GET", path: "/echo", direct: true, status: 403, compareHeaders: std},
	}
}

// hopTopology starts `rampart run` with a gateway and a load balancer (signed origin verify,
// OWASP CRS) on free ports in front of backend, with extra flags.
func hopTopology(t *testing.T, backend string, flags ...string) (p *proc, gw, lb string) {
	t.Helper()
	dir := t.TempDir()
	gw, lb = freePort(t), freePort(t)
	cfg := fmt.Sprintf(`version: 1
secrets:
  origin-verify:
    file: .rampart/origin-verify.keys
gateways:
  - name: gw
    listen: %[1]s
    cors:
      mode: enforce
      allow_origins: ["http://allowed.test"]
    request_headers:
      X-Origin-Verify: "${signed:origin-verify}"
    routes:
      - {path: /echo, methods: [GET, POST], integration: {url: "http://%[2]s"}}
      - {path: /big, methods: [GET], integration: {url: "http://%[2]s"}}
      - {path: /sse, methods: [GET], integration: {url: "http://%[2]s"}}
      - {path: /ws, methods: [GET], integration: {url: "http://%[2]s"}}
      - {path: /missing, methods: [GET], integration: {url: "http://%[2]s"}}
load_balancers:
  - name: alb
    listeners:
      - listen: %[2]s
        web_acl: edge
        rules:
          - priority: 10
            conditions: {path: ["/echo", "/big", "/sse", "/ws"]}
            action: {forward: {target_group: app}}
        default_action: {fixed_response: {status: 404}}
    target_groups:
      - name: app
        targets: ["%[3]s"]
        health_check: {path: /healthz, interval: 1s, timeout: 500ms, healthy_threshold: 2, unhealthy_threshold: 2}
web_acls:
  - name: edge
    default_action: allow
    rules:
      - name: require-origin-verify
        priority: 0
        action: block
        statement: {not: {origin_verify: {header: X-Origin-Verify, secret: origin-verify, mode: signed}}}
      - name: owasp-crs
        priority: 10
        action: block
        statement:
          managed_rule_group: {name: owasp-crs, paranoia_level: 1, inbound_anomaly_threshold: 5, mode: block}
`, gw, lb, backend)
	if err := os.WriteFile(filepath.Join(dir, "rampart.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p = start(t, dir, append([]string{"run", "-c", "rampart.yaml"}, flags...)...)
	waitHTTP(t, p, "http://"+gw+"/nothing")
	eventually(t, 30*time.Second, func() error { // the target's first health checks
		r, err := tryDo("GET", "http://"+gw+"/echo", "")
		if err != nil {
			return err
		}
		if r.status != 200 {
			return fmt.Errorf("status %d", r.status)
		}
		return nil
	})
	return p, gw, lb
}

// runHopCases sends the table and returns what came back.
func runHopCases(t *testing.T, gw, lb string) []hopResult {
	t.Helper()
	var out []hopResult
	for _, c := range hopCases() {
		base := "http://" + gw
		if c.direct {
			base = "http://" + lb
		}
		r := do(t, c.method, base+c.path, c.body, c.headers...)
		if r.status != c.status {
			t.Errorf("%s: status %d, want %d (body %q)", c.name, r.status, c.status, r.body)
		}
		if !strings.Contains(r.body, c.bodyHas) {
			t.Errorf("%s: body %q does not contain %q", c.name, r.body, c.bodyHas)
		}
		res := hopResult{Status: r.status, Body: r.body, Headers: map[string]string{}}
		if len(r.body) > 256 {
			sum := sha256.Sum256([]byte(r.body))
			res.Body = strconv.Itoa(len(r.body)) + " bytes, sha256 " + hex.EncodeToString(sum[:8])
		}
		for _, h := range c.compareHeaders {
			res.Headers[h] = strings.Join(r.header.Values(h), ", ")
		}
		out = append(out, res)
	}
	return out
}

// webSocketEcho opens a tunnel through the gateway and checks that it carries bytes both ways.
func webSocketEcho(t *testing.T, gw string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", gw, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://allowed.test\r\n\r\n", gw)
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("WebSocket handshake: %v", err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("WebSocket handshake: status %d, want 101", res.StatusCode)
	}
	fmt.Fprint(c, "ping\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo ping\n" {
		t.Fatalf("through the tunnel: %q, %v; want the echo", line, err)
	}
}

// lbConnections counts the established TCP connections whose local port is the load balancer's
// (Linux /proc/net/tcp): those the gateway holds open to it when it calls it over the network.
func lbConnections(t *testing.T, lb string) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(lb)
	p, _ := strconv.Atoi(port)
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "01" { // ESTABLISHED
			continue
		}
		if strings.HasSuffix(f[1], fmt.Sprintf(":%04X", p)) {
			n++
		}
	}
	return n
}

// lbAccessLines returns the load balancer's access log lines for path.
func lbAccessLines(p *proc, lb, path string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["msg"] != "access" || m["listener"] != lb || m["path"] != path {
			continue
		}
		out = append(out, m)
	}
	return out
}

// TestInProcessHop runs one table of requests against `rampart run`, whose gateway calls the load
// balancer of the same process in-process, and `rampart run --loopback-hop`, where it calls it
// over a loopback connection: the client gets the same answers both ways, the load balancer's
// pipeline (signed origin verification, OWASP CRS, rules, access log) sees the requests both
// ways, WebSockets still work, and only the in-process mode holds no connection to the load
// balancer.
func TestInProcessHop(t *testing.T) {
	backend := hopBackend(t)
	target := backend.Listener.Addr().String()
	results := map[string][]hopResult{}
	for _, mode := range []struct {
		name  string
		flags []string
	}{{"in-process", nil}, {"loopback", []string{"--loopback-hop"}}} {
		t.Run(mode.name, func(t *testing.T) {
			p, gw, lb := hopTopology(t, target, mode.flags...)
			results[mode.name] = runHopCases(t, gw, lb)
			webSocketEcho(t, gw)
			conns := lbConnections(t, lb)
			if mode.name == "in-process" && conns != 0 {
				t.Errorf("%d connections to the load balancer, want none in-process", conns)
			}
			if mode.name == "loopback" && conns == 0 {
				t.Errorf("no connection to the load balancer over the loopback hop")
			}
			// The load balancer logged the gateway's requests, from the loopback address.
			lines := lbAccessLines(p, lb, "/big")
			if len(lines) == 0 {
				t.Fatalf("no load balancer access line for /big:\n%s", p.stderr)
			}
			if src := lines[0]["source_ip"]; src != "127.0.0.1" {
				t.Errorf("load balancer source_ip %v, want 127.0.0.1", src)
			}
			// Port 0 marks the in-process hop; a connection has a real port.
			if port := lines[0]["source_port"]; (port == "0") != (mode.name == "in-process") {
				t.Errorf("%s: load balancer source_port %v", mode.name, port)
			}
		})
	}
	in, lo := results["in-process"], results["loopback"]
	if len(in) != len(lo) {
		t.Fatalf("one of the modes did not run the whole table: %d and %d results", len(in), len(lo))
	}
	for i, c := range hopCases() {
		if !reflect.DeepEqual(in[i], lo[i]) {
			t.Errorf("%s: the modes differ:\nin-process: %+v\nloopback:   %+v", c.name, in[i], lo[i])
		}
	}
}
