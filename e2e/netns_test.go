//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/reliability"
	"golang.org/x/sys/unix"
)

// The tiers of DESIGN.md placed in three network namespaces, joined by two veth pairs:
//
//	public 10.231.1.2 ──veth── 10.231.1.1 edge (gateway :8080, load balancer :8081)
//	                           10.231.2.1 edge (the load balancer's egress)
//	                                 └──veth── 10.231.2.2 private (app :9001, database :5432)
//
// The edge does not forward packets (ip_forward is 0 in a new namespace, and the test sets it so),
// and the private namespace has no route back to the public subnet, so the public side reaches the
// gateway and the load balancer only. Even a route the attacker adds toward the private subnet
// leads nowhere. Every address lives inside these namespaces; the host's network is not touched.
const (
	nsPublicAddr = "10.231.1.2"
	nsEdgeAddr   = "10.231.1.1"
	nsEgress     = "10.231.2.1"
	nsPrivAddr   = "10.231.2.2"
)

// netnsSetup creates the three namespaces and their links and removes them when the test ends.
// It skips the test, with the reason, when it cannot run here.
func netnsSetup(t *testing.T) (pub, edge, priv string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root: run the e2e tests as root (CI does) to place the tiers in separate namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("network namespaces need the ip command (Debian: apt-get install iproute2)")
	}
	id := os.Getpid()
	pub, edge, priv = fmt.Sprintf("rp-pub-%d", id), fmt.Sprintf("rp-edge-%d", id), fmt.Sprintf("rp-priv-%d", id)
	// veth names are limited to 15 bytes.
	vPub, vEdgePub := fmt.Sprintf("rpp%d", id), fmt.Sprintf("rpe%d", id)
	vEdgePriv, vPriv := fmt.Sprintf("rpf%d", id), fmt.Sprintf("rpq%d", id)

	ipCmd := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := ipCmd("netns", "add", pub); err != nil {
		t.Skipf("cannot create a network namespace here (%v); the isolation test needs CAP_SYS_ADMIN", err)
	}
	t.Cleanup(func() {
		for _, ns := range []string{pub, edge, priv} {
			// Deleting a namespace removes its end of every veth pair, hence the pair.
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	must := func(args ...string) {
		t.Helper()
		if err := ipCmd(args...); err != nil {
			t.Fatal(err)
		}
	}
	must("netns", "add", edge)
	must("netns", "add", priv)
	must("link", "add", vPub, "netns", pub, "type", "veth", "peer", "name", vEdgePub, "netns", edge)
	must("link", "add", vEdgePriv, "netns", edge, "type", "veth", "peer", "name", vPriv, "netns", priv)
	for _, l := range []struct{ ns, dev, addr string }{
		{pub, vPub, nsPublicAddr + "/24"},
		{edge, vEdgePub, nsEdgeAddr + "/24"},
		{edge, vEdgePriv, nsEgress + "/24"},
		{priv, vPriv, nsPrivAddr + "/24"},
	} {
		must("-n", l.ns, "addr", "add", l.addr, "dev", l.dev)
		must("-n", l.ns, "link", "set", l.dev, "up")
		must("-n", l.ns, "link", "set", "lo", "up")
	}
	// The attacker's best effort: a route to the private subnet through the edge.
	must("-n", pub, "route", "add", "10.231.2.0/24", "via", nsEdgeAddr)
	if out, err := exec.Command("ip", "netns", "exec", edge, "sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward").CombinedOutput(); err != nil {
		t.Fatalf("disabling forwarding in %s: %v: %s", edge, err, out)
	}
	return pub, edge, priv
}

// inNetns runs fn on an OS thread that has joined the network namespace ns. Sockets fn creates
// stay in that namespace for their whole life. The thread is never unlocked, so Go retires it when
// fn returns instead of reusing it elsewhere.
func inNetns(ns string, fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		fn()
		errc <- nil
	}()
	return <-errc
}

// nsDial dials addr from the network namespace ns, from local when it is set.
func nsDial(ctx context.Context, ns, local, addr string, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	var c net.Conn
	var err error
	if e := inNetns(ns, func() { c, err = d.DialContext(ctx, "tcp", addr) }); e != nil {
		return nil, e
	}
	return c, err
}

// nsClient is an HTTP client whose connections start in the namespace ns.
func nsClient(ns string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return nsDial(ctx, ns, "", addr, 2*time.Second)
		},
	}}
}

// nsDo sends one request with c; headers are name, value pairs.
func nsDo(c *http.Client, method, url, body string, headers ...string) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return response{}, err
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}, err
}

