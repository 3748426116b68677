package waf

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/netip"
	"net/textproto"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/ratelimit"
)

// rateKeyPrefix namespaces the WAF's counters in a store the gateway may share ("rampart:b:waf:…"
// in Redis).
const rateKeyPrefix = "waf:"

// maxRateKey is the longest client-chosen key (a header value) kept as is; a longer one is
// replaced by its hash, so that a client cannot make the store hold large keys.
const maxRateKey = 64

// storeErrorLogEvery bounds the warnings about an unreachable store to one per interval, so that an
// outage does not write one line per request.
const storeErrorLogEvery = 10 * time.Second

// rateStore is the limiter of an ACL's rate_limit_store, shared by the ACLs of one config that
// name the same store (see Shared.limiter), and its on_store_error policy.
type rateStore struct {
	limiter      ratelimit.Limiter
	allowOnError bool
	lastWarn     atomic.Int64 // unix nanoseconds of the last store-error warning
}

// rateStores are the rate_based limiters of one config: one memory store, and one Redis client
// per rate_limit_store URL. They belong to a Shared, whose Close closes them.
type rateStores struct {
	memory *ratelimit.Memory
	redis  map[string]*ratelimit.Redis
}

// limiter returns the limiter of store (memory, or a redis:// URL), creating it on first use.
// The caller holds the Shared's mu.
func (rs *rateStores) limiter(store string) (ratelimit.Limiter, error) {
	if store == "" || store == config.RateLimitMemory {
		if rs.memory == nil {
			rs.memory = ratelimit.NewMemory()
		}
		return rs.memory, nil
	}
	if r := rs.redis[store]; r != nil {
		return r, nil
	}
	r, err := ratelimit.NewRedis(store, "rampart:", 0)
	if err != nil {
		return nil, err
	}
	if rs.redis == nil {
		rs.redis = map[string]*ratelimit.Redis{}
	}
	rs.redis[store] = r
	return r, nil
}

// close closes the Redis clients and drops the memory counters.
func (rs *rateStores) close() {
	for k, r := range rs.redis {
		_ = r.Close()
		delete(rs.redis, k)
	}
	rs.memory = nil
}

// rateBased compiles a rate_based statement, a rule's whole statement. Each request in scope
// takes one token from its key's bucket, a token bucket of limit tokens refilled at limit per
// window (ratelimit's GCRA, in memory or in Redis); the statement matches the requests the
// bucket refuses. Requests out of scope, and requests without a key (FORWARDED_IP without the
// header and fallback NO_MATCH, HEADER without the header), are not counted and do not match.
func (b *builder) rateBased(s config.RateBasedStatement, store *rateStore, logger *slog.Logger, aclName, ruleName, at string) (cond, error) {
	if s.Limit < 1 {
		return nil, fmt.Errorf("%s.limit: %d is not a positive number of requests", at, s.Limit)
	}
	window := s.EvaluationWindowSec
	if window == 0 {
		window = config.DefaultRateWindowSec
	}
	valid := false
	for _, w := range config.RateWindows() {
		valid = valid || w == window
	}
	if !valid {
		return nil, fmt.Errorf("%s.evaluation_window_sec: %d is not 60, 120, 300 or 600", at, window)
	}
	limit := ratelimit.Limit{Rate: float64(s.Limit) / float64(window), Burst: s.Limit}
	keyOf, field, err := rateKey(s, at)
	if err != nil {
		return nil, err
	}
	var scope cond
	if s.ScopeDownStatement != nil {
		if scope, err = b.compile(*s.ScopeDownStatement, at+".scope_down_statement"); err != nil {
			return nil, err
		}
	}
	prefix := rateKeyPrefix + aclName + ":" + ruleName + ":"
	return func(ec *evalCtx) bool {
		if scope != nil {
			in := scope(ec)
			ec.hit = hit{}
			if !in || ec.internalErr != nil || ec.bodyErr != nil {
				return false
			}
		}
		key, ok, fallback := keyOf(ec)
		if !ok {
			if fallback {
				ec.hit = hit{field: field, value: "(no valid address)", set: true}
			}
			return fallback
		}
		stored := key
		if len(stored) > maxRateKey {
			sum := sha256.Sum256([]byte(stored))
			stored = "h:" + base64.RawURLEncoding.EncodeToString(sum[:])
		}
		res, err := store.limiter.Allow(ec.r.Context(), prefix+stored, limit)
		if err != nil {
			now := time.Now().UnixNano()
			if last := store.lastWarn.Load(); now-last >= int64(storeErrorLogEvery) && store.lastWarn.CompareAndSwap(last, now) {
				logger.LogAttrs(ec.r.Context(), slog.LevelWarn, "WAF rate-limit store unreachable",
					slog.String("acl", aclName), slog.String("rule", ruleName), slog.Bool("allow", store.allowOnError), slog.String("error", err.Error()))
			}
			if !store.allowOnError {
				ec.storeErr = err
			}
			return false
		}
		if res.Allowed {
			return false
		}
		ec.hit = hit{field: field, value: key, set: true}
		return true
	}, nil
}

// rateKey returns the function that computes a request's aggregation key, and the field name the
// WAF log gives it. The function reports whether the request has a key and, when it does not,
// whether the statement matches anyway (forwarded_ip.fallback_behavior: MATCH).
func rateKey(s config.RateBasedStatement, at string) (func(*evalCtx) (key string, ok, fallback bool), string, error) {
	switch s.AggregateKeyType {
	case "", config.RateKeyIP:
		return func(ec *evalCtx) (string, bool, bool) {
			a, ok := sourceAddr(ec.r)
			if !ok {
				return "", false, false
			}
			return a.Unmap().String(), true, false
		}, "source_ip", nil
	case config.RateKeyConstant:
		return func(*evalCtx) (string, bool, bool) { return "*", true, false }, "constant", nil
	case config.RateKeyHeader:
		if s.Header == "" {
			return nil, "", fmt.Errorf("%s.header: is empty", at)
		}
		name := textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(s.Header))
		return func(ec *evalCtx) (string, bool, bool) {
			vs := ec.r.Header[name]
			if len(vs) == 0 {
				return "", false, false
			}
			return strings.Join(vs, ", "), true, false
		}, "header:" + name, nil
	case config.RateKeyForwardedIP:
		f := s.ForwardedIP
		if f == nil || strings.TrimSpace(f.Header) == "" {
			return nil, "", fmt.Errorf("%s.forwarded_ip.header: is empty", at)
		}
		header := strings.TrimSpace(f.Header)
		last := false
		switch f.Position {
		case "", "FIRST":
		case "LAST":
			last = true
		default:
			return nil, "", fmt.Errorf("%s.forwarded_ip.position: %q (write FIRST or LAST)", at, f.Position)
		}
		fallback := f.FallbackBehavior == "MATCH"
		return func(ec *evalCtx) (string, bool, bool) {
			raw := strings.Join(ec.r.Header.Values(header), ",")
			parts := strings.Split(raw, ",")
			part := parts[0]
			if last {
				part = parts[len(parts)-1]
			}
			a, ok := parseForwarded(strings.TrimSpace(part))
			if !ok {
				return "", false, fallback
			}
			return a.Unmap().String(), true, false
		}, "header:" + header, nil
	}
	return nil, "", fmt.Errorf("%s.aggregate_key_type: unknown %q (write IP, FORWARDED_IP, HEADER or CONSTANT)", at, s.AggregateKeyType)
}

// parseForwarded parses one address of a forwarded-IP header, with or without a port.
func parseForwarded(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr(), true
	}
	return netip.Addr{}, false
}
