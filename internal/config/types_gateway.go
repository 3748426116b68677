package config

import "time"

// Rate limit stores and store-error policies (gateways[].rate_limit_store, on_store_error).
const (
	RateLimitMemory = "memory"
	StoreErrorAllow = "allow" // admit the request when the store cannot decide (availability first)
	StoreErrorDeny  = "deny"  // refuse it with 503 (protection first)
)

// Throttle client keys (throttle[].key). An empty key is one bucket for the whole level; the
// others give each client its own bucket.
const (
	ThrottleKeySourceIP  = "source_ip"
	ThrottleKeyAPIKey    = "api_key"
	ThrottleKeyJWTPrefix = "jwt:"    // jwt:CLAIM, such as jwt:sub
	ThrottleKeyHeader    = "header:" // header:NAME, such as header:X-Tenant
)

// Throttle is a token bucket: Rate requests per second on average, Burst at once. At the gateway
// it counts every request; at a route, that route's requests; with a Key, each client separately.
type Throttle struct {
	Key   string  `yaml:"key"`
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
}

// DefaultAPIKeyHeader is the header that carries an API key, as in AWS API Gateway.
const DefaultAPIKeyHeader = "X-Api-Key"

// APIKeys makes the gateway identify callers by API key. The keys live in the file of the secret
// named Secret (a JSON key file, see docs/gateway.md), never in the config.
type APIKeys struct {
	Header string `yaml:"header"`
	Secret string `yaml:"secret"`
	// Required makes every route require a key, unless the route sets api_key_required: false.
	Required bool `yaml:"required"`
	// QuotaFile is where the memory store keeps quota counters across restarts (the Redis store
	// keeps them in Redis). Default: .rampart/quota-<gateway name>.json.
	QuotaFile string `yaml:"quota_file"`

	// File is the key file, the file of secret Secret; the loader fills it.
	File string `yaml:"-"`
}

// UsagePlan gives the keys listed in Keys (key ids from the key file) a throttle per key and a
// quota per period. A key belongs to one plan at most; a key in no plan is refused.
type UsagePlan struct {
	Name     string    `yaml:"name"`
	Keys     []string  `yaml:"keys"`
	Throttle *Throttle `yaml:"throttle"`
	Quota    *Quota    `yaml:"quota"`
}

// Quota periods (calendar periods in UTC; weeks start on Monday).
const (
	QuotaDay   = "day"
	QuotaWeek  = "week"
	QuotaMonth = "month"
)

// Quota is a number of requests per calendar period.
type Quota struct {
	Limit  int64  `yaml:"limit"`
	Period string `yaml:"period"`
}

// Authorizer types.
const AuthorizerJWT = "jwt"

// JWT signature algorithms this build verifies.
const (
	AlgRS256 = "RS256"
	AlgES256 = "ES256"
	AlgEdDSA = "EdDSA"
)

// JWT authorizer defaults.
const (
	DefaultJWTLeeway        = 30 * time.Second // clock skew allowed on exp, nbf and iat
	DefaultJWKSRefresh      = 5 * time.Minute  // how long fetched keys are used before fetching again
	DefaultJWKSFetchTimeout = 5 * time.Second  // bound on one JWKS fetch
)

// Authorizer verifies a bearer JWT (type jwt, the only type so far) against keys from a JWKS
// file or URL. Routes name it in routes[].authorizer and may require scopes.
type Authorizer struct {
	Name       string   `yaml:"name"`
	Type       string   `yaml:"type"`
	Issuer     string   `yaml:"issuer"`
	Audiences  []string `yaml:"audiences"`
	JWKSFile   string   `yaml:"jwks_file"`
	JWKSURL    string   `yaml:"jwks_url"`
	Algorithms []string `yaml:"algorithms"`
	Leeway     Duration `yaml:"leeway"`
	// JWKSRefresh is how long fetched (or read) keys are used before they are fetched again;
	// a token with an unknown kid triggers an earlier fetch, at most once per 10s.
	JWKSRefresh      Duration `yaml:"jwks_refresh"`
	JWKSFetchTimeout Duration `yaml:"jwks_fetch_timeout"`
}

// Request body limits (gateways[].max_body_bytes, routes[].max_body_bytes).
const (
	// DefaultMaxBodyBytes is AWS API Gateway's payload limit.
	DefaultMaxBodyBytes int64 = 10 << 20
	// MaxMaxBodyBytes is the largest limit accepted: the gateway streams bodies, but a body
	// beyond a gigabyte is an upload service's job, not an API's.
	MaxMaxBodyBytes int64 = 1 << 30
)
