// Package lb is Rampart's application load balancer: listeners whose web ACL is evaluated first,
// prioritized rules with path and host conditions, and actions that forward to a target group or
// answer with a fixed response. Target groups balance round robin over the targets that pass
// their active health checks.
//
// Every connection to a target, proxied requests and health checks alike, leaves from the
// configured egress address, so the private tier can admit the load balancer alone. The headers
// that carry the origin-verify secret are removed before a request is forwarded: apps never see it.
package lb

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/proxy"
	"github.com/rampart-edge/rampart/internal/waf"
)

// LoadBalancer is one configured load balancer. Its handlers are safe for concurrent use.
type LoadBalancer struct {
	name      string
	logger    *slog.Logger
	transport *http.Transport
	groups    []*targetGroup // in config order
	handlers  []http.Handler // one per listener, in config order
	running   atomic.Bool
}

// New builds the load balancer described by cfg. acls holds the compiled web ACLs by name; every
// listener's web_acl must be among them. A nil logger discards logs. Errors and log lines do not
// repeat the load balancer's name: the caller, which knows it, adds it (with %w and Logger.With).
func New(cfg config.LoadBalancer, acls map[string]*waf.WebACL, logger *slog.Logger) (*LoadBalancer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	transport, err := proxy.NewTransport(cfg.Egress)
	if err != nil {
		return nil, err
	}
	lb := &LoadBalancer{name: cfg.Name, logger: logger, transport: transport}

	groups := map[string]*targetGroup{}
	for _, tg := range cfg.TargetGroups {
		if groups[tg.Name] != nil {
			return nil, fmt.Errorf("target group %q is defined twice", tg.Name)
		}
		g, err := newTargetGroup(tg, logger)
		if err != nil {
			return nil, fmt.Errorf("target group %q: %w", tg.Name, err)
		}
		groups[tg.Name] = g
		lb.groups = append(lb.groups, g)
	}

	for i, l := range cfg.Listeners {
		h, err := lb.newListener(l, groups, acls)
		if err != nil {
			return nil, fmt.Errorf("listener #%d (%s): %w", i+1, l.Listen, err)
		}
		lb.handlers = append(lb.handlers, h)
	}
	return lb, nil
}

// Handler returns the handler for cfg.Listeners[listener]. It panics if there is no such listener,
// as indexing a slice would.
func (lb *LoadBalancer) Handler(listener int) http.Handler {
	if listener < 0 || listener >= len(lb.handlers) {
		panic(fmt.Sprintf("lb: load balancer %q has no listener #%d (it has %d)", lb.name, listener, len(lb.handlers)))
	}
	return lb.handlers[listener]
}

// Run runs the active health checks of every target until ctx is done, then returns. Each target
// is checked at once and then every interval. Call it at most once at a time.
func (lb *LoadBalancer) Run(ctx context.Context) {
	if !lb.running.CompareAndSwap(false, true) {
		lb.logger.Error("health checks are already running; ignoring a second Run")
		return
	}
	defer lb.running.Store(false)
	var wg sync.WaitGroup
	for _, g := range lb.groups {
		for _, t := range g.targets {
			wg.Go(func() { g.checkLoop(ctx, lb.transport, t) })
		}
	}
	<-ctx.Done()
	wg.Wait()
}

// Close releases idle connections to targets.
func (lb *LoadBalancer) Close() { lb.transport.CloseIdleConnections() }

// TargetHealth reports, for each target group, whether each target is currently healthy.
func (lb *LoadBalancer) TargetHealth() map[string]map[string]bool {
	out := make(map[string]map[string]bool, len(lb.groups))
	for _, g := range lb.groups {
		m := make(map[string]bool, len(g.targets))
		for _, t := range g.targets {
			m[t.addr] = t.healthy.Load()
		}
		out[g.name] = m
	}
	return out
}

// listenerRule is a compiled listener rule.
type listenerRule struct {
	priority int
	cond     conditions
	action   http.Handler
}

// router sends a request to the action of the first matching rule, or to the default action.
type router struct {
	rules         []listenerRule // by priority, lowest first
	defaultAction http.Handler
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for _, rl := range rt.rules {
		if rl.cond.match(r) {
			rl.action.ServeHTTP(w, r)
			return
		}
	}
	rt.defaultAction.ServeHTTP(w, r)
}

