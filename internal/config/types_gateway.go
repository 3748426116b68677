package config

import (
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

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

// RequestValidation is what a route checks before its integration is called: headers and query
// parameters that must be present, and a JSON Schema the body must satisfy. A request that fails
// gets 400 (BAD_REQUEST_PARAMETERS or BAD_REQUEST_BODY) saying which field failed.
type RequestValidation struct {
	RequiredHeaders []string `yaml:"required_headers"`
	RequiredQuery   []string `yaml:"required_query"`
	// BodySchema is a JSON Schema (draft 2020-12 unless it says otherwise with $schema),
	// written inline in YAML or JSON syntax; BodySchemaFile names a JSON file holding one.
	BodySchema     JSONValue `yaml:"body_schema"`
	BodySchemaFile string    `yaml:"body_schema_file"`

	// Schema is the compiled schema; the loader fills it, so a bad schema fails at load time.
	Schema *jsonschema.Schema `yaml:"-"`
}

// ResponseHeaders edits the headers of a backend's response before the client sees them: Set
// overwrites (every copy of the name is replaced), Remove deletes. A route's entries add to the
// gateway's; for a name both set, the route's wins.
type ResponseHeaders struct {
	Set    []HeaderMapping `yaml:"set"`
	Remove []string        `yaml:"remove"`
}

// GatewayResponse overrides the status, body or headers of one kind of error the gateway itself
// produces (gateway_responses: {THROTTLED: {...}}), as AWS API Gateway's gateway responses do.
type GatewayResponse struct {
	Status int `yaml:"status"`
	// Body is a JSON value (a mapping is written as a JSON object) or a string sent as it is.
	// Strings in it may hold ${context.requestId}, ${context.error.message},
	// ${context.error.type} and ${context.error.validationErrorString}.
	Body    JSONValue         `yaml:"body"`
	Headers map[string]string `yaml:"headers"`
}

// Gateway response types (gateway_responses keys). DEFAULT_4XX and DEFAULT_5XX apply to every
// type of that class that has no entry of its own.
const (
	RespUnauthorized          = "UNAUTHORIZED"
	RespAccessDenied          = "ACCESS_DENIED"
	RespInvalidAPIKey         = "INVALID_API_KEY"
	RespThrottled             = "THROTTLED"
	RespQuotaExceeded         = "QUOTA_EXCEEDED"
	RespBadRequest            = "BAD_REQUEST"
	RespBadRequestBody        = "BAD_REQUEST_BODY"
	RespBadRequestParameters  = "BAD_REQUEST_PARAMETERS"
	RespRequestTooLarge       = "REQUEST_TOO_LARGE"
	RespRequestTimeout        = "REQUEST_TIMEOUT"
	RespHeaderFieldsTooLarge  = "REQUEST_HEADER_FIELDS_TOO_LARGE"
	RespIntegrationFailure    = "INTEGRATION_FAILURE"
	RespIntegrationTimeout    = "INTEGRATION_TIMEOUT"
	RespMissingRoute          = "MISSING_ROUTE"
	RespMethodNotAllowed      = "METHOD_NOT_ALLOWED"
	RespCORSRejected          = "CORS_REJECTED"
	RespWAFBlocked            = "WAF_BLOCKED"
	RespThrottleStoreError    = "THROTTLE_STORE_ERROR"
	RespAuthorizerFailure     = "AUTHORIZER_FAILURE"
	RespDefault4XX            = "DEFAULT_4XX"
	RespDefault5XX            = "DEFAULT_5XX"
	RespInternalServerFailure = "INTERNAL_SERVER_ERROR"
)

// GatewayResponseTypes lists every gateway response type, for validation and did-you-mean hints.
var GatewayResponseTypes = []string{
	RespUnauthorized, RespAccessDenied, RespInvalidAPIKey, RespThrottled, RespQuotaExceeded,
	RespBadRequest, RespBadRequestBody, RespBadRequestParameters, RespRequestTooLarge, RespRequestTimeout,
	RespHeaderFieldsTooLarge, RespIntegrationFailure, RespIntegrationTimeout, RespMissingRoute,
	RespMethodNotAllowed, RespCORSRejected, RespWAFBlocked, RespThrottleStoreError,
	RespAuthorizerFailure, RespInternalServerFailure, RespDefault4XX, RespDefault5XX,
}

// Listener defaults of a gateway: a slow or idle client is cut off, never held forever.
const (
	DefaultMaxHeaderBytes    = 64 << 10 // 64 KiB; over it, 431
	MaxMaxHeaderBytes        = 1 << 20
	DefaultReadHeaderTimeout = 10 * time.Second  // the request line and headers
	DefaultReadTimeout       = 60 * time.Second  // the whole request, body included
	DefaultIdleTimeout       = 120 * time.Second // a keep-alive connection between requests
	// The write timeout defaults to the longest integration timeout of the gateway's routes
	// plus WriteTimeoutMargin, so that a slow backend is answered with 504, not a cut connection.
	WriteTimeoutMargin = 10 * time.Second
)
