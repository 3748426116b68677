package lb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
)

// target is one backend address of a group. Its health, ejection and draining state decide
// whether it gets new requests; outstanding counts the requests it is serving now.
type target struct {
	addr    string
	id      string // opaque, stable id used in stickiness cookies (never the address)
	weight  float64
	dnsName string // the DNS name this address was resolved from (dns.go); empty for a literal one

	healthy     atomic.Bool
	outstanding atomic.Int64

	// Guarded by the group's mu.
	draining      bool
	removed       bool
	slowStartFrom time.Time // zero: not in slow start
	ejectedUntil  time.Time
	consecFails   int
	current       float64 // smooth weighted round robin state
	drainTimer    *time.Timer
	stopCheck     context.CancelFunc // stops this target's health check loop, when one runs
}

// targetGroup balances requests over its targets with one algorithm, honouring health checks,
// outlier ejection, slow start, draining and stickiness.
type targetGroup struct {
	name      string
	algorithm string
	hc        healthCheck
	logger    *slog.Logger
	now       func() time.Time

	slowStart  time.Duration
	dereg      time.Duration
	stickiness *config.Stickiness
	retry      *retryPolicy
	outlier    *config.OutlierDetection
	proxy      *httputil.ReverseProxy
	transport  *http.Transport // to targets: proxied requests and health checks
	scheme     string          // http or https (targettls.go)
	cookieName string          // lb_cookie or app_cookie binding cookie of this group

	dnsTargets []dnsTarget // hostname:port targets, re-resolved every dnsRefresh (dns.go)
	dnsRefresh time.Duration

	mu      sync.Mutex
	targets []*target // registered targets, draining ones included, in registration order
	scratch []*target
}

type retryPolicy struct {
	attempts int
	onStatus map[int]bool
	methods  map[string]bool
}

func targetID(group, addr string) string {
	sum := sha256.Sum256([]byte(group + "\x00" + addr))
	return hex.EncodeToString(sum[:8])
}

func newTargetGroup(cfg config.TargetGroup, logger *slog.Logger, now func() time.Time) (*targetGroup, error) {
	switch cfg.Algorithm {
	case "", config.RoundRobin, config.LeastOutstandingRequests, config.WeightedRandom:
	default:
		return nil, fmt.Errorf("algorithm %q: want %s, %s or %s", cfg.Algorithm, config.RoundRobin, config.LeastOutstandingRequests, config.WeightedRandom)
	}
	hc, err := newHealthCheck(cfg.HealthCheck)
	if err != nil {
		return nil, err
	}
	g := &targetGroup{
		name: cfg.Name, algorithm: cfg.Algorithm, hc: hc, logger: logger, now: now,
		slowStart: cfg.SlowStart.Duration, dereg: cfg.DeregistrationDelay.Duration,
		stickiness: cfg.Stickiness, outlier: cfg.OutlierDetection,
		cookieName: "RampartLB-" + cfg.Name,
	}
	if g.algorithm == "" {
		g.algorithm = config.RoundRobin
	}
	if s := g.stickiness; s != nil {
		switch s.Type {
		case config.StickinessLBCookie:
		case config.StickinessAppCookie:
			if s.CookieName == "" {
				return nil, fmt.Errorf("app_cookie stickiness needs cookie_name")
			}
			g.cookieName = "RampartLBAPP-" + cfg.Name
		default:
			return nil, fmt.Errorf("stickiness type %q: want %s or %s", s.Type, config.StickinessLBCookie, config.StickinessAppCookie)
		}
	}
	if r := cfg.Retry; r != nil && r.Attempts > 1 {
		p := &retryPolicy{attempts: r.Attempts, onStatus: map[int]bool{}, methods: map[string]bool{}}
		for _, s := range r.OnStatus {
			p.onStatus[s] = true
		}
		methods := r.Methods
		if methods == nil {
			methods = config.DefaultRetryMethods()
		}
		for _, m := range methods {
			p.methods[m] = true
		}
		g.retry = p
	}
	if o := g.outlier; o != nil && (o.Consecutive5xx < 1 || o.EjectionTime.Duration <= 0) {
		return nil, fmt.Errorf("outlier_detection: consecutive_5xx and ejection_time must be positive")
	}
	g.dnsRefresh = cfg.DNSRefresh.Duration
	if g.dnsRefresh <= 0 {
		g.dnsRefresh = config.DefaultDNSRefresh
	}
	for _, addr := range cfg.Targets {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("target %q: want host:port: %w", addr, err)
		}
		if g.find(addr) != nil || slices.ContainsFunc(g.dnsTargets, func(d dnsTarget) bool { return d.host == host && d.port == port }) {
			return nil, fmt.Errorf("target %q is listed twice", addr)
		}
		w := cfg.Weights[addr]
		if w == 0 {
			w = 1
		}
		if isDNSTarget(host) {
			g.dnsTargets = append(g.dnsTargets, dnsTarget{host: host, port: port, weight: w})
			continue // its addresses are registered when it is resolved (dns.go)
		}
		t := g.newTarget(addr, w)
		t.healthy.Store(true)
		g.targets = append(g.targets, t)
	}
	return g, nil
}

