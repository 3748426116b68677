package topology

import "github.com/rampart-edge/rampart/internal/ratelimit"

// rateLimits is the registry of the gateways' throttle and quota stores (ratelimit.Registry),
// shared by every generation: a reload's new gateway of the same name and store settings takes
// the buckets and quota counters the old one used, so that a reload hands no client a fresh
// burst or quota, and the draining old gateway and the new one count into one set of counters,
// written to the quota file by one writer. Closed by persistent.close at process shutdown.
func (p *persistent) rateLimits() *ratelimit.Registry {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.limits == nil {
		p.limits = ratelimit.NewRegistry()
	}
	return p.limits
}
