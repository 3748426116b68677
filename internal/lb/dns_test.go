package lb

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/rampart-edge/rampart/internal/config"
)

// testDNS is a tiny authoritative DNS server on loopback UDP: it answers A queries for the names
// it holds, NXDOMAIN for the others, and no AAAA records.
type testDNS struct {
	conn *net.UDPConn
	mu   sync.Mutex
	a    map[string][]netip.Addr // fully qualified name → addresses
	hits map[string]int
}

func newTestDNS(t *testing.T) *testDNS {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	d := &testDNS{conn: c, a: map[string][]netip.Addr{}, hits: map[string]int{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.serve()
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return d
}

func (d *testDNS) set(name string, addrs ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var as []netip.Addr
	for _, a := range addrs {
		as = append(as, netip.MustParseAddr(a))
	}
	d.a[name+"."] = as
}

func (d *testDNS) serve() {
	buf := make([]byte, 512)
	for {
		n, from, err := d.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		name := q.Name.String()
		d.mu.Lock()
		addrs, known := d.a[name]
		d.hits[name]++
		d.mu.Unlock()
		rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeSuccess}
		if !known {
			rh.RCode = dnsmessage.RCodeNameError
		}
		b := dnsmessage.NewBuilder(nil, rh)
		b.EnableCompression()
		_ = b.StartQuestions()
		_ = b.Question(q)
		_ = b.StartAnswers()
		if q.Type == dnsmessage.TypeA {
			for _, a := range addrs {
				_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}, dnsmessage.AResource{A: a.As4()})
			}
		}
		msg, err := b.Finish()
		if err == nil {
			_, _ = d.conn.WriteToUDP(msg, from)
		}
	}
}

// resolver returns a net.Resolver that asks this server only.
func (d *testDNS) resolver() *net.Resolver {
	addr := d.conn.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "udp", addr)
	}}
}

// TestDNSTargets: a hostname target follows its DNS name. The test backends listen on the
// loopback addresses the name resolves to; changing the answer registers the new address (health
// checked first) and drains the one that left.
func TestDNSTargets(t *testing.T) {
	hosts := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}
	// One port for every backend, so that the name's addresses all serve it.
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(probe.Addr().String())
	probe.Close()
	var backends []*backend
	for _, h := range hosts {
		backends = append(backends, newBackend(t, h, net.JoinHostPort(h, port)))
	}

	dns := newTestDNS(t)
	dns.set("items.test", hosts[0], hosts[1])
	logs := newLogRecorder(nil)
	cfg := forwardAll(config.TargetGroup{
		Name: "g", Targets: []string{"items.test:" + port}, HealthCheck: testHealthCheck(20 * time.Millisecond),
		DNSRefresh: config.Duration{Duration: 50 * time.Millisecond}, DeregistrationDelay: config.Duration{Duration: time.Second},
	}, "")
	lb, url := serve(t, cfg, slog.New(logs), WithResolver(dns.resolver()))

	addrsOf := func() []string {
		ts, _ := lb.Targets("g")
		var out []string
		for _, st := range ts {
			if st.State != "draining" {
				out = append(out, st.Address)
			}
			if st.DNSName != "items.test" {
				t.Errorf("target %s: dns_name %q", st.Address, st.DNSName)
			}
		}
		slices.Sort(out)
		return out
	}
	want := func(hs ...string) []string {
		var out []string
		for _, h := range hs {
			out = append(out, net.JoinHostPort(h, port))
		}
		return out
	}
	// Resolved when the load balancer is built: the first request already has targets.
	if got := addrsOf(); !slices.Equal(got, want(hosts[0], hosts[1])) {
		t.Fatalf("targets after New = %v, want %v", got, want(hosts[0], hosts[1]))
	}
	seen := map[string]bool{}
	for range 4 {
		seen[do(t, "GET", url+"/").body] = true
	}
	if !seen[hosts[0]] || !seen[hosts[1]] || len(seen) != 2 {
		t.Errorf("requests reached %v, want both resolved addresses", seen)
	}

	runHealthChecks(t, lb)
	dns.set("items.test", hosts[1], hosts[2])
	waitFor(t, "the target set follows DNS", func() bool { return slices.Equal(addrsOf(), want(hosts[1], hosts[2])) })
	waitFor(t, "the new address passes its health checks", func() bool { return lb.TargetHealth()["g"][want(hosts[2])[0]] })
	if backends[2].healthHits.Load() == 0 {
		t.Error("the new address was not health checked")
	}
	seen = map[string]bool{}
	for range 6 {
		seen[do(t, "GET", url+"/").body] = true
	}
	if seen[hosts[0]] || !seen[hosts[1]] || !seen[hosts[2]] {
		t.Errorf("after the change requests reached %v, want %s and %s only", seen, hosts[1], hosts[2])
	}
	if l := logs.find("target address left DNS; draining"); len(l) == 0 || l[0]["target"] != want(hosts[0])[0] {
		t.Errorf("drain log = %v", l)
	}

	// A failed lookup keeps the current addresses.
	dns.mu.Lock()
	delete(dns.a, "items.test.")
	dns.mu.Unlock()
	waitFor(t, "lookup failure logged", func() bool { return len(logs.find("DNS lookup of a target failed; keeping its current addresses")) > 0 })
	if got := addrsOf(); !slices.Equal(got, want(hosts[1], hosts[2])) {
		t.Errorf("after a failed lookup targets = %v", got)
	}
}