// startInNetns runs rampart inside the network namespace ns, as its own process. `ip netns exec`
// execs rampart in place, so the PID is rampart's and the harness's SIGTERM reaches it.
func startInNetns(t *testing.T, dir, ns string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, binary}, args...)...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start rampart in %s %v: %v", ns, args, err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

const netnsConfig = `version: 1
secrets:
  origin-verify:
    file: keys/origin-verify.keys
gateways:
  - name: public-api
    listen: 10.231.1.1:8080
    cors:
      mode: enforce
      allow_origins: ["http://10.231.1.1:3000"]
      allow_methods: [GET, POST, PUT, DELETE]
      allow_headers: [Content-Type]
    request_headers:
      X-Origin-Verify: "${secret:origin-verify}"
    routes:
      - {path: /items, methods: [GET, POST], integration: {url: "http://10.231.1.1:8081"}}
      - {path: "/items/{id}", methods: [GET, PUT, DELETE], integration: {url: "http://10.231.1.1:8081"}}
load_balancers:
  - name: app-alb
    egress: 10.231.2.1
    listeners:
      - listen: 10.231.1.1:8081
        web_acl: gateway-only
        rules:
          - priority: 10
            conditions: {path: ["/items", "/items/*"]}
            action: {forward: {target_group: items}}
        default_action: {fixed_response: {status: 404}}
    target_groups:
      - name: items
        targets: ["10.231.2.2:9001"]
        health_check: {path: /healthz, interval: 1s, timeout: 500ms, healthy_threshold: 2, unhealthy_threshold: 2}
web_acls:
  - name: gateway-only
    default_action: allow
    rules:
      - name: require-origin-verify
        priority: 0
        action: block
        statement: {not: {origin_verify: {header: X-Origin-Verify, secret: origin-verify}}}
apps:
  - name: items
    listen: ["10.231.2.2:9001"]
    allow_from: ["10.231.2.1/32"]
    database: "sqlite:items.db"
`

