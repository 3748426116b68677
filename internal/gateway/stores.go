package gateway

import (
	"context"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/ratelimit"
)

// WithStores makes the gateway take its throttle and quota stores from reg instead of opening its
// own, so that the gateway that replaces it at a reload (built with the same reg) keeps the same
// buckets and quota counters, and the quota file keeps one writer. The gateway gives the stores
// back to reg when it is closed; reg closes a store when no gateway uses it any more. A nil reg
// is ignored.
func WithStores(reg *ratelimit.Registry) Option { return func(o *options) { o.stores = reg } }

// openStores takes the limiter and quota store of cfg.rate_limit_store from reg (nil: a registry
// of the gateway's own, closed with it).
func (a *access) openStores(cfg config.Gateway, reg *ratelimit.Registry) error {
	if reg == nil {
		reg = ratelimit.NewRegistry()
		defer func() { a.closers = append(a.closers, reg.Close) }() // after the releases
	}
	store := cfg.RateLimitStore
	if store == "" || store == config.RateLimitMemory {
		m, release, err := reg.Memory(cfg.Name)
		if err != nil {
			return err
		}
		a.limiter = m
		a.closers = append(a.closers, release)
		if cfg.APIKeys != nil && hasQuota(cfg) {
			q, release, err := reg.FileQuota(cfg.APIKeys.QuotaFile, cfg.Name, a.logger)
			if err != nil {
				return err
			}
			a.quota = q
			a.closers = append(a.closers, release)
		}
		return nil
	}
	r, release, err := reg.Redis(store)
	if err != nil {
		return err
	}
	a.closers = append(a.closers, release)
	a.limiter, a.quota = r, r
	// Not fatal: the gateway starts, and on_store_error decides until Redis answers.
	if err := r.Ping(context.Background()); err != nil {
		a.logger.Warn("rate limit store not reachable at start; on_store_error applies until it is",
			"on_store_error", cfg.OnStoreError, "err", err)
	}
	return nil
}
