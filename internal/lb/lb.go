// Package lb is Rampart's application load balancer, modelled on AWS ALB: listeners whose web ACL
// is evaluated first, prioritized rules (host, path, method, header, query and source IP
// conditions) and actions (weighted forwards with group stickiness, redirects, fixed responses).
// Target groups balance round robin, by least outstanding requests or by weighted random choice,
// with slow start, stickiness, active health checks, passive outlier detection, retries, fail-open
// and draining. A connection-level guard (internal/desync) classifies every HTTP/1 request head
// for request smuggling before net/http parses it, on HTTP and HTTPS listeners alike.
//
// Every connection to a target, proxied requests and health checks alike, leaves from the
// configured egress address, so the private tier can admit the load balancer alone. The headers
// that carry the origin-verify secret are removed before a request is forwarded: apps never see it.
package lb

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/desync"
	"github.com/rampart-edge/rampart/internal/proxy"
	"github.com/rampart-edge/rampart/internal/waf"
)

// LoadBalancer is one configured load balancer. Its handlers and methods are safe for concurrent
// use.
type LoadBalancer struct {
	name      string
	logger    *slog.Logger
	transport *http.Transport
	buffers   httputil.BufferPool
	groups    []*targetGroup // in config order
	byName    map[string]*targetGroup
	listeners []*listener // one per listener, in config order
	running   atomic.Bool
	now       func() time.Time
	resolver  Resolver // for hostname:port targets (dns.go)

	// While Run runs: its context and the wait group of the health check loops, so that targets
	// registered at run time get checked too.
	runMu  sync.Mutex
	runCtx context.Context
	checks sync.WaitGroup

	obs lbObserve // metrics and tracing (metrics.go)

	inherited map[string]map[string]bool // health from the previous generation (inherit.go)
}

// Option configures New.
type Option func(*LoadBalancer)

// WithClock replaces time.Now for slow start, ejection and stickiness decisions (tests).
func WithClock(now func() time.Time) Option { return func(lb *LoadBalancer) { lb.now = now } }

// New builds the load balancer described by cfg. acls holds the compiled web ACLs by name; every
// listener's web_acl must be among them. A nil logger discards logs. Errors and log lines do not
// repeat the load balancer's name: the caller, which knows it, adds it (with %w and Logger.With).
func New(cfg config.LoadBalancer, acls map[string]*waf.WebACL, logger *slog.Logger, opts ...Option) (*LoadBalancer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	transport, err := proxy.NewTransport(cfg.Egress)
	if err != nil {
		return nil, err
	}
	lb := &LoadBalancer{name: cfg.Name, logger: logger, transport: transport, buffers: proxy.NewBufferPool(), byName: map[string]*targetGroup{}, now: time.Now, resolver: net.DefaultResolver}
	for _, o := range opts {
		o(lb)
	}
	for _, tg := range cfg.TargetGroups {
		if lb.byName[tg.Name] != nil {
			return nil, fmt.Errorf("target group %q is defined twice", tg.Name)
		}
		g, err := newTargetGroup(tg, logger, lb.now)
		if err != nil {
			return nil, fmt.Errorf("target group %q: %w", tg.Name, err)
		}
		if err := lb.newGroupProxy(g, tg); err != nil {
			return nil, fmt.Errorf("target group %q: %w", tg.Name, err)
		}
		lb.byName[tg.Name] = g
		lb.groups = append(lb.groups, g)
	}
	// Resolve hostname targets once now, so that the first requests find their addresses; Run
	// keeps them current.
	var resolving sync.WaitGroup
	for _, g := range lb.groups {
		if len(g.dnsTargets) > 0 {
			resolving.Go(func() { lb.refreshGroup(context.Background(), g) })
		}
	}
	resolving.Wait()
	lb.applyInheritedHealth()
	for i, l := range cfg.Listeners {
		li, err := lb.newListener(i, l, cfg, acls)
		if err != nil {
			return nil, fmt.Errorf("listener #%d (%s): %w", i+1, l.Listen, err)
		}
		lb.listeners = append(lb.listeners, li)
	}
	lb.obs.start(lb) // metrics.go: the target gauges
	return lb, nil
}

