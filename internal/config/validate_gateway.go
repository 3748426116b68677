package config

import (
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// applyGatewayDefaults fills the throttling, API key and authorizer defaults of gateway g at path
// p (called from applyDefaults):
//
//   - rate_limit_store: memory; max_body_bytes: 10 MiB.
//   - api_keys.header: X-Api-Key; api_keys.quota_file: .rampart/quota-<gateway name>.json.
//   - authorizers[].type: jwt; algorithms: [RS256, ES256, EdDSA]; leeway: 30s;
//     jwks_refresh: 5m; jwks_fetch_timeout: 5s.
func applyGatewayDefaults(g *Gateway, p string, set func(string) bool) {
	if !set(p + ".rate_limit_store") {
		g.RateLimitStore = RateLimitMemory
	}
	if !set(p + ".max_body_bytes") {
		g.MaxBodyBytes = DefaultMaxBodyBytes
	}
	applyListenerDefaults(g, p, set) // validate_gateway_edge.go
	if k := g.APIKeys; k != nil {
		if !set(p + ".api_keys.header") {
			k.Header = DefaultAPIKeyHeader
		}
		if !set(p+".api_keys.quota_file") && g.Name != "" {
			k.QuotaFile = ".rampart/quota-" + g.Name + ".json"
		}
	}
	for i := range g.Authorizers {
		a := &g.Authorizers[i]
		ap := idx(p, "authorizers", i)
		if !set(ap + ".type") {
			a.Type = AuthorizerJWT
		}
		if !set(ap + ".algorithms") {
			a.Algorithms = []string{AlgRS256, AlgES256, AlgEdDSA}
		}
		if !set(ap + ".leeway") {
			a.Leeway = Duration{DefaultJWTLeeway}
		}
		if !set(ap + ".jwks_refresh") {
			a.JWKSRefresh = Duration{DefaultJWKSRefresh}
		}
		if !set(ap + ".jwks_fetch_timeout") {
			a.JWKSFetchTimeout = Duration{DefaultJWKSFetchTimeout}
		}
	}
}

// checkGatewayAccess checks a gateway's throttling, API keys, usage plans and authorizers, and
// the routes' references to them. It is called from checkGateways.
func (c *checker) checkGatewayAccess(p string, g *Gateway) {
	redis := c.rateLimitStore(p+".rate_limit_store", g.RateLimitStore)
	if c.set(p + ".on_store_error") {
		c.enum(p+".on_store_error", "store error policy", g.OnStoreError, []string{StoreErrorAllow, StoreErrorDeny})
	} else if redis {
		c.errf(p+".on_store_error", "write on_store_error: deny (refuse with 503) or allow (admit unthrottled)",
			"required with a Redis rate_limit_store: say what happens when Redis cannot be reached")
	}

	if k := g.APIKeys; k != nil {
		kp := p + ".api_keys"
		if c.required(kp+".header", k.Header) && !isToken(k.Header) {
			c.errf(kp+".header", "write a header name such as X-Api-Key", "invalid header name %q", k.Header)
		}
		if !c.set(kp + ".secret") {
			c.errf(kp+".secret", "name an entry of secrets: whose file holds the keys", "required")
		} else if c.required(kp+".secret", k.Secret) {
			c.secretRef(kp+".secret", k.Secret)
			k.File = c.cfg.Secrets[k.Secret].File
			for _, h := range g.RequestHeaders {
				if slices.Contains(h.Value.Secrets(), k.Secret) {
					c.errf(kp+".secret", "give the API key file its own entry in secrets:",
						"secret %q is also a keyring in request_headers (%s)", k.Secret, h.Name)
					break
				}
			}
		}
	}

	owner := map[string]string{} // key id → path of the plan entry that lists it
	planNames := map[string]string{}
	for i := range g.UsagePlans {
		up := &g.UsagePlans[i]
		pp := idx(p, "usage_plans", i)
		if c.required(pp+".name", up.Name) {
			c.unique(planNames, pp+".name", up.Name, "usage plan")
		}
		if g.APIKeys == nil {
			c.errf(pp, "add api_keys: {secret: NAME} to the gateway", "a usage plan needs api_keys")
		}
		if len(up.Keys) == 0 {
			c.errf(pp+".keys", "list the key ids of the plan, such as [acme]", "a usage plan needs at least one key")
		}
		for j, id := range up.Keys {
			jp := idx(pp, "keys", j)
			if !validName(id) {
				c.errf(jp, "a key id is letters, digits, '-', '_' and '.'; write the key's id, never its value", "invalid key id %q", id)
				continue
			}
			if first, dup := owner[id]; dup {
				c.errf(jp, "a key belongs to one plan", "key %q is already in %s (line %d)", id, first, c.line(first))
				continue
			}
			owner[id] = jp
		}
		if up.Throttle != nil {
			tp := pp + ".throttle"
			if up.Throttle.Key != "" {
				c.errf(tp+".key", "remove key: a plan's throttle is always per API key", "a usage plan throttle has no key")
			}
			c.throttleLimit(tp, up.Throttle)
		}
		if q := up.Quota; q != nil {
			qp := pp + ".quota"
			if q.Limit <= 0 {
				c.errf(qp+".limit", "write the number of requests per period, such as 10000", "must be greater than 0")
			}
			if !c.set(qp + ".period") {
				c.errf(qp+".period", "write day, week or month", "required")
			} else {
				c.enum(qp+".period", "quota period", q.Period, []string{QuotaDay, QuotaWeek, QuotaMonth})
			}
		}
	}

	authNames := map[string]string{}
	var auths []string
	for i := range g.Authorizers {
		a := &g.Authorizers[i]
		ap := idx(p, "authorizers", i)
		if c.required(ap+".name", a.Name) {
			c.unique(authNames, ap+".name", a.Name, "authorizer")
			auths = append(auths, a.Name)
		}
		c.authorizer(ap, a)
	}

	c.maxBodyBytes(p+".max_body_bytes", g.MaxBodyBytes)
	ctx := throttleContext{apiKeys: g.APIKeys != nil, jwt: len(g.Authorizers) > 0}
	c.throttles(p+".throttle", g.Throttle, ctx, "at least one route with an authorizer")
	for i := range g.Routes {
		r := &g.Routes[i]
		rp := idx(p, "routes", i)
		if r.Authorizer != "" && !slices.Contains(auths, r.Authorizer) {
			c.errf(rp+".authorizer", c.suggest("authorizer", r.Authorizer, auths, "authorizers of this gateway"), "unknown authorizer %q", r.Authorizer)
		}
		if len(r.Scopes) > 0 && r.Authorizer == "" {
			c.errf(rp+".scopes", "set authorizer: NAME on the route", "scopes need an authorizer")
		}
		for j, s := range r.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\r\n\"") {
				c.errf(idx(rp, "scopes", j), "a scope is one word, such as items:read", "invalid scope %q", s)
			}
		}
		if r.APIKeyRequired != nil && *r.APIKeyRequired && g.APIKeys == nil {
			c.errf(rp+".api_key_required", "add api_keys: {secret: NAME} to the gateway", "api_key_required needs api_keys")
		}
		if c.set(rp + ".max_body_bytes") {
			c.maxBodyBytes(rp+".max_body_bytes", r.MaxBodyBytes)
		}
		rctx := throttleContext{apiKeys: g.APIKeys != nil, jwt: r.Authorizer != ""}
		c.throttles(rp+".throttle", r.Throttle, rctx, "an authorizer on this route")
	}
	c.checkGatewayEdge(p, g) // validate_gateway_edge.go
}

