// Package topology turns a validated config into the running parts of one process: it builds the
// selected components (gateways, load balancers, app instances, the demo page, the admin listener),
// opens their listeners, runs their background work and shuts everything down in order.
//
// `rampart run` selects every component; `rampart gateway|lb|app` select one kind, so the same
// file can drive one process per component on separate hosts.
package topology

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rampart-edge/rampart/internal/admin"
	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/demoapp"
	"github.com/rampart-edge/rampart/internal/demoweb"
	"github.com/rampart-edge/rampart/internal/gateway"
	"github.com/rampart-edge/rampart/internal/lb"
	"github.com/rampart-edge/rampart/internal/observe"
	"github.com/rampart-edge/rampart/internal/proxy"
	"github.com/rampart-edge/rampart/internal/server"
	"github.com/rampart-edge/rampart/internal/waf"
)

// Kind is a component kind.
type Kind string

// Component kinds.
const (
	KindGateway Kind = "gateway"
	KindLB      Kind = "lb"
	KindApp     Kind = "app"
	KindWeb     Kind = "web"
	KindAdmin   Kind = "admin"
)

// shutdownTier orders graceful shutdown from the outside in: what the public calls stops first,
// so that requests it already accepted can still cross the inner tiers. Admin stops last so that
// probes see the process until the end.
func shutdownTier(k Kind) int {
	switch k {
	case KindGateway, KindWeb:
		return 0
	case KindLB:
		return 1
	case KindApp:
		return 2
	default:
		return 3
	}
}

// Selection says which components this process runs.
type Selection struct {
	Kinds map[Kind]bool
	// Name, when set, selects the gateway, load balancer or app group of that name.
	Name string
	// Listen, when set for apps, runs only the instance on that address.
	Listen string
	// AdminListen overrides admin.listen; admin runs only when KindAdmin is selected.
	AdminListen string
}

// ConfigScope is the part of the config file that s runs, which is what loading the file for s
// (at start and at every reload) requires of the environment: a selection that includes the demo
// page is `rampart run`, the whole file; any other names its kinds and name (config.Scope).
func (s Selection) ConfigScope() config.Scope {
	if s.Kinds[KindWeb] && s.Name == "" {
		return config.Scope{}
	}
	return config.Scope{Gateways: s.Kinds[KindGateway], LoadBalancers: s.Kinds[KindLB], Apps: s.Kinds[KindApp], Name: s.Name}
}

// Endpoint is one listener of the topology, for banners and logs.
type Endpoint struct {
	Kind   Kind
	Name   string // gateway, load balancer or instance name
	Listen string
	Note   string // e.g. "web ACL gateway-only", "from 127.0.0.3/32 only"
}

// generation is the set of components built from one config: the first one at start, a new one
// at each reload (runtime.go swaps it in). Its listeners belong to the Topology, not to it.
type generation struct {
	Endpoints []Endpoint

	seq       uint64 // 1 for the first generation, then one more at each build
	cfg       *config.Config
	hash      string // ConfigHash(cfg), computed once: the admin state and reloads read it often
	sel       Selection
	logger    *slog.Logger
	endpoints []endpoint
	runners   []func(context.Context)
	closers   []func()
	keyrings  keyringSet // live keyrings by secret name (keyrings.go)
	// keyringReload asks the generation's keyring watcher to reload every keyring (SIGHUP).
	keyringReload chan struct{}
	// lbs are the load balancers by name, and matches the WAF's recent matches, for the admin
	// API and the dashboard (adminapi.go).
	lbs     map[string]*lb.LoadBalancer
	matches *waf.Matches
	// firstVerdict is how long the health checks of the slowest target group take to reach a
	// verdict on a target that is down ((unhealthy_threshold-1)×interval + timeout): once the
	// generation has served that long, every target has had one (readiness, adminapi.go).
	firstVerdict time.Duration
	// While the generation serves (runtime.go): when it started, and how to stop its runners.
	started     time.Time
	stopRunners func()
	runnersDone sync.WaitGroup
	// adminRoutes are the read-only views components add to the admin listener; register them
	// before the admin endpoint is built at the end of Build.
	adminRoutes []admin.Route
	observe     observeSet // metrics and tracing of the components (observe.go)
}

type endpoint struct {
	Endpoint
	allow   []netip.Prefix
	handler http.Handler
	tls     *tls.Config // HTTPS when set (tls.go)
}

