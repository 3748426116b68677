package gateway

import (
	"log/slog"
	"unicode/utf8"
)

// maxLoggedSubBytes bounds the jwt_sub field: a signed token's sub is still the issuer's
// choice, and one access line must stay one line of reasonable size.
const maxLoggedSubBytes = 256

// appendAccessIdentity adds the access-log fields that say who called and how long the backend
// took: api_key_id when an API key authenticated the request, jwt_sub when a JWT authorizer
// accepted it, integration_latency when the backend was called, gateway_response when the
// gateway answered itself. Only identifiers are logged, never a key value or a token.
func appendAccessIdentity(attrs []slog.Attr, ex *exchange) []slog.Attr {
	id := &ex.access.identity
	if id.key != nil {
		attrs = append(attrs, slog.String("api_key_id", id.key.id))
	}
	if id.claims != nil {
		attrs = append(attrs, slog.String("jwt_sub", truncateUTF8(id.claims.claimString("sub"), maxLoggedSubBytes)))
	}
	if ex.integrationLatency > 0 {
		attrs = append(attrs, slog.Duration("integration_latency", ex.integrationLatency))
	}
	if ex.errorType != "" {
		// Which of the gateway's own answers this was (THROTTLED, BAD_REQUEST_BODY, …): the
		// status alone does not tell a 403 of CORS from one of an API key.
		attrs = append(attrs, slog.String("gateway_response", ex.errorType))
	}
	return attrs
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