func TestRegisterRefusesHostname(t *testing.T) {
	a := newBackend(t, "a", "127.0.0.1:0")
	lb, _ := serve(t, forwardAll(group("g", a), ""), nil)
	if err := lb.Register("g", "app.internal:9001", 1); err == nil || !strings.Contains(err.Error(), "IP address") {
		t.Errorf("Register(hostname) = %v", err)
	}
}

// fakeResolver fails every lookup.
type fakeResolver struct{}

func (fakeResolver) LookupHost(context.Context, string) ([]string, error) {
	return nil, errors.New("no DNS here")
}

// A name that does not resolve when the load balancer is built leaves the group without targets
// (503) rather than failing the start; Run retries.
func TestDNSTargetUnresolvable(t *testing.T) {
	cfg := forwardAll(config.TargetGroup{Name: "g", Targets: []string{"nowhere.test:80"}, HealthCheck: testHealthCheck(time.Hour)}, "")
	_, url := serve(t, cfg, nil, WithResolver(fakeResolver{}))
	if got := do(t, "GET", url+"/"); got.status != 503 {
		t.Errorf("unresolvable group = %d, want 503", got.status)
	}
}

// gatedResolver answers every name with one address once `want` lookups are waiting at the same
// time, or after a second; it records the most lookups it saw at once.
type gatedResolver struct {
	mu       sync.Mutex
	inFlight int
	most     int
	want     int
	all      chan struct{}
}

func (g *gatedResolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	g.mu.Lock()
	g.inFlight++
	g.most = max(g.most, g.inFlight)
	if g.inFlight == g.want {
		close(g.all)
	}
	g.mu.Unlock()
	select {
	case <-g.all:
	case <-time.After(time.Second):
	case <-ctx.Done():
	}
	g.mu.Lock()
	g.inFlight--
	g.mu.Unlock()
	return []string{"127.0.0.1"}, nil
}

// The names of DNS targets are looked up side by side, at build as on each refresh: one slow
// name (up to 5 s per lookup) no longer delays every other, nor a start or a reload by their sum.
func TestDNSTargetsResolvedConcurrently(t *testing.T) {
	names := []string{"a.test:80", "b.test:80", "c.test:80", "d.test:80"}
	r := &gatedResolver{want: len(names), all: make(chan struct{})}
	cfg := forwardAll(config.TargetGroup{Name: "g", Targets: names, HealthCheck: testHealthCheck(time.Hour)}, "")
	lb, err := New(cfg, nil, nil, WithResolver(r))
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	if r.most != len(names) {
		t.Fatalf("at most %d lookups at once, want all %d", r.most, len(names))
	}
}