// Options carry what Build needs besides the config.
type Options struct {
	Logger   *slog.Logger
	Redactor *observe.Redactor // every loaded secret is registered with it
	Version  string
	// ConfigPath is the file the config was loaded from, which reloads read again; empty for the
	// embedded default, which cannot be reloaded.
	ConfigPath string
	// Metrics and Tracing instrument every component (observe.go; docs/observability.md). Nil:
	// none, at no cost. Metrics are served at the admin listener's GET /metrics.
	Metrics *observe.Metrics
	Tracing *observe.Tracing
	// DrainDelay is how long, once Serve's context is done, the listeners keep accepting while
	// /readyz answers 503 and every response carries Connection: close (drain.go).
	DrainDelay time.Duration
	// LoopbackHop makes a gateway call a load balancer of the same process over a loopback
	// connection, as it calls one on another host. By default it calls the load balancer's
	// handler in-process (proxy.InProcess; docs/performance.md).
	LoopbackHop bool
}

// build builds the selected components of cfg. It loads (creating when absent) only the keyrings
// the selected components use, so an app-tier process never holds the origin-verify secret;
// keyrings and the WAF's shared state already in ps are reused, so that a reload keeps them live.
// hash is ConfigHash(cfg), which the caller has computed already.
func build(ctx context.Context, cfg *config.Config, hash string, sel Selection, opts Options, ps *persistent, api *adminAPI) (*generation, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &generation{logger: logger, cfg: cfg, hash: hash, sel: sel, lbs: map[string]*lb.LoadBalancer{}, keyringReload: make(chan struct{}), seq: ps.nextSeq()}
	t.observe = newObserveSet(opts)
	ok := false
	defer func() {
		if !ok {
			t.close()
		}
	}()

	gateways := pick(cfg.Gateways, sel, KindGateway, func(g config.Gateway) string { return g.Name })
	lbs := pick(cfg.LoadBalancers, sel, KindLB, func(l config.LoadBalancer) string { return l.Name })
	apps := pick(cfg.Apps, sel, KindApp, func(a config.App) string { return a.Name })
	if sel.Name != "" && len(gateways)+len(lbs)+len(apps) == 0 {
		return nil, fmt.Errorf("no %s named %q in %s", kindsLabel(sel), sel.Name, cfg.File)
	}

	keyrings, err := t.loadKeyrings(cfg, gateways, lbs, opts.Redactor, &ps.keyrings)
	if err != nil {
		return nil, err
	}

	acls, err := t.buildWebACLs(cfg, gateways, lbs, keyrings, logger, ps)
	if err != nil {
		return nil, err
	}
	// Plain-HTTP load balancer listeners, for the gateways; they keep the header limit of the
	// listener's server, which an in-process request never crosses.
	local := &proxy.LocalHandlers{MaxHeaderBytes: server.MaxHeaderBytes}
	if len(lbs) > 0 {
		for _, lc := range lbs {
			lbOpts := t.observe.lbOptions()
			if prev := api.topo.current(); prev != nil && prev.lbs[lc.Name] != nil {
				// A reload: targets the running generation knows to be down stay down until
				// their checks pass, instead of getting traffic again at once.
				lbOpts = append(lbOpts, lb.WithInheritedHealth(prev.lbs[lc.Name].TargetHealth()))
			}
			l, err := lb.New(lc, acls, logger.With("component", "lb", "load_balancer", lc.Name), lbOpts...)
			if err != nil {
				return nil, fmt.Errorf("load balancer %q: %w", lc.Name, err)
			}
			t.closers = append(t.closers, l.Close)
			t.runners = append(t.runners, l.Run)
			t.lbs[lc.Name] = l
			for _, tg := range lc.TargetGroups {
				hc := tg.HealthCheck
				t.firstVerdict = max(t.firstVerdict, time.Duration(max(hc.UnhealthyThreshold, 1)-1)*hc.Interval.Duration+hc.Timeout.Duration)
			}
			for i, li := range lc.Listeners {
				note := "no web ACL"
				if li.WebACL != "" {
					note = "web ACL " + li.WebACL
				}
				t.add(Endpoint{Kind: KindLB, Name: lc.Name, Listen: li.Listen, Note: note}, nil, l.Handler(i))
				if err := t.listenerTLS(li); err != nil {
					return nil, fmt.Errorf("load balancer %q: listener %s: %w", lc.Name, li.Listen, err)
				}
				if li.TLS == nil && !opts.LoopbackHop {
					if err := local.Add(li.Listen, l.Handler(i)); err != nil {
						return nil, fmt.Errorf("load balancer %q: %w", lc.Name, err)
					}
				}
			}
		}
	}

	// Gateways come after the load balancers so that a gateway can call a load balancer of this
	// process in-process (proxy.LocalHandlers); their endpoints still come first, as the tier
	// the public calls.
	lbEndpoints := t.endpoints
	lbPublic := t.Endpoints
	t.endpoints, t.Endpoints = nil, nil
	for _, gc := range gateways {
		g, err := gateway.New(gc, keyrings, logger, append(t.observe.gatewayOptions(), gateway.WithWebACL(acls[gc.WebACL]), gateway.WithStores(ps.rateLimits()), gateway.WithLocalHandlers(local))...)
		if err != nil {
			return nil, err // already names the gateway
		}
		t.closers = append(t.closers, g.Close)
		t.add(Endpoint{Kind: KindGateway, Name: gc.Name, Listen: gc.Listen, Note: "CORS " + gc.CORS.Mode}, nil, g)
	}
	t.endpoints = append(t.endpoints, lbEndpoints...)
	t.Endpoints = append(t.Endpoints, lbPublic...)

	for _, ac := range apps {
		if err := t.addApp(ctx, ac, sel.Listen, logger, &ps.stores); err != nil {
			return nil, fmt.Errorf("app %q: %w", ac.Name, err)
		}
	}
	if sel.Listen != "" && sel.Kinds[KindApp] && !t.has(KindApp) {
		return nil, fmt.Errorf("no app instance listens on %s", sel.Listen)
	}

	if sel.Kinds[KindWeb] && cfg.Web != nil && cfg.Web.Listen != "" {
		t.add(Endpoint{Kind: KindWeb, Name: "demo page", Listen: cfg.Web.Listen, Note: "calls " + cfg.Web.GatewayURL}, nil, demoweb.New(cfg.Web.GatewayURL))
	}
	t.adminRoutes = append(t.adminRoutes, t.observe.adminRoutes()...) // GET /metrics (observe.go)
	if sel.Kinds[KindAdmin] {
		addr := sel.AdminListen
		if addr == "" && cfg.Admin != nil {
			addr = cfg.Admin.Listen
		}
		if addr != "" {
			if err := checkAdminReach(addr, cfg); err != nil {
				return nil, err
			}
			ps.redactOnce(opts.Redactor, adminToken(cfg)) // logs never show the admin token
			t.add(Endpoint{Kind: KindAdmin, Name: "admin", Listen: addr}, nil, api.handler(t, admin.New(opts.Version, t.adminRoutes...)))
		}
	}
	if len(t.endpoints) == 0 {
		return nil, fmt.Errorf("nothing to run: %s has no %s", cfg.File, kindsLabel(sel))
	}
	ok = true
	return t, nil
}