// TestNetnsTiers runs the gateway, the load balancer and the app as three processes in their own
// network namespaces, with a database port in the private tier, and checks from the public
// namespace what an outsider can and cannot reach.
func TestNetnsTiers(t *testing.T) {
	pub, edge, priv := netnsSetup(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rampart.yaml"), []byte(netnsConfig), 0o644); err != nil {
		t.Fatal(err)
	}

	// The database tier: a TCP listener in the private namespace that counts every connection it
	// accepts. Nothing from the public side may ever be counted.
	var db net.Listener
	if err := inNetns(priv, func() { db, _ = net.Listen("tcp", nsPrivAddr+":5432") }); err != nil || db == nil {
		t.Fatalf("database listener in %s: %v", priv, err)
	}
	t.Cleanup(func() { db.Close() })
	var dbAccepted atomic.Int64
	go func() {
		for {
			c, err := db.Accept()
			if err != nil {
				return
			}
			dbAccepted.Add(1)
			c.Close()
		}
	}()

	app := startInNetns(t, dir, priv, "app", "-c", "rampart.yaml")
	lbp := startInNetns(t, dir, edge, "lb", "-c", "rampart.yaml")
	gw := startInNetns(t, dir, edge, "gateway", "-c", "rampart.yaml")
	procs := []*proc{app, lbp, gw}
	crashed := func() int {
		n := 0
		for _, p := range procs {
			select {
			case <-p.done:
				n++
				t.Errorf("rampart %v exited: %v\n%s", p.cmd.Args[3:], p.exitErr, p.output())
			default:
			}
		}
		return n
	}

	public := nsClient(pub)
	gwURL, lbURL := "http://"+nsEdgeAddr+":8080", "http://"+nsEdgeAddr+":8081"
	sent := 0
	eventually(t, 60*time.Second, func() error {
		if crashed() > 0 {
			t.FailNow()
		}
		sent++
		r, err := nsDo(public, "GET", gwURL+"/items", "")
		if err != nil {
			return err
		}
		if r.status != 200 {
			return fmt.Errorf("GET /items through the gateway: %d %s", r.status, r.body)
		}
		return nil
	})

	t.Run("public to gateway to app round trip", func(t *testing.T) {
		name := fmt.Sprintf("netns-%d", time.Now().UnixNano())
		r, err := nsDo(public, "POST", gwURL+"/items", `{"name":"`+name+`"}`, "Content-Type", "application/json")
		sent++
		if err != nil || r.status != 201 {
			t.Fatalf("POST /items: %v %d %s", err, r.status, r.body)
		}
		var created item
		if err := json.Unmarshal([]byte(r.body), &created); err != nil {
			t.Fatalf("POST /items body %q: %v", r.body, err)
		}
		r, err = nsDo(public, "GET", fmt.Sprintf("%s/items/%d", gwURL, created.ID), "")
		sent++
		if err != nil || r.status != 200 || !strings.Contains(r.body, name) {
			t.Fatalf("GET the item back: %v %d %s", err, r.status, r.body)
		}
		reliability.Record(t, reliability.Scenario{Area: "isolation (network namespaces)", Name: "public → gateway → load balancer → app",
			Expected: "200, and an item created through the gateway reads back", Measured: "201 then 200 with the item", Sent: 2})
	})

	t.Run("public cannot reach the private tier", func(t *testing.T) {
		for _, target := range []struct{ name, addr string }{
			{"app", nsPrivAddr + ":9001"},
			{"database", nsPrivAddr + ":5432"},
		} {
			start := time.Now()
			c, err := nsDial(context.Background(), pub, "", target.addr, time.Second)
			if err == nil {
				c.Close()
				t.Errorf("public → %s %s connected, want unreachable", target.name, target.addr)
			}
			took := time.Since(start)
			if took > 2*time.Second {
				t.Errorf("public → %s: the dial took %v, want it to fail within the 1s dial timeout", target.name, took)
			}
			leaked := int64(0)
			if err == nil {
				leaked = 1
			}
			reliability.Record(t, reliability.Scenario{Area: "isolation (network namespaces)", Name: "public → " + target.name + " (" + target.addr + ")",
				Expected: "no connection (the edge does not forward, the private tier has no route back)",
				Measured: fmt.Sprintf("dial failed after %v: %v", took.Round(10*time.Millisecond), errShort(err)), Sent: 1, Leaked: leaked})
		}
		if n := dbAccepted.Load(); n != 0 {
			t.Errorf("the database accepted %d connections from outside the private tier", n)
		}
		// The database is really there: its own tier reaches it (and this one connection is
		// not an outsider's).
		c, err := nsDial(context.Background(), priv, "", nsPrivAddr+":5432", time.Second)
		if err != nil {
			t.Fatalf("the database is not reachable from its own tier: %v", err)
		}
		c.Close()
		eventually(t, 2*time.Second, func() error {
			if dbAccepted.Load() != 1 {
				return fmt.Errorf("the database has not accepted its own tier's connection")
			}
			return nil
		})
		dbAccepted.Add(-1)
	})

	t.Run("edge addresses other than the egress are refused by the app", func(t *testing.T) {
		// From the edge namespace but from the public-facing address: allow_from names only the
		// load balancer's egress. (No route: the private tier cannot answer 10.231.1.1 at all.)
		c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				return nsDial(ctx, edge, nsEdgeAddr, addr, time.Second)
			}}}
		if r, err := nsDo(c, "GET", "http://"+nsPrivAddr+":9001/items", ""); err == nil {
			t.Errorf("the app answered %d to a connection from %s", r.status, nsEdgeAddr)
		}
		// From the egress address the security group lets HTTP through (the load balancer's path).
		c.Transport.(*http.Transport).DialContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
			return nsDial(ctx, edge, nsEgress, addr, time.Second)
		}
		if r, err := nsDo(c, "GET", "http://"+nsPrivAddr+":9001/healthz", ""); err != nil || r.status != 200 {
			t.Errorf("from the egress address: %v %d", err, r.status)
		}
	})

	t.Run("public to load balancer without the header", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			headers []string
		}{
			{"no header", nil},
			{"forged header", []string{"X-Origin-Verify", "forged-0123456789abcdef"}},
		} {
			r, err := nsDo(public, "GET", lbURL+"/items", "", tc.headers...)
			sent++
			if err != nil || r.status != 403 {
				t.Errorf("%s: %v %d, want 403", tc.name, err, r.status)
			}
			reliability.Record(t, reliability.Scenario{Area: "isolation (network namespaces)", Name: "public → load balancer, " + tc.name,
				Expected: "403 from the WAF", Measured: fmt.Sprintf("%d", r.status), Sent: 1})
		}
	})

	n := crashed()
	reliability.Record(t, reliability.Scenario{Area: "isolation (network namespaces)", Name: "three processes in three namespaces",
		Expected: "no process exits; the database counts no outside connection",
		Measured: fmt.Sprintf("%d of 3 processes exited; database accepted %d outside connections", n, dbAccepted.Load()),
		Sent:     sent, Leaked: dbAccepted.Load(), Crashes: n})
}

// errShort names a dial error by its cause.
func errShort(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return "connected"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &ne) && ne.Timeout():
		return "timed out (packets dropped)"
	}
	return err.Error()
}
