package gateway

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/observe"
	"github.com/rampart-edge/rampart/internal/ratelimit"
)

// access is a gateway's throttling, API keys, usage plans and JWT authorizers. Its three
// pipeline stages run after routing, in this order:
//
//  1. throttleOpen: the gateway's and the route's throttles whose key is known before
//     authentication (none, source_ip, header:NAME), so that a flood of bad credentials is
//     throttled before any signature is checked;
//  2. authorize: the route's JWT authorizer (401, 403 on a missing scope), then its API key
//     (403 {"message":"Forbidden"});
//  3. throttleIdentified: the throttles keyed by api_key or jwt:CLAIM, the key's usage plan
//     throttle, then its quota.
type access struct {
	gateway string
	logger  *slog.Logger
	metrics *observe.Metrics // rejection counters (metrics.go); nil: none

	limiter       ratelimit.Limiter
	quota         ratelimit.Quota
	closers       []func() error
	allowOnError  bool
	lastStoreWarn atomic.Int64

	open, identified []throttleRule // gateway level
	routes           map[*route]*routeAccess

	keyHeader   string
	keys        atomic.Pointer[map[[32]byte]*apiKey] // nil without api_keys; swapped on reload (keys.go)
	authorizers map[string]*jwtAuthorizer
}

// routeAccess is what one route requires.
type routeAccess struct {
	open, identified []throttleRule
	authorizer       *jwtAuthorizer
	scopes           []string
	keyRequired      bool
}

// requestAccess is this file's per-request state, in the exchange.
type requestAccess struct {
	identity identity
	throttle decision // from throttleOpen, for the RateLimit-* headers
}

// identity is who a request was authenticated as.
type identity struct {
	key    *apiKey
	claims claims
}

// keyKind says how a throttle computes its client key.
type keyKind uint8

const (
	keyAll keyKind = iota
	keySourceIP
	keyHeader
	keyAPIKey
	keyClaim
)

// throttleRule is one compiled throttle.
type throttleRule struct {
	prefix string // gateway, level and key kind: the bucket key is prefix + client key
	kind   keyKind
	param  string // canonical header name, or claim name
	limit  ratelimit.Limit
}

func compileThrottles(gateway, level string, ts []config.Throttle) (open, identified []throttleRule) {
	for _, t := range ts {
		r := throttleRule{limit: ratelimit.Limit{Rate: t.Rate, Burst: t.Burst}}
		switch {
		case t.Key == "":
			r.kind = keyAll
		case t.Key == config.ThrottleKeySourceIP:
			r.kind = keySourceIP
		case t.Key == config.ThrottleKeyAPIKey:
			r.kind = keyAPIKey
		case strings.HasPrefix(t.Key, config.ThrottleKeyJWTPrefix):
			r.kind, r.param = keyClaim, strings.TrimPrefix(t.Key, config.ThrottleKeyJWTPrefix)
		case strings.HasPrefix(t.Key, config.ThrottleKeyHeader):
			r.kind, r.param = keyHeader, textproto.CanonicalMIMEHeaderKey(strings.TrimPrefix(t.Key, config.ThrottleKeyHeader))
		}
		// The rate is part of the bucket's name: a changed limit starts a new bucket rather than
		// reinterpreting the old one, and replicas with different configs cannot share one.
		r.prefix = fmt.Sprintf("t|%s|%s|%s|%g/%d|", gateway, level, t.Key, t.Rate, t.Burst)
		if r.kind == keyAPIKey || r.kind == keyClaim {
			identified = append(identified, r)
		} else {
			open = append(open, r)
		}
	}
	return open, identified
}