// Handler returns the handler for cfg.Listeners[listener]. It panics if there is no such listener,
// as indexing a slice would. The handler also implements desync.ListenerWrapper, which the
// server must apply to the listener's net.Listener (after TLS, if any).
func (lb *LoadBalancer) Handler(listener int) http.Handler {
	if listener < 0 || listener >= len(lb.listeners) {
		panic(fmt.Sprintf("lb: load balancer %q has no listener #%d (it has %d)", lb.name, listener, len(lb.listeners)))
	}
	return lb.listeners[listener]
}

// Run runs the active health checks of every target until ctx is done, then returns. Each target
// is checked at once and then every interval; targets registered while it runs are checked too.
// Call it at most once at a time.
func (lb *LoadBalancer) Run(ctx context.Context) {
	if !lb.running.CompareAndSwap(false, true) {
		lb.logger.Error("health checks are already running; ignoring a second Run")
		return
	}
	defer lb.running.Store(false)
	lb.runMu.Lock()
	lb.runCtx = ctx
	for _, g := range lb.groups {
		g.mu.Lock()
		for _, t := range g.targets {
			lb.startCheckLocked(g, t)
		}
		g.mu.Unlock()
		if len(g.dnsTargets) > 0 {
			lb.checks.Go(func() { lb.dnsLoop(ctx, g) })
		}
	}
	lb.runMu.Unlock()
	<-ctx.Done()
	lb.runMu.Lock()
	lb.runCtx = nil
	lb.runMu.Unlock()
	lb.checks.Wait()
}

// startCheckLocked starts t's health check loop under the Run context. The caller holds runMu
// and g.mu.
func (lb *LoadBalancer) startCheckLocked(g *targetGroup, t *target) {
	ctx, cancel := context.WithCancel(lb.runCtx)
	t.stopCheck = cancel
	lb.checks.Go(func() { g.checkLoop(ctx, g.transport, g.scheme, t) })
}

// Close releases idle connections to targets and stops pending drains.
func (lb *LoadBalancer) Close() {
	lb.obs.stop()
	for _, g := range lb.groups {
		g.stopTimers()
		g.transport.CloseIdleConnections()
	}
	lb.transport.CloseIdleConnections()
}

// TargetHealth reports, for each target group, whether each target is currently healthy.
func (lb *LoadBalancer) TargetHealth() map[string]map[string]bool {
	out := make(map[string]map[string]bool, len(lb.groups))
	for _, g := range lb.groups {
		m := map[string]bool{}
		for _, st := range g.status() {
			m[st.Address] = st.State == "healthy" || st.State == "ejected"
		}
		out[g.name] = m
	}
	return out
}

// Targets reports every registered target of every group (of the named group when group is not
// empty) with its state, in config order.
func (lb *LoadBalancer) Targets(group string) ([]TargetStatus, error) {
	var out []TargetStatus
	for _, g := range lb.groups {
		if group == "" || g.name == group {
			out = append(out, g.status()...)
		}
	}
	if group != "" && lb.byName[group] == nil {
		return nil, fmt.Errorf("no target group %q", group)
	}
	return out, nil
}

// Register adds addr (host:port) to a target group with a weight (1 when weight is 0). While
// health checks run, the target starts in the initial state and gets requests once its checks
// pass; otherwise it serves at once. With slow_start its share of requests then ramps up.
// Registering a draining target cancels its drain.
func (lb *LoadBalancer) Register(group, addr string, weight int) error {
	g := lb.byName[group]
	if g == nil {
		return fmt.Errorf("no target group %q", group)
	}
	if weight == 0 {
		weight = 1
	}
	if host, _, err := net.SplitHostPort(addr); err == nil && isDNSTarget(host) {
		return fmt.Errorf("target %q: register an IP address and port; a hostname target belongs in the config, which re-resolves it", addr)
	}
	return lb.register(g, addr, weight, "")
}

// register adds addr to g (dnsName: the name it was resolved from, if any) and starts its health
// checks while Run runs.
func (lb *LoadBalancer) register(g *targetGroup, addr string, weight int, dnsName string) error {
	lb.runMu.Lock()
	defer lb.runMu.Unlock()
	t, err := g.register(addr, weight, lb.runCtx != nil, dnsName)
	if err != nil || t == nil {
		return err
	}
	if lb.runCtx != nil {
		g.mu.Lock()
		if !t.removed {
			lb.startCheckLocked(g, t)
		}
		g.mu.Unlock()
	}
	return nil
}

