package config

import (
	"slices"
	"strings"
)

// maxRateLimit bounds rate_based.limit (AWS WAF's bound).
const maxRateLimit = 2_000_000_000

// rateKeyTypes are the aggregate_key_type values.
var rateKeyTypes = []string{RateKeyIP, RateKeyForwardedIP, RateKeyHeader, RateKeyConstant}

// rateBased checks a rate_based statement; p is the statement's path, sp the rate_based key's.
// Like a managed rule group, it must be a rule's whole statement: it counts every request that
// reaches the rule, which not, and and or would make depend on the other statements' order.
func (c *checker) rateBased(p, sp string, st *RateBasedStatement) {
	if !strings.HasSuffix(p, "].statement") {
		c.errf(sp, "give the rate-based statement a rule of its own; narrow it with scope_down_statement", "a rate_based statement must be a rule's whole statement, not part of not, and or or")
	}
	if !c.set(sp + ".limit") {
		c.errf(sp+".limit", "the number of requests per window a client may send, such as 1000", "required")
	} else if st.Limit < 1 || st.Limit > maxRateLimit {
		c.errf(sp+".limit", "a number of requests per window, such as 1000", "limit %d is not between 1 and %d", st.Limit, maxRateLimit)
	}
	if c.set(sp+".evaluation_window_sec") && !slices.Contains(RateWindows(), st.EvaluationWindowSec) {
		c.errf(sp+".evaluation_window_sec", "write 60, 120, 300 (the default) or 600", "window %d s is not supported", st.EvaluationWindowSec)
	}
	key := st.AggregateKeyType
	if c.set(sp + ".aggregate_key_type") {
		if !c.enum(sp+".aggregate_key_type", "aggregate key type", key, rateKeyTypes) {
			return
		}
	} else {
		key = RateKeyIP
	}
	switch {
	case key == RateKeyForwardedIP && st.ForwardedIP == nil:
		c.errf(sp+".forwarded_ip", "such as {header: X-Forwarded-For, position: LAST}", "required with aggregate_key_type: FORWARDED_IP")
	case key != RateKeyForwardedIP && st.ForwardedIP != nil:
		c.errf(sp+".forwarded_ip", "remove it, or set aggregate_key_type: FORWARDED_IP", "forwarded_ip is only read with aggregate_key_type: FORWARDED_IP")
	}
	if f := st.ForwardedIP; f != nil && key == RateKeyForwardedIP {
		fp := sp + ".forwarded_ip"
		if c.required(fp+".header", f.Header) && !isToken(f.Header) {
			c.errf(fp+".header", "", "invalid header name %q", f.Header)
		}
		if f.Position == "ANY" {
			c.errf(fp+".position", "write FIRST or LAST: a counter needs one address", "position ANY cannot be a rate key")
		} else if f.Position != "" {
			c.enum(fp+".position", "position", f.Position, []string{"FIRST", "LAST"})
		}
		if f.FallbackBehavior != "" {
			c.enum(fp+".fallback_behavior", "fallback behavior", f.FallbackBehavior, fallbackBehaviors)
		}
	}
	switch {
	case key == RateKeyHeader:
		if c.required(sp+".header", st.Header) && !isToken(st.Header) {
			c.errf(sp+".header", "", "invalid header name %q", st.Header)
		}
	case c.set(sp + ".header"):
		c.errf(sp+".header", "remove it, or set aggregate_key_type: HEADER", "header is only read with aggregate_key_type: HEADER")
	}
	if s := st.ScopeDownStatement; s != nil {
		c.statement(sp+".scope_down_statement", s)
	}
}

// webACLStore checks the ACL's rate_limit_store and on_store_error, as the gateway's keys of the
// same names: on_store_error is required with Redis, so that an outage has a decided outcome.
func (c *checker) webACLStore(p string, a *WebACL) {
	redis := false
	if c.set(p + ".rate_limit_store") {
		redis = c.rateLimitStore(p+".rate_limit_store", a.RateLimitStore)
	}
	if c.set(p + ".on_store_error") {
		c.enum(p+".on_store_error", "store error policy", a.OnStoreError, []string{StoreErrorAllow, StoreErrorDeny})
	} else if redis {
		c.errf(p+".on_store_error", "write on_store_error: deny (block with 503) or allow (do not rate-limit)",
			"required with a Redis rate_limit_store: say what happens when Redis cannot be reached")
	}
}