func (g *targetGroup) newTarget(addr string, weight int) *target {
	return &target{addr: addr, id: targetID(g.name, addr), weight: float64(weight)}
}

// find returns the registered target with addr, draining or not. The caller holds mu or owns g.
func (g *targetGroup) find(addr string) *target {
	for _, t := range g.targets {
		if t.addr == addr {
			return t
		}
	}
	return nil
}

// Candidate levels: a target serves when it is healthy and not ejected. When none is, ejection is
// ignored; when every target is unhealthy the group fails open over all of them.
func (g *targetGroup) candidates(now time.Time, skip func(*target) bool) []*target {
	c := g.scratch[:0]
	for level := 0; level < 3 && len(c) == 0; level++ {
		for _, t := range g.targets {
			if t.draining || (skip != nil && skip(t)) {
				continue
			}
			switch level {
			case 0:
				if !t.healthy.Load() || now.Before(t.ejectedUntil) {
					continue
				}
			case 1:
				if !t.healthy.Load() {
					continue
				}
			}
			c = append(c, t)
		}
	}
	g.scratch = c
	return c
}

// effectiveWeight is t's weight scaled down while it is in slow start.
func (g *targetGroup) effectiveWeight(t *target, now time.Time) float64 {
	if g.slowStart <= 0 || t.slowStartFrom.IsZero() {
		return t.weight
	}
	elapsed := now.Sub(t.slowStartFrom)
	if elapsed >= g.slowStart {
		t.slowStartFrom = time.Time{}
		return t.weight
	}
	return t.weight * max(float64(elapsed)/float64(g.slowStart), 0.01)
}

// pick chooses a target for a new request. sticky, when it names a target that may serve, wins.
// skip excludes targets already tried by this request. It returns nil when no target may serve,
// and reserves the target (outstanding+1) otherwise: the caller must call release.
func (g *targetGroup) pick(sticky string, skip func(*target) bool) *target {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	c := g.candidates(now, skip)
	if len(c) == 0 {
		return nil
	}
	var chosen *target
	if sticky != "" {
		for _, t := range c {
			if t.id == sticky {
				chosen = t
				break
			}
		}
	}
	if chosen == nil {
		chosen = g.balance(c, now)
	}
	chosen.outstanding.Add(1)
	return chosen
}

func (g *targetGroup) balance(c []*target, now time.Time) *target {
	if len(c) == 1 {
		return c[0]
	}
	switch g.algorithm {
	case config.WeightedRandom:
		total := 0.0
		for _, t := range c {
			total += g.effectiveWeight(t, now)
		}
		r := rand.Float64() * total
		for _, t := range c {
			if r -= g.effectiveWeight(t, now); r < 0 {
				return t
			}
		}
		return c[len(c)-1]
	case config.LeastOutstandingRequests:
		// The fewest requests in flight wins; ties (an idle group) go by weighted round robin.
		least := c[0].outstanding.Load()
		for _, t := range c[1:] {
			least = min(least, t.outstanding.Load())
		}
		tied := c[:0:0]
		for _, t := range c {
			if t.outstanding.Load() == least {
				tied = append(tied, t)
			}
		}
		return g.smoothRR(tied, now)
	default:
		return g.smoothRR(c, now)
	}
}

