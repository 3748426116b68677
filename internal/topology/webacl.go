package topology

import (
	"fmt"
	"log/slog"

	"github.com/rampart-edge/rampart/internal/admin"
	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/originverify"
	"github.com/rampart-edge/rampart/internal/waf"
)

// buildWebACLs compiles the web ACLs the selected gateways and load balancers use, once each.
// ACLs share compiled managed rule groups (the CRS is large), rate-based counters and recent
// matches; the shared set outlives reloads (so a reload recompiles nothing it had, resets no rate
// counter and keeps the dashboard's latest blocks) and is released when the topology stops.
// With no gateway or load balancer selected it compiles nothing.
func (t *generation) buildWebACLs(cfg *config.Config, gateways []config.Gateway, lbs []config.LoadBalancer, keyrings map[string]*originverify.Keyring, logger *slog.Logger, ps *persistent) (map[string]*waf.WebACL, error) {
	used := usedWebACLs(gateways, lbs)
	acls := map[string]*waf.WebACL{}
	if len(used) == 0 {
		return acls, nil
	}
	shared := ps.wafShared()
	t.matches = shared.Matches()
	// The admin API's sample of recent matches, redacted as the WAF log is (docs/waf.md).
	t.adminRoutes = append(t.adminRoutes, admin.Route{Pattern: "GET /waf/matches", Handler: shared.Matches().Handler()})
	for _, ac := range cfg.WebACLs {
		if !used[ac.Name] {
			continue
		}
		acl, err := waf.New(ac, keyrings, logger.With("component", "waf"), append(t.observe.wafOptions(), waf.WithShared(shared), waf.WithRedactedHeaders(apiKeyHeaders(cfg)...))...)
		if err != nil {
			return nil, fmt.Errorf("web ACL %q: %w", ac.Name, err)
		}
		acls[ac.Name] = acl
		// Once the generation has drained: a CRS build no other generation uses is freed.
		t.closers = append(t.closers, acl.Close)
	}
	return acls, nil
}

// usedWebACLs names the web ACLs of the gateways and of the load balancers' listeners: the only
// ones built. A process loaded for a narrower config.Scope may hold stand-ins for the values of
// the others (config.Scope lists what it resolves), so it must not build them.
func usedWebACLs(gateways []config.Gateway, lbs []config.LoadBalancer) map[string]bool {
	used := map[string]bool{}
	for _, g := range gateways {
		if g.WebACL != "" {
			used[g.WebACL] = true
		}
	}
	for _, l := range lbs {
		for _, li := range l.Listeners {
			if li.WebACL != "" {
				used[li.WebACL] = true
			}
		}
	}
	return used
}

// apiKeyHeaders are the api_keys.header of every gateway: a gateway's web ACL runs before its
// authorization, so the WAF log must never show what matched in them (any ACL may be the one).
func apiKeyHeaders(cfg *config.Config) []string {
	var out []string
	for _, g := range cfg.Gateways {
		if g.APIKeys != nil && g.APIKeys.Header != "" {
			out = append(out, g.APIKeys.Header)
		}
	}
	return out
}
