// Package topology turns a validated config into the running parts of one process: it builds the
// selected components (gateways, load balancers, app instances, the demo page, the admin listener),
// opens their listeners, runs their background work and shuts everything down in order.
//
// `rampart run` selects every component; `rampart gateway|lb|app` select one kind, so the same
// file can drive one process per component on separate hosts.
package topology

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
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
	"github.com/rampart-edge/rampart/internal/originverify"
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
}

type endpoint struct {
	Endpoint
	allow   []netip.Prefix
	handler http.Handler
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

	keyrings, err := loadKeyrings(cfg, gateways, lbs, opts.Redactor)
	if err != nil {
		return nil, err
	}

	for _, gc := range gateways {
		g, err := gateway.New(gc, keyrings, logger)
		if err != nil {
			return nil, err // already names the gateway
		}
		t.closers = append(t.closers, g.Close)
		t.add(Endpoint{Kind: KindGateway, Name: gc.Name, Listen: gc.Listen, Note: "CORS " + gc.CORS.Mode}, nil, g)
	}

	if len(lbs) > 0 {
		acls := map[string]*waf.WebACL{}
		for _, ac := range cfg.WebACLs {
			acl, err := waf.New(ac, keyrings, logger.With("component", "waf"))
			if err != nil {
				return nil, fmt.Errorf("web ACL %q: %w", ac.Name, err)
			}
			acls[ac.Name] = acl
		}
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
			t.add(Endpoint{Kind: KindAdmin, Name: "admin", Listen: addr}, nil, admin.New(opts.Version))
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
		if err != nil {
			for _, u := range t.units {
				_ = u.Listener.Close()
			}
			t.units = nil
			return fmt.Errorf("%s %s: %w", e.Kind, e.Name, err)
		}
		t.units = append(t.units, server.Unit{Name: string(e.Kind) + " " + e.Name, Listener: ln, Handler: e.handler})
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

// loadKeyrings loads every keyring that the selected gateways and load balancers reference.
func loadKeyrings(cfg *config.Config, gateways []config.Gateway, lbs []config.LoadBalancer, red *observe.Redactor) (map[string]*originverify.Keyring, error) {
	names := map[string]bool{}
	for _, g := range gateways {
		for _, h := range g.RequestHeaders {
			for _, s := range h.Value.Secrets() {
				names[s] = true
			}
		}
	}
	if len(lbs) > 0 {
		for _, acl := range cfg.WebACLs {
			for _, r := range acl.Rules {
				collectStatementSecrets(r.Statement, names)
			}
		}
	}
	keyrings := map[string]*originverify.Keyring{}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		spec, ok := cfg.Secrets[name]
		if !ok {
			return nil, fmt.Errorf("secret %q is referenced but not defined in the secrets section", name)
		}
		k, err := originverify.LoadOrCreate(name, spec.File)
		if err != nil {
			return nil, err
		}
		if red != nil {
			red.Add(k.Secrets()...)
		}
		keyrings[name] = k
	}
	return keyrings, nil
}

func collectStatementSecrets(s config.Statement, names map[string]bool) {
	if s.OriginVerify != nil {
		names[s.OriginVerify.Secret] = true
	}
	if s.Not != nil {
		collectStatementSecrets(*s.Not, names)
	}
	for _, c := range append(append([]config.Statement(nil), s.And...), s.Or...) {
		collectStatementSecrets(c, names)
	}
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