// clientKey is the request's key for rule r. A request that lacks the key (no such header, no
// such claim) gets "-": all such requests share one bucket, so leaving the key out is no way
// around the throttle.
func (r *throttleRule) clientKey(req *http.Request, id *identity) string {
	var k string
	switch r.kind {
	case keyAll:
		return r.prefix
	case keySourceIP:
		k = peerIP(req)
	case keyHeader:
		if v := req.Header[r.param]; len(v) > 0 {
			k = v[0]
		}
	case keyAPIKey:
		if id.key != nil {
			k = id.key.id
		}
	case keyClaim:
		k = id.claims.claimString(r.param)
	}
	if k == "" {
		k = "-"
	}
	if len(k) > maxClientKeyBytes {
		// A header value can be ~64 KB: neither store should be handed (or hold) that.
		sum := sha256.Sum256([]byte(k))
		k = "\x00sha256:" + base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return r.prefix + k
}

// maxClientKeyBytes is the longest client key used as is in a bucket name; a longer one (a
// client-chosen header value) is replaced by its SHA-256.
const maxClientKeyBytes = 96

// newAccess compiles cfg's access settings for the gateway's routes (in cfg.Routes order).
func newAccess(cfg config.Gateway, routes []*route, logger *slog.Logger, stores *ratelimit.Registry) (*access, error) {
	a := &access{gateway: cfg.Name, logger: logger, routes: map[*route]*routeAccess{},
		allowOnError: cfg.OnStoreError == config.StoreErrorAllow, authorizers: map[string]*jwtAuthorizer{}}
	ok := false
	defer func() {
		if !ok {
			a.close()
		}
	}()
	if err := a.openStores(cfg, stores); err != nil { // stores.go
		return nil, err
	}
	a.open, a.identified = compileThrottles(cfg.Name, "gateway", cfg.Throttle)
	for _, ac := range cfg.Authorizers {
		az, err := newJWTAuthorizer(ac, logger)
		if err != nil {
			return nil, fmt.Errorf("authorizer %q: %w", ac.Name, err)
		}
		a.authorizers[ac.Name] = az
	}
	if cfg.APIKeys != nil {
		a.keyHeader = textproto.CanonicalMIMEHeaderKey(cfg.APIKeys.Header)
		keys, err := loadAPIKeys(cfg, logger)
		if err != nil {
			return nil, err
		}
		a.keys.Store(&keys)
	}
	for i, rc := range cfg.Routes {
		ra := &routeAccess{authorizer: a.authorizers[rc.Authorizer], scopes: rc.Scopes}
		// A route's buckets are named after its path and methods (which no other route has: the
		// router refuses a method routed twice for one path), not its position, so that adding or
		// moving another route does not hand this route's clients fresh buckets at a reload.
		ra.open, ra.identified = compileThrottles(cfg.Name, "route "+rc.Path+" "+strings.Join(rc.Methods, ","), rc.Throttle)
		if cfg.APIKeys != nil {
			ra.keyRequired = cfg.APIKeys.Required
			if rc.APIKeyRequired != nil {
				ra.keyRequired = *rc.APIKeyRequired
			}
		}
		if i < len(routes) {
			a.routes[routes[i]] = ra
		}
	}
	ok = true
	return a, nil
}

func hasQuota(cfg config.Gateway) bool {
	for _, p := range cfg.UsagePlans {
		if p.Quota != nil {
			return true
		}
	}
	return false
}

func (a *access) close() {
	for _, c := range a.closers {
		if err := c(); err != nil {
			a.logger.Warn("closing the rate limit store", "err", err)
		}
	}
	a.closers = nil
}

// decision is the most constraining throttle result seen for a request, for the RateLimit-*
// headers.
type decision struct {
	set bool
	res ratelimit.Result
}

func (d *decision) note(res ratelimit.Result) {
	if !d.set || res.Remaining < d.res.Remaining || (res.Remaining == d.res.Remaining && res.Reset > d.res.Reset) {
		d.set, d.res = true, res
	}
}

// apply runs rules in order and stops at the first refusal. It reports whether the request may
// go on; when not, it has answered.
func (a *access) apply(w http.ResponseWriter, r *http.Request, rules []throttleRule, id *identity, d *decision) bool {
	for i := range rules {
		rule := &rules[i]
		res, err := a.limiter.Allow(r.Context(), rule.clientKey(r, id), rule.limit)
		if err != nil {
			return a.storeError(w, r, err)
		}
		d.note(res)
		if !res.Allowed {
			a.countThrottle(rule) // metrics.go
			a.refuse(w, r, res)
			return false
		}
	}
	return true
}

// storeError applies on_store_error.
func (a *access) storeError(w http.ResponseWriter, r *http.Request, err error) bool {
	// One warning per 10s at most: a Redis outage must not become a log flood.
	now := time.Now().UnixNano()
	if last := a.lastStoreWarn.Load(); now-last > int64(10*time.Second) && a.lastStoreWarn.CompareAndSwap(last, now) {
		a.logger.Warn("rate limit store failed", "err", err, "allow", a.allowOnError)
	}
	if a.allowOnError {
		return true
	}
	w.Header().Set("Retry-After", "1")
	reply(w, r, respStoreUnavailable)
	return false
}

func setRateLimitHeaders(h http.Header, res ratelimit.Result) {
	h.Set("RateLimit-Limit", strconv.Itoa(res.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(res.Remaining))
	h.Set("RateLimit-Reset", seconds(res.Reset))
}

func (a *access) refuse(w http.ResponseWriter, r *http.Request, res ratelimit.Result) {
	h := w.Header()
	setRateLimitHeaders(h, res)
	h.Set("Retry-After", seconds(res.RetryAfter))
	reply(w, r, respThrottled)
}

// throttleOpen is the first stage (see access).
func (a *access) throttleOpen(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := exchangeFrom(r.Context())
		ra := a.routes[ex.route]
		var d decision
		if !a.apply(w, r, a.open, &ex.access.identity, &d) {
			return
		}
		if ra != nil && !a.apply(w, r, ra.open, &ex.access.identity, &d) {
			return
		}
		ex.access.throttle = d
		next.ServeHTTP(w, r)
	})
}

