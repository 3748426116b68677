package lb

import (
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/rampart-edge/rampart/internal/config"
)

// target is one backend address. Targets start healthy so that traffic flows before the first
// health check finishes.
type target struct {
	addr    string
	healthy atomic.Bool
}

// targetGroup balances requests over its healthy targets, round robin.
type targetGroup struct {
	name    string
	targets []*target
	hc      healthCheck
	logger  *slog.Logger

	next atomic.Uint64 // round-robin counter, shared by every request

	mu      sync.Mutex                // serializes health changes
	healthy atomic.Pointer[[]*target] // snapshot of the healthy targets, replaced on every change
}

func newTargetGroup(cfg config.TargetGroup, logger *slog.Logger) (*targetGroup, error) {
	if cfg.Algorithm != "" && cfg.Algorithm != config.RoundRobin {
		return nil, fmt.Errorf("algorithm %q: only %s is implemented", cfg.Algorithm, config.RoundRobin)
	}
	hc, err := newHealthCheck(cfg.HealthCheck)
	if err != nil {
		return nil, err
	}
	g := &targetGroup{name: cfg.Name, hc: hc, logger: logger}
	seen := map[string]bool{}
	for _, addr := range cfg.Targets {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("target %q: want host:port: %w", addr, err)
		}
		if seen[addr] {
			return nil, fmt.Errorf("target %q is listed twice", addr)
		}
		seen[addr] = true
		t := &target{addr: addr}
		t.healthy.Store(true)
		g.targets = append(g.targets, t)
	}
	all := append([]*target(nil), g.targets...)
	g.healthy.Store(&all)
	return g, nil
}

// pick returns the next target, or nil when the group has no targets at all. When every target is
// unhealthy it fails open and balances over all of them: a health check that is wrong (or a
// dependency they share that is down) should not turn a degraded service into a dead one.
func (g *targetGroup) pick() *target {
	list := *g.healthy.Load()
	if len(list) == 0 {
		list = g.targets
	}
	if len(list) == 0 {
		return nil
	}
	n := g.next.Add(1) - 1
	return list[n%uint64(len(list))]
}

// setHealth records a health change of t and logs it. cause is the last failure, if any.
func (g *targetGroup) setHealth(t *target, healthy bool, cause error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	t.healthy.Store(healthy)
	var list []*target
	for _, x := range g.targets {
		if x.healthy.Load() {
			list = append(list, x)
		}
	}
	g.healthy.Store(&list)

	state := "healthy"
	if !healthy {
		state = "unhealthy"
	}
	attrs := []any{"group", g.name, "target", t.addr, "state", state}
	if cause != nil {
		attrs = append(attrs, "error", cause.Error())
	}
	g.logger.Info("target health changed", attrs...)
	if len(list) == 0 {
		g.logger.Warn("every target is unhealthy; failing open to all targets", "group", g.name)
	}
}