// rateLimitStore checks memory or a redis:// URL and reports whether it is Redis. The URL is
// not echoed: it may hold a password.
func (c *checker) rateLimitStore(path, v string) bool {
	if v == RateLimitMemory {
		return false
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		c.errf(path, "write memory, or redis://HOST:PORT/DB (rediss:// for TLS; a password may come from ${env:NAME})",
			"rate_limit_store must be memory or a redis:// URL")
		return false
	}
	return true
}

// throttleContext says which client keys can be computed where a throttle applies.
type throttleContext struct{ apiKeys, jwt bool }

func (c *checker) throttles(path string, ts []Throttle, ctx throttleContext, jwtNeed string) {
	seen := map[string]string{}
	for i := range ts {
		t := &ts[i]
		tp := fmt.Sprintf("%s[%d]", path, i)
		if first, dup := seen[t.Key]; dup {
			what := "key " + t.Key
			if t.Key == "" {
				what = "no key"
			}
			c.errf(tp, "merge them into one", "a throttle with %s is already at %s (line %d)", what, first, c.line(first))
		} else {
			seen[t.Key] = tp
		}
		c.throttleKey(tp+".key", t.Key, ctx, jwtNeed)
		c.throttleLimit(tp, t)
	}
}

func (c *checker) throttleKey(path, k string, ctx throttleContext, jwtNeed string) {
	const hint = "write source_ip, api_key, jwt:CLAIM (such as jwt:sub) or header:NAME; leave it out for one bucket for all"
	switch {
	case k == "" || k == ThrottleKeySourceIP:
	case k == ThrottleKeyAPIKey:
		if !ctx.apiKeys {
			c.errf(path, "add api_keys: {secret: NAME} to the gateway", "key api_key needs api_keys")
		}
	case strings.HasPrefix(k, ThrottleKeyJWTPrefix):
		if !paramName(strings.TrimPrefix(k, ThrottleKeyJWTPrefix)) {
			c.errf(path, hint, "bad claim name in %q", k)
		} else if !ctx.jwt {
			c.errf(path, "a JWT claim exists only on requests an authorizer checked", "key %s needs %s", k, jwtNeed)
		}
	case strings.HasPrefix(k, ThrottleKeyHeader):
		if !isToken(strings.TrimPrefix(k, ThrottleKeyHeader)) {
			c.errf(path, hint, "bad header name in %q", k)
		}
	default:
		c.errf(path, hint, "unknown throttle key %q", k)
	}
}

