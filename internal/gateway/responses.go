package gateway

import (
	"net/http"
	"strconv"
	"time"

	"github.com/rampart-edge/rampart/internal/proxy"
)

// responseType names an error the gateway itself produces, as AWS API Gateway's gateway
// responses do.
type responseType string

// The gateway responses of authorizers, API keys and throttling.
const (
	respUnauthorized     responseType = "UNAUTHORIZED"         // 401: missing or invalid token
	respAccessDenied     responseType = "ACCESS_DENIED"        // 403: token lacks a scope
	respInvalidAPIKey    responseType = "INVALID_API_KEY"      // 403: missing or unknown API key
	respThrottled        responseType = "THROTTLED"            // 429: a token bucket is empty
	respQuotaExceeded    responseType = "QUOTA_EXCEEDED"       // 429: the usage plan's quota is used up
	respStoreUnavailable responseType = "THROTTLE_STORE_ERROR" // 503: on_store_error: deny and the store failed
	respAuthorizerError  responseType = "AUTHORIZER_FAILURE"   // 503: no JWKS keys could be loaded
)

var responseDefaults = map[responseType]struct {
	status  int
	message string
}{
	respUnauthorized:     {http.StatusUnauthorized, "Unauthorized"},
	respAccessDenied:     {http.StatusForbidden, "Forbidden"},
	respInvalidAPIKey:    {http.StatusForbidden, "Forbidden"},
	respThrottled:        {http.StatusTooManyRequests, "Too Many Requests"},
	respQuotaExceeded:    {http.StatusTooManyRequests, "Limit Exceeded"},
	respStoreUnavailable: {http.StatusServiceUnavailable, "Service Unavailable"},
	respAuthorizerError:  {http.StatusServiceUnavailable, "Service Unavailable"},
}

// reply writes the gateway response t. Headers set before (CORS, request id, Retry-After,
// WWW-Authenticate) stay on it.
func reply(w http.ResponseWriter, t responseType) {
	d := responseDefaults[t]
	proxy.WriteJSONError(w, d.status, d.message)
}

// seconds rounds d up to whole seconds, at least 1, for Retry-After and RateLimit-Reset.
func seconds(d time.Duration) string {
	s := (d + time.Second - 1) / time.Second
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(int64(s), 10)
}