// Deregister drains addr: it gets no new request from then on (sticky clients move to other
// targets), its in-flight requests finish, and it is removed when the last one has, or after the
// group's deregistration_delay at the latest.
func (lb *LoadBalancer) Deregister(group, addr string) error {
	g := lb.byName[group]
	if g == nil {
		return fmt.Errorf("no target group %q", group)
	}
	return g.deregister(addr)
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
	for i := range rt.rules {
		if rt.rules[i].cond.match(r) {
			rt.rules[i].action.ServeHTTP(w, r)
			return
		}
	}
	rt.defaultAction.ServeHTTP(w, r)
}

// newListener builds one listener's pipeline.
func (lb *LoadBalancer) newListener(i int, l config.Listener, cfg config.LoadBalancer, acls map[string]*waf.WebACL) (*listener, error) {
	var acl *waf.WebACL
	if l.WebACL != "" {
		if acl = acls[l.WebACL]; acl == nil {
			return nil, fmt.Errorf("web ACL %q is not defined", l.WebACL)
		}
	}
	li := &listener{
		lb:          lb,
		listen:      l.Listen,
		xff:         cmp.Or(cfg.XForwardedFor, config.XFFAppend),
		dropInvalid: cfg.DropInvalidHeaderFields,
		guard: &desync.Guard{
			Mode:        cmp.Or(cfg.DesyncMitigationMode, config.DesyncDefensive),
			IdleTimeout: cmp.Or(cfg.IdleTimeout.Duration, config.DefaultLBIdleTimeout),
			Logger:      lb.logger,
			Listener:    l.Listen,
		},
	}
	switch li.guard.Mode {
	case config.DesyncMonitor, config.DesyncDefensive, config.DesyncStrictest:
	default:
		return nil, fmt.Errorf("desync_mitigation_mode %q: want monitor, defensive or strictest", li.guard.Mode)
	}
	switch li.xff {
	case config.XFFAppend, config.XFFPreserve, config.XFFRemove:
	default:
		return nil, fmt.Errorf("x_forwarded_for %q: want append, preserve or remove", li.xff)
	}
	if acl != nil {
		li.secretHeaders = acl.SecretHeaders()
	}

	rt := &router{}
	for _, r := range l.Rules {
		key := strconv.Itoa(i) + "-" + strconv.Itoa(r.Priority)
		act, err := lb.newAction(r.Action, lb.byName, key)
		if err != nil {
			return nil, fmt.Errorf("rule with priority %d: %w", r.Priority, err)
		}
		act = lb.ruleMetrics(act, strconv.Itoa(r.Priority)) // metrics.go
		cond, err := newConditions(r.Conditions)
		if err != nil {
			return nil, fmt.Errorf("rule with priority %d: %w", r.Priority, err)
		}
		rt.rules = append(rt.rules, listenerRule{priority: r.Priority, cond: cond, action: act})
	}
	// Stable: rules with equal priorities keep their file order.
	slices.SortStableFunc(rt.rules, func(a, b listenerRule) int { return cmp.Compare(a.priority, b.priority) })
	def, err := lb.newAction(l.DefaultAction, lb.byName, strconv.Itoa(i)+"-default")
	if err != nil {
		return nil, fmt.Errorf("default_action: %w", err)
	}
	rt.defaultAction = lb.ruleMetrics(def, "default")

	// The pipeline, outermost first. The web ACL sees every request before any rule, so a path
	// with a fixed response cannot be used to probe around it.
	middlewares := []func(http.Handler) http.Handler{lb.trace, lb.accessLog(l.Listen), li.requestHeaders}
	if acl != nil {
		middlewares = append(middlewares, acl.Wrap)
	}
	var h http.Handler = rt
	for _, mw := range slices.Backward(middlewares) {
		h = mw(h)
	}
	li.handler = h
	li.guarded = li.guard.Handler(http.HandlerFunc(li.serve))
	return li, nil
}
