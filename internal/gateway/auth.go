package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
)

// jwtAuthorizer verifies bearer JWTs for the routes that name it.
type jwtAuthorizer struct {
	name   string
	algs   []string
	policy jwtPolicy
	keys   *jwksSource
	logger *slog.Logger
	now    func() time.Time
	realm  string // for WWW-Authenticate
}

func newJWTAuthorizer(ac config.Authorizer, logger *slog.Logger) (*jwtAuthorizer, error) {
	logger = logger.With("authorizer", ac.Name)
	src, err := newJWKSSource(ac.JWKSFile, ac.JWKSURL, ac.JWKSRefresh.Duration, ac.JWKSFetchTimeout.Duration, logger)
	if err != nil {
		return nil, err
	}
	return &jwtAuthorizer{
		name:   ac.Name,
		algs:   ac.Algorithms,
		policy: jwtPolicy{issuer: ac.Issuer, audiences: ac.Audiences, leeway: ac.Leeway.Duration},
		keys:   src,
		logger: logger,
		now:    time.Now,
		realm:  ac.Name,
	}, nil
}

// verify checks a token and returns its claims.
func (az *jwtAuthorizer) verify(ctx context.Context, token string) (claims, error) {
	t, err := parseJWS(token)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(az.algs, t.header.Alg) {
		return nil, errAlgorithm
	}
	keys, err := az.keys.keys(ctx, false)
	if err != nil {
		return nil, err
	}
	k, found := pickKey(keys, t.header)
	if !found && t.header.Kid != "" {
		// Perhaps a key the provider has just rotated in.
		if keys, err = az.keys.keys(ctx, true); err != nil {
			return nil, err
		}
		k, found = pickKey(keys, t.header)
	}
	if !found {
		return nil, errNoKey
	}
	if !t.verify(k) {
		return nil, errSignature
	}
	var c claims
	if err := strictUnmarshal(t.payload, &c); err != nil {
		return nil, errMalformed
	}
	if err := az.policy.check(c, az.now()); err != nil {
		return nil, err
	}
	return c, nil
}

// pickKey is the key the header's kid names, for the header's algorithm. Without a kid, the set
// must hold exactly one key of that algorithm: guessing among several would let a token choose.
func pickKey(keys []jwk, h jwsHeader) (any, bool) {
	var match any
	n := 0
	for _, k := range keys {
		if keyAlg(k.key) != h.Alg || (h.Kid != "" && k.kid != h.Kid) {
			continue
		}
		match = k.key
		n++
	}
	return match, n == 1
}

// authenticate checks the request's token and the route's scopes. On failure it has answered:
// 401 with WWW-Authenticate for a missing or invalid token, 403 for a missing scope, 503 when no
// keys could be loaded.
func (az *jwtAuthorizer) authenticate(w http.ResponseWriter, r *http.Request, scopes []string) (claims, bool) {
	token, ok := bearerToken(r.Header.Values("Authorization"))
	if !ok {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q`, az.realm))
		reply(w, r, respUnauthorized)
		return nil, false
	}
	c, err := az.verify(r.Context(), token)
	if err != nil {
		if errors.Is(err, errNoKeys) {
			reply(w, r, respAuthorizerError)
			return nil, false
		}
		// The reason goes to the log at debug level only, never the token.
		az.logger.Debug("token refused", "reason", err.Error(), "request_id", exchangeFrom(r.Context()).id)
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q, error="invalid_token"`, az.realm))
		reply(w, r, respUnauthorized)
		return nil, false
	}
	if len(scopes) > 0 {
		have := c.scopes()
		for _, s := range scopes {
			if !slices.Contains(have, s) {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q, error="insufficient_scope", scope=%q`, az.realm, strings.Join(scopes, " ")))
				reply(w, r, respAccessDenied)
				return nil, false
			}
		}
	}
	return c, true
}