func (t *generation) addApp(ctx context.Context, ac config.App, only string, logger *slog.Logger, stores *storeCache) error {
	allow, err := server.ParseAllow(ac.AllowFrom)
	if err != nil {
		return err
	}
	var store demoapp.Store
	for i, addr := range ac.Listen {
		if only != "" && addr != only {
			continue
		}
		if store == nil {
			// Instances in one process share one store handle; instances in other processes share
			// the database itself.
			// Connections to a networked database leave from the app's own address, so that
			// the database's pg_hba.conf can admit the app tier alone (docs/deploy.md).
			// The handle is shared with the other generations that use the same database
			// (stores.go), and closed when the last of them is.
			var release func()
			store, release, err = stores.acquire(ctx, ac.Database, appSource(addr))
			if err != nil {
				return err
			}
			t.closers = append(t.closers, release)
		}
		instance := fmt.Sprintf("%s-%d", ac.Name, i+1)
		note := "open to any source"
		if len(ac.AllowFrom) > 0 {
			note = "from " + strings.Join(ac.AllowFrom, ", ") + " only"
		}
		h := demoapp.Instrument(demoapp.New(instance, store, logger), instance, t.observe.metrics)
		t.add(Endpoint{Kind: KindApp, Name: instance, Listen: addr, Note: note}, allow, h)
	}
	return nil
}

func (t *generation) add(e Endpoint, allow []netip.Prefix, h http.Handler) {
	t.endpoints = append(t.endpoints, endpoint{Endpoint: e, allow: allow, handler: h})
	t.Endpoints = append(t.Endpoints, e)
}

func (t *generation) has(k Kind) bool {
	return slices.ContainsFunc(t.Endpoints, func(e Endpoint) bool { return e.Kind == k })
}

func (t *generation) close() {
	for i := len(t.closers) - 1; i >= 0; i-- {
		t.closers[i]()
	}
	t.closers = nil
}

// pick returns the items of kind k that the selection wants.
func pick[T any](items []T, sel Selection, k Kind, name func(T) string) []T {
	if !sel.Kinds[k] {
		return nil
	}
	var out []T
	for _, it := range items {
		if sel.Name == "" || name(it) == sel.Name {
			out = append(out, it)
		}
	}
	return out
}

func kindsLabel(sel Selection) string {
	var ks []string
	for _, k := range []Kind{KindGateway, KindLB, KindApp} {
		if sel.Kinds[k] {
			ks = append(ks, string(k))
		}
	}
	return strings.Join(ks, " or ")
}