// newListener builds one listener's pipeline.
func (lb *LoadBalancer) newListener(l config.Listener, groups map[string]*targetGroup, acls map[string]*waf.WebACL) (http.Handler, error) {
	var acl *waf.WebACL
	if l.WebACL != "" {
		if acl = acls[l.WebACL]; acl == nil {
			return nil, fmt.Errorf("web ACL %q is not defined", l.WebACL)
		}
	}
	rp := lb.newProxy(acl)

	rt := &router{}
	for _, r := range l.Rules {
		act, err := newAction(r.Action, groups, rp)
		if err != nil {
			return nil, fmt.Errorf("rule with priority %d: %w", r.Priority, err)
		}
		rt.rules = append(rt.rules, listenerRule{priority: r.Priority, cond: newConditions(r.Conditions.Path, r.Conditions.Host), action: act})
	}
	// Stable: rules with equal priorities keep their file order.
	slices.SortStableFunc(rt.rules, func(a, b listenerRule) int { return cmp.Compare(a.priority, b.priority) })
	def, err := newAction(l.DefaultAction, groups, rp)
	if err != nil {
		return nil, fmt.Errorf("default_action: %w", err)
	}
	rt.defaultAction = def

	// The pipeline, outermost first. The web ACL sees every request before any rule, so a path
	// with a fixed response cannot be used to probe around it.
	middlewares := []func(http.Handler) http.Handler{lb.accessLog(l.Listen)}
	if acl != nil {
		middlewares = append(middlewares, acl.Wrap)
	}
	var h http.Handler = rt
	for _, mw := range slices.Backward(middlewares) {
		h = mw(h)
	}
	return h, nil
}

// targetKey is the context key under which a forward action hands its chosen target to Rewrite.
type targetKey struct{}

// newProxy returns the reverse proxy of a listener. It keeps the inbound Host (as AWS ALB does),
// appends the peer to X-Forwarded-For, and deletes the headers that carry the origin-verify secret.
func (lb *LoadBalancer) newProxy(acl *waf.WebACL) *httputil.ReverseProxy {
	var secretHeaders []string
	if acl != nil {
		secretHeaders = acl.SecretHeaders()
	}
	return proxy.New(proxy.Options{
		Transport: lb.transport,
		Logger:    lb.logger,
		Component: "lb",
		Rewrite: func(pr *httputil.ProxyRequest) {
			if t, ok := pr.In.Context().Value(targetKey{}).(*target); ok {
				pr.Out.URL.Scheme = "http"
				pr.Out.URL.Host = t.addr
			}
			proxy.SetForwarded(pr, true)
			for _, h := range secretHeaders {
				pr.Out.Header.Del(h)
			}
		},
	})
}

// newAction compiles a rule or default action.
func newAction(a config.Action, groups map[string]*targetGroup, rp *httputil.ReverseProxy) (http.Handler, error) {
	switch {
	case a.Forward != nil && a.FixedResponse != nil:
		return nil, fmt.Errorf("action sets both forward and fixed_response, want one")
	case a.Forward != nil:
		g := groups[a.Forward.TargetGroup]
		if g == nil {
			return nil, fmt.Errorf("forward: target group %q is not defined", a.Forward.TargetGroup)
		}
		return &forwarder{group: g, proxy: rp}, nil
	case a.FixedResponse != nil:
		fr := a.FixedResponse
		if fr.Status < 200 || fr.Status > 599 {
			return nil, fmt.Errorf("fixed_response: status %d: want 200-599", fr.Status)
		}
		return &fixedResponse{status: fr.Status, contentType: fr.ContentType, body: fr.Body}, nil
	default:
		return nil, fmt.Errorf("action sets neither forward nor fixed_response")
	}
}

// forwarder proxies to the next target of its group.
type forwarder struct {
	group *targetGroup
	proxy *httputil.ReverseProxy
}

func (f *forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := f.group.pick()
	if t == nil {
		proxy.WriteJSONError(w, http.StatusServiceUnavailable, "Service Unavailable")
		return
	}
	if rec, ok := r.Context().Value(accessKey{}).(*accessRecord); ok {
		rec.target = t.addr
	}
	f.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, t)))
}

// fixedResponse answers without contacting a target.
type fixedResponse struct {
	status      int
	contentType string
	body        string
}

func (f *fixedResponse) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	switch {
	case f.contentType != "":
		h.Set("Content-Type", f.contentType)
	case f.body != "":
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(f.status)
	_, _ = io.WriteString(w, f.body)
}