// smoothRR is smooth weighted round robin (as in nginx): with equal weights it is plain round
// robin, with unequal ones it interleaves instead of sending bursts.
func (g *targetGroup) smoothRR(c []*target, now time.Time) *target {
	{
		total := 0.0
		var best *target
		for _, t := range c {
			w := g.effectiveWeight(t, now)
			t.current += w
			total += w
			if best == nil || t.current > best.current {
				best = t
			}
		}
		best.current -= total
		return best
	}
}

// hasOther reports whether a target other than those skip excludes could serve now.
func (g *targetGroup) hasOther(skip func(*target) bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.candidates(g.now(), skip)) > 0
}

// release ends a request on t. A draining target whose last request ended is removed.
func (g *targetGroup) release(t *target) {
	if t.outstanding.Add(-1) == 0 {
		g.mu.Lock()
		if t.draining && !t.removed {
			g.removeLocked(t, "in-flight requests finished")
		}
		g.mu.Unlock()
	}
}

// result records the outcome of one proxied request for passive outlier detection: failed is a
// 5xx response or a connection failure.
func (g *targetGroup) result(t *target, failed bool) {
	o := g.outlier
	if o == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !failed {
		t.consecFails = 0
		return
	}
	t.consecFails++
	now := g.now()
	if t.consecFails < o.Consecutive5xx || now.Before(t.ejectedUntil) {
		return
	}
	ejected, total := 0, 0
	for _, x := range g.targets {
		if x.draining {
			continue
		}
		total++
		if now.Before(x.ejectedUntil) {
			ejected++
		}
	}
	limit := max(total*o.MaxEjectionPercent/100, 1)
	if ejected >= limit {
		g.logger.Warn("outlier not ejected: max_ejection_percent reached", "group", g.name, "target", t.addr, "ejected", ejected)
		return
	}
	t.ejectedUntil = now.Add(o.EjectionTime.Duration)
	t.consecFails = 0
	g.logger.Warn("target ejected", "group", g.name, "target", t.addr, "state", "ejected", "until", t.ejectedUntil.Format(time.RFC3339Nano), "consecutive_failures", o.Consecutive5xx)
}

// setHealth records a health change of t and logs it. cause is the last failure, if any.
func (g *targetGroup) setHealth(t *target, healthy bool, cause error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.healthy.Load() == healthy {
		return
	}
	t.healthy.Store(healthy)
	if healthy && g.slowStart > 0 {
		g.beginSlowStartLocked(t)
	}
	state := "healthy"
	if !healthy {
		state = "unhealthy"
	}
	attrs := []any{"group", g.name, "target", t.addr, "state", state}
	if cause != nil {
		attrs = append(attrs, "error", cause.Error())
	}
	g.logger.Info("target health changed", attrs...)
	any := false
	for _, x := range g.targets {
		if !x.draining && x.healthy.Load() {
			any = true
		}
	}
	if !any && len(g.targets) > 0 {
		g.logger.Warn("every target is unhealthy; failing open to all targets", "group", g.name)
	}
}

// beginSlowStartLocked starts t's ramp, unless no other target is healthy (there is nobody to
// protect it from, as in AWS).
func (g *targetGroup) beginSlowStartLocked(t *target) {
	for _, x := range g.targets {
		if x != t && !x.draining && x.healthy.Load() {
			t.slowStartFrom = g.now()
			t.current = 0
			return
		}
	}
}

