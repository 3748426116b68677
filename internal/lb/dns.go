package lb

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// DNS targets. A target written as hostname:port is a name, not an address: the group balances
// over the addresses the name resolves to, looked up when the load balancer is built and again
// every dns_refresh while Run runs. An address that appears is registered (and health checked
// like any target registered at run time); one that disappears is deregistered, so it drains:
// its in-flight requests finish, as with Deregister. A failed lookup keeps the current set.

// Resolver looks up the addresses of a host name. *net.Resolver implements it.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// WithResolver replaces net.DefaultResolver for DNS targets (tests, or a resolver with its own
// server).
func WithResolver(r Resolver) Option { return func(lb *LoadBalancer) { lb.resolver = r } }

// dnsTarget is a hostname:port target of a group's configuration.
type dnsTarget struct {
	host, port string
	weight     int
}

// dnsLookupTimeout bounds one lookup.
const dnsLookupTimeout = 5 * time.Second

// isDNSTarget reports whether host is a name rather than an IP address.
func isDNSTarget(host string) bool {
	_, err := netip.ParseAddr(host)
	return err != nil
}

// resolve looks up d and returns its addresses as host:port, sorted.
func (lb *LoadBalancer) resolve(ctx context.Context, d dnsTarget) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, dnsLookupTimeout)
	defer cancel()
	ips, err := lb.resolver.LookupHost(ctx, d.host)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, net.JoinHostPort(ip, d.port))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// refreshGroup brings g's DNS targets in line with what their names resolve to now. The names
// are looked up side by side (each may take up to dnsLookupTimeout), then applied one by one. It
// returns whether every lookup succeeded.
func (lb *LoadBalancer) refreshGroup(ctx context.Context, g *targetGroup) bool {
	type lookup struct {
		addrs []string
		err   error
	}
	found := make([]lookup, len(g.dnsTargets))
	var wg sync.WaitGroup
	for i, d := range g.dnsTargets {
		wg.Go(func() { found[i].addrs, found[i].err = lb.resolve(ctx, d) })
	}
	wg.Wait()
	ok := true
	for i, d := range g.dnsTargets {
		ok = lb.applyDNS(ctx, g, d, found[i].addrs, found[i].err) && ok
	}
	return ok
}

// applyDNS brings the targets resolved from d in line with addrs, what it resolves to now: new
// addresses are registered, vanished ones drained. A failed lookup (err) keeps them as they are;
// it returns whether the lookup succeeded.
func (lb *LoadBalancer) applyDNS(ctx context.Context, g *targetGroup, d dnsTarget, addrs []string, err error) bool {
	if err != nil {
		if ctx.Err() == nil {
			lb.logger.Warn("DNS lookup of a target failed; keeping its current addresses", "group", g.name, "target", net.JoinHostPort(d.host, d.port), "error", err.Error())
		}
		return false
	}
	var gone []string
	g.mu.Lock()
	for _, t := range g.targets {
		if t.dnsName == d.host && !t.draining && !slices.Contains(addrs, t.addr) {
			gone = append(gone, t.addr)
		}
	}
	g.mu.Unlock()
	for _, addr := range addrs {
		if err := lb.register(g, addr, d.weight, d.host); err != nil {
			lb.logger.Debug("DNS target address not registered", "group", g.name, "target", addr, "dns_name", d.host, "error", err.Error())
		}
	}
	for _, addr := range gone {
		lb.logger.Info("target address left DNS; draining", "group", g.name, "target", addr, "dns_name", d.host)
		_ = g.deregister(addr)
	}
	return true
}

// dnsLoop re-resolves g's DNS targets every dns_refresh until ctx is done; a name whose lookup
// failed is retried sooner, at a tenth of the interval.
func (lb *LoadBalancer) dnsLoop(ctx context.Context, g *targetGroup) {
	for {
		wait := g.dnsRefresh
		if !lb.refreshGroup(ctx, g) {
			wait = max(g.dnsRefresh/10, time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
