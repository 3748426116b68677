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
	"errors"
	"fmt"
	"log/slog"
	"net"
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
	"github.com/rampart-edge/rampart/internal/server"
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

// Endpoint is one listener of the topology, for banners and logs.
type Endpoint struct {
	Kind   Kind
	Name   string // gateway, load balancer or instance name
	Listen string
	Note   string // e.g. "web ACL gateway-only", "from 127.0.0.3/32 only"
}

// Topology is the built, not yet listening, set of components of one process.
type Topology struct {
	Endpoints []Endpoint

	logger    *slog.Logger
	endpoints []endpoint
	runners   []func(context.Context)
	closers   []func()
	units     []server.Unit
	keyrings  keyringSet // live keyrings by secret name (keyrings.go)
	// adminRoutes are the read-only views components add to the admin listener; register them
	// before the admin endpoint is built at the end of Build.
	adminRoutes []admin.Route
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
}

// Build builds the selected components of cfg. It loads (creating when absent) only the keyrings
// the selected components use, so an app-tier process never holds the origin-verify secret.
func Build(ctx context.Context, cfg *config.Config, sel Selection, opts Options) (*Topology, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &Topology{logger: logger}
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

	keyrings, err := t.loadKeyrings(cfg, gateways, lbs, opts.Redactor)
	if err != nil {
		return nil, err
	}

	acls, err := t.buildWebACLs(cfg, gateways, lbs, keyrings, logger)
	if err != nil {
		return nil, err
	}
	for _, gc := range gateways {
		g, err := gateway.New(gc, keyrings, logger, gateway.WithWebACL(acls[gc.WebACL]))
		if err != nil {
			return nil, err // already names the gateway
		}
		t.closers = append(t.closers, g.Close)
		t.add(Endpoint{Kind: KindGateway, Name: gc.Name, Listen: gc.Listen, Note: "CORS " + gc.CORS.Mode}, nil, g)
	}

	if len(lbs) > 0 {
		for _, lc := range lbs {
			l, err := lb.New(lc, acls, logger.With("component", "lb", "load_balancer", lc.Name))
			if err != nil {
				return nil, fmt.Errorf("load balancer %q: %w", lc.Name, err)
			}
			t.closers = append(t.closers, l.Close)
			t.runners = append(t.runners, l.Run)
			for i, li := range lc.Listeners {
				note := "no web ACL"
				if li.WebACL != "" {
					note = "web ACL " + li.WebACL
				}
				t.add(Endpoint{Kind: KindLB, Name: lc.Name, Listen: li.Listen, Note: note}, nil, l.Handler(i))
				if err := t.listenerTLS(li); err != nil {
					return nil, fmt.Errorf("load balancer %q: listener %s: %w", lc.Name, li.Listen, err)
				}
			}
		}
	}

	for _, ac := range apps {
		if err := t.addApp(ctx, ac, sel.Listen, logger); err != nil {
			return nil, fmt.Errorf("app %q: %w", ac.Name, err)
		}
	}
	if sel.Listen != "" && sel.Kinds[KindApp] && !t.has(KindApp) {
		return nil, fmt.Errorf("no app instance listens on %s", sel.Listen)
	}

	if sel.Kinds[KindWeb] && cfg.Web != nil && cfg.Web.Listen != "" {
		t.add(Endpoint{Kind: KindWeb, Name: "demo page", Listen: cfg.Web.Listen, Note: "calls " + cfg.Web.GatewayURL}, nil, demoweb.New(cfg.Web.GatewayURL))
	}
	if sel.Kinds[KindAdmin] {
		addr := sel.AdminListen
		if addr == "" && cfg.Admin != nil {
			addr = cfg.Admin.Listen
		}
		if addr != "" {
			t.add(Endpoint{Kind: KindAdmin, Name: "admin", Listen: addr}, nil, admin.New(opts.Version, t.adminRoutes...))
		}
	}
	if len(t.endpoints) == 0 {
		return nil, fmt.Errorf("nothing to run: %s has no %s", cfg.File, kindsLabel(sel))
	}
	ok = true
	return t, nil
}

func (t *Topology) addApp(ctx context.Context, ac config.App, only string, logger *slog.Logger) error {
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
			store, err = demoapp.OpenStore(ctx, ac.Database)
			if err != nil {
				return err
			}
			s := store
			t.closers = append(t.closers, func() { _ = s.Close() })
		}
		instance := fmt.Sprintf("%s-%d", ac.Name, i+1)
		note := "open to any source"
		if len(ac.AllowFrom) > 0 {
			note = "from " + strings.Join(ac.AllowFrom, ", ") + " only"
		}
		h := demoapp.New(instance, store, logger)
		t.add(Endpoint{Kind: KindApp, Name: instance, Listen: addr, Note: note}, allow, h)
	}
	return nil
}

func (t *Topology) add(e Endpoint, allow []netip.Prefix, h http.Handler) {
	t.endpoints = append(t.endpoints, endpoint{Endpoint: e, allow: allow, handler: h})
	t.Endpoints = append(t.Endpoints, e)
}

func (t *Topology) has(k Kind) bool {
	return slices.ContainsFunc(t.Endpoints, func(e Endpoint) bool { return e.Kind == k })
}

// Listen opens every listener. If one fails, those already open are closed, so a failed start
// leaves no port held.
func (t *Topology) Listen() error {
	for _, e := range t.endpoints {
		ln, err := server.Listen(e.Listen, e.allow, t.logger)
		if err == nil && e.tls != nil {
			ln = tls.NewListener(ln, e.tls)
		}
		if w, ok := e.handler.(lb.ListenerWrapper); ok && err == nil {
			ln = w.WrapListener(ln) // the load balancer's request-smuggling guard and idle timeout
		}
		if err != nil {
			for _, u := range t.units {
				_ = u.Listener.Close()
			}
			t.units = nil
			return fmt.Errorf("%s %s: %w", e.Kind, e.Name, err)
		}
		t.units = append(t.units, server.Unit{Name: string(e.Kind) + " " + e.Name, Listener: ln, Handler: e.handler, Tier: shutdownTier(e.Kind)})
	}
	return nil
}

// Addrs returns the bound address of each endpoint, in Endpoints order (useful with port 0).
func (t *Topology) Addrs() []net.Addr {
	addrs := make([]net.Addr, len(t.units))
	for i, u := range t.units {
		addrs[i] = u.Listener.Addr()
	}
	return addrs
}

// Serve runs background work (health checks) and serves every listener until ctx is done, then
// drains in-flight requests for up to grace and releases every resource. Listen must have
// succeeded.
func (t *Topology) Serve(ctx context.Context, grace time.Duration) error {
	if len(t.units) != len(t.endpoints) {
		return errors.New("topology: Serve called before Listen succeeded")
	}
	runCtx, stopRunners := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, run := range t.runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(runCtx)
		}()
	}
	err := server.Serve(ctx, t.units, grace, t.logger)
	stopRunners()
	wg.Wait()
	t.close()
	return err
}

func (t *Topology) close() {
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