// register adds a target at run time. It starts healthy when no health checks run, and
// unhealthy ("initial") when they do, so it gets traffic once it passed them.
// dnsName is the DNS name addr was resolved from ("" for an address registered as such).
func (g *targetGroup) register(addr string, weight int, checking bool, dnsName string) (*target, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("target %q: want host:port: %w", addr, err)
	}
	if weight < 1 || weight > config.MaxTargetGroupWeight {
		return nil, fmt.Errorf("weight %d: want 1-%d", weight, config.MaxTargetGroupWeight)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if old := g.find(addr); old != nil {
		if !old.draining {
			return nil, fmt.Errorf("target %s is already registered", addr)
		}
		if dnsName != "" && old.dnsName != dnsName {
			return nil, fmt.Errorf("target %s is draining and was not resolved from %s", addr, dnsName)
		}
		// Re-registering a draining target cancels the drain.
		if old.drainTimer != nil {
			old.drainTimer.Stop()
		}
		old.draining = false
		old.weight = float64(weight)
		g.logger.Info("target registered", "group", g.name, "target", addr, "state", "healthy", "note", "drain cancelled")
		return nil, nil
	}
	t := g.newTarget(addr, weight)
	t.dnsName = dnsName
	state := "healthy"
	if checking {
		state = "initial"
	} else {
		t.healthy.Store(true)
		if g.slowStart > 0 {
			g.beginSlowStartLocked(t)
		}
	}
	g.targets = append(g.targets, t)
	attrs := []any{"group", g.name, "target", addr, "state", state}
	if dnsName != "" {
		attrs = append(attrs, "dns_name", dnsName)
	}
	g.logger.Info("target registered", attrs...)
	return t, nil
}

// deregister starts draining addr: no new requests (sticky ones included); it is removed when
// its in-flight requests have finished, or after the deregistration delay at the latest.
func (g *targetGroup) deregister(addr string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	t := g.find(addr)
	if t == nil || t.draining {
		return fmt.Errorf("target %s is not registered", addr)
	}
	t.draining = true
	g.logger.Info("target draining", "group", g.name, "target", addr, "state", "draining", "in_flight", t.outstanding.Load(), "deregistration_delay", g.dereg.String())
	if t.outstanding.Load() == 0 || g.dereg <= 0 {
		g.removeLocked(t, "no in-flight requests")
		return nil
	}
	t.drainTimer = time.AfterFunc(g.dereg, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if t.draining && !t.removed {
			g.removeLocked(t, "deregistration delay elapsed")
		}
	})
	return nil
}

func (g *targetGroup) removeLocked(t *target, why string) {
	t.removed = true
	if t.drainTimer != nil {
		t.drainTimer.Stop()
	}
	if t.stopCheck != nil {
		t.stopCheck()
	}
	for i, x := range g.targets {
		if x == t {
			g.targets = append(g.targets[:i:i], g.targets[i+1:]...)
			break
		}
	}
	g.logger.Info("target deregistered", "group", g.name, "target", t.addr, "state", "unused", "reason", why, "in_flight", t.outstanding.Load())
}

// stopTimers stops pending drain timers (Close).
func (g *targetGroup) stopTimers() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, t := range g.targets {
		if t.drainTimer != nil {
			t.drainTimer.Stop()
		}
	}
}

// TargetStatus is one target as Targets reports it.
type TargetStatus struct {
	Group   string `json:"group"`
	Address string `json:"address"`
	Weight  int    `json:"weight"`
	// State is healthy, unhealthy, ejected (by outlier detection) or draining.
	State    string `json:"state"`
	InFlight int64  `json:"in_flight"`
	// SlowStart is true while the target's share of requests is still ramping up.
	SlowStart bool `json:"slow_start,omitempty"`
	// DNSName is the name the address was resolved from, for a hostname:port target.
	DNSName string `json:"dns_name,omitempty"`
}

func (g *targetGroup) status() []TargetStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	out := make([]TargetStatus, 0, len(g.targets))
	for _, t := range g.targets {
		st := TargetStatus{Group: g.name, Address: t.addr, Weight: int(t.weight), InFlight: t.outstanding.Load(), DNSName: t.dnsName}
		switch {
		case t.draining:
			st.State = "draining"
		case !t.healthy.Load():
			st.State = "unhealthy"
		case now.Before(t.ejectedUntil):
			st.State = "ejected"
		default:
			st.State = "healthy"
		}
		st.SlowStart = g.slowStart > 0 && !t.slowStartFrom.IsZero() && now.Sub(t.slowStartFrom) < g.slowStart
		out = append(out, st)
	}
	return out
}