// authorize is the second stage (see access). Preflights never get here: CORS answers them.
func (a *access) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := exchangeFrom(r.Context())
		ra := a.routes[ex.route]
		if ra == nil {
			next.ServeHTTP(w, r)
			return
		}
		if az := ra.authorizer; az != nil {
			c, ok := az.authenticate(w, r, ra.scopes)
			if !ok {
				return
			}
			ex.access.identity.claims = c
		}
		if keys := a.keys.Load(); keys != nil {
			v, present := apiKeyValue(r.Header[a.keyHeader])
			var k *apiKey
			if present {
				k = lookupKey(*keys, v)
			}
			if k == nil && ra.keyRequired {
				reply(w, r, respInvalidAPIKey)
				return
			}
			ex.access.identity.key = k
			// The backend needs the key's id (${context.identity.apiKeyId}), never its value.
			r.Header.Del(a.keyHeader)
		}
		next.ServeHTTP(w, r)
	})
}

// throttleIdentified is the third stage (see access).
func (a *access) throttleIdentified(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := exchangeFrom(r.Context())
		ra := a.routes[ex.route]
		id := &ex.access.identity
		d := ex.access.throttle
		if !a.apply(w, r, a.identified, id, &d) {
			return
		}
		if ra != nil && !a.apply(w, r, ra.identified, id, &d) {
			return
		}
		if k := id.key; k != nil {
			if !a.apply(w, r, k.plan.rules, id, &d) {
				return
			}
			if k.plan.quota > 0 && a.quota != nil {
				q, err := a.quota.Consume(r.Context(), quotaKey(a.gateway, k), k.plan.quota, k.plan.period)
				if err != nil {
					if !a.storeError(w, r, err) {
						return
					}
				} else if !q.Allowed {
					a.countQuota(k) // metrics.go
					w.Header().Set("Retry-After", seconds(time.Until(q.Reset)))
					reply(w, r, respQuotaExceeded)
					return
				}
			}
		}
		if d.set {
			setRateLimitHeaders(w.Header(), d.res)
		}
		next.ServeHTTP(w, r)
	})
}

// identityValue is the value of a ${context.authorizer.claims.NAME} or
// ${context.identity.apiKeyId} reference for the request (parameter mapping).
func identityValue(r *http.Request, kind config.RefKind, name string) string {
	id := &exchangeFrom(r.Context()).access.identity
	switch kind {
	case config.RefClaim:
		return id.claims.claimString(name)
	case config.RefAPIKeyID:
		if id.key != nil {
			return id.key.id
		}
	}
	return ""
}