func (c *checker) throttleLimit(p string, t *Throttle) {
	if !c.set(p + ".rate") {
		c.errf(p+".rate", "write requests per second, such as 10 or 0.5", "required")
	} else if !(t.Rate > 0) || t.Rate > 1e6 || math.IsInf(t.Rate, 0) {
		c.errf(p+".rate", "write requests per second, such as 10 or 0.5", "rate %v is not between 0 (excluded) and 1000000", t.Rate)
	}
	if !c.set(p + ".burst") {
		c.errf(p+".burst", "write how many requests may arrive at once, at least 1", "required")
	} else if t.Burst < 1 || t.Burst > 1e6 {
		c.errf(p+".burst", "write how many requests may arrive at once, at least 1", "burst %d is not between 1 and 1000000", t.Burst)
	}
}

func (c *checker) authorizer(p string, a *Authorizer) {
	if !c.enum(p+".type", "authorizer type", a.Type, []string{AuthorizerJWT}) {
		return
	}
	if !c.set(p + ".issuer") {
		c.errf(p+".issuer", "write the iss your identity provider puts in tokens, such as https://login.example.com/", "required")
	} else {
		c.required(p+".issuer", a.Issuer)
	}
	if len(a.Audiences) == 0 {
		c.errf(p+".audiences", "list the aud values tokens for this API carry, such as [https://api.example.com]", "at least one audience is required")
	}
	for i, aud := range a.Audiences {
		if aud == "" {
			c.errf(idx(p, "audiences", i), "", "empty audience")
		}
	}
	switch {
	case a.JWKSFile == "" && a.JWKSURL == "":
		c.errf(p, "set jwks_url: https://…/.well-known/jwks.json or jwks_file: PATH", "a JWT authorizer needs jwks_url or jwks_file")
	case a.JWKSFile != "" && a.JWKSURL != "":
		c.errf(p+".jwks_url", "remove one of them", "set jwks_url or jwks_file, not both")
	case a.JWKSURL != "":
		if c.httpURL(p+".jwks_url", a.JWKSURL, "jwks_url") {
			c.jwksURL(p+".jwks_url", a.JWKSURL)
		}
	}
	if len(a.Algorithms) == 0 {
		c.errf(p+".algorithms", "list RS256, ES256 or EdDSA", "at least one algorithm is required")
	}
	algs := []string{AlgRS256, AlgES256, AlgEdDSA}
	for i, alg := range a.Algorithms {
		ip := idx(p, "algorithms", i)
		if strings.EqualFold(alg, "none") || strings.HasPrefix(alg, "HS") {
			c.errf(ip, "use "+strings.Join(algs, ", "), "algorithm %q is not accepted: unsigned and shared-secret tokens can be forged by anyone who holds the key", alg)
			continue
		}
		c.enum(ip, "JWT algorithm", alg, algs)
	}
	if a.Leeway.Duration < 0 || a.Leeway.Duration > 300e9 {
		c.errf(p+".leeway", "write a small duration such as 30s", "leeway %s is not between 0 and 5m", a.Leeway.Duration)
	}
	c.positive(p+".jwks_refresh", a.JWKSRefresh)
	c.positive(p+".jwks_fetch_timeout", a.JWKSFetchTimeout)
	if a.JWKSFetchTimeout.Duration > 60e9 {
		c.errf(p+".jwks_fetch_timeout", "a request may wait this long for keys: write a few seconds", "timeout %s is over 1m", a.JWKSFetchTimeout.Duration)
	}
}

// jwksURL requires https for a JWKS URL: keys fetched over plain http can be swapped by anyone on
// the path, and whoever supplies the keys can mint any token. A loopback address (localhost,
// 127.0.0.0/8, ::1) may use http, for tests and a local identity provider.
func (c *checker) jwksURL(path, raw string) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "https" {
		return
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() {
		return
	}
	c.errf(path, "write https://…/.well-known/jwks.json (http:// is accepted only for a loopback address such as 127.0.0.1, for tests)",
		"jwks_url must be https: keys fetched over http can be replaced in transit, and whoever replaces them can sign any token")
}

// maxBodyBytes checks a request body limit.
func (c *checker) maxBodyBytes(path string, n int64) {
	if n < 1 || n > MaxMaxBodyBytes {
		c.errf(path, fmt.Sprintf("write a size in bytes from 1 to %d (1 GiB), such as 10485760 for 10 MiB", MaxMaxBodyBytes),
			"max_body_bytes %d is out of range", n)
	}
}
