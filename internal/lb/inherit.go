package lb

// WithInheritedHealth starts the targets that a previous load balancer of the same name knew to be
// unhealthy as unhealthy, instead of healthy. A config reload builds a new LoadBalancer; without
// this, a target known to be down would get traffic again until its checks failed anew
// (unhealthy_threshold × interval). prev is what that load balancer's TargetHealth returned;
// targets it does not name (new ones) start as usual.
func WithInheritedHealth(prev map[string]map[string]bool) Option {
	return func(lb *LoadBalancer) { lb.inherited = prev }
}

// applyInheritedHealth marks the targets that were unhealthy in the previous generation. New
// calls it once the target groups (and their DNS targets) exist and before anything is served.
func (lb *LoadBalancer) applyInheritedHealth() {
	if lb.inherited == nil {
		return
	}
	for _, g := range lb.groups {
		prev := lb.inherited[g.name]
		g.mu.Lock()
		for _, t := range g.targets {
			if healthy, known := prev[t.addr]; known && !healthy {
				t.healthy.Store(false)
			}
		}
		g.mu.Unlock()
	}
}
