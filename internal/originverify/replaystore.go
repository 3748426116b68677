package originverify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampart-edge/rampart/internal/ratelimit"
)

// ErrReplayStore is returned (wrapped with the cause) when the shared replay store could not
// record a nonce and the policy is to refuse the request.
var ErrReplayStore = errors.New("replay store unavailable")

// ReplayStore is a record of used nonces shared by every verifier of a deployment, so that a
// token accepted by one load balancer is refused by the others. The in-memory ReplayCache of each
// process stays in front of it: it catches local replays without a round trip and lets two rules
// of one request read the same token.
type ReplayStore interface {
	// Record stores key for ttl unless it is already there, atomically, and reports whether it
	// was stored (false: the key was there, the token is a replay).
	Record(ctx context.Context, key string, ttl time.Duration) (stored bool, err error)
}

// sharedReplay is a store and what to do when it fails.
type sharedReplay struct {
	store        ReplayStore
	allowOnError bool
	onError      func(error)
}

// record stores the nonce of keyring name; see WithReplayStore for the error policy.
func (s *sharedReplay) record(ctx context.Context, name, nonce string, ttl time.Duration) error {
	stored, err := s.store.Record(ctx, name+":"+nonce, ttl)
	switch {
	case err != nil:
		if s.onError != nil {
			s.onError(err)
		}
		if s.allowOnError {
			return nil
		}
		return fmt.Errorf("%w: %w", ErrReplayStore, err)
	case !stored:
		return ErrReplay
	}
	return nil
}

// WithReplayStore returns a copy of v that, after its in-memory cache, records every nonce in
// store, so that a token is accepted once across all the verifiers sharing the store. When the
// store fails, allowOnError decides: true accepts the token (this process's own cache still
// refuses a replay to it), false refuses it with an error wrapping ErrReplayStore. onError, when
// set, is told of every store failure (the caller throttles its logging).
func (v *SignedVerifier) WithReplayStore(store ReplayStore, allowOnError bool, onError func(error)) *SignedVerifier {
	c := *v
	c.shared = &sharedReplay{store: store, allowOnError: allowOnError, onError: onError}
	return &c
}

// DefaultReplayStoreTimeout bounds each call to a Redis replay store, so that an unreachable Redis
// costs a request this long at most before on_store_error decides.
const DefaultReplayStoreTimeout = 250 * time.Millisecond

// redisNoncePrefix namespaces the nonce keys in a Redis shared with other uses (rate limits).
const redisNoncePrefix = "rampart:ov-nonce:"

// RedisReplayStore is a ReplayStore in Redis: one SET NX with an expiry per nonce.
type RedisReplayStore struct {
	client  *redis.Client
	timeout time.Duration
}

// NewRedisReplayStore connects lazily to the Redis at rawURL (redis://[:password@]host:port[/db]
// or rediss://…). timeout bounds each call (0: DefaultReplayStoreTimeout). Errors never include
// the URL, which may hold a password.
func NewRedisReplayStore(rawURL string, timeout time.Duration) (*RedisReplayStore, error) {
	if timeout <= 0 {
		timeout = DefaultReplayStoreTimeout
	}
	client, err := ratelimit.NewRedisClient(rawURL, "replay_store", timeout)
	if err != nil {
		return nil, err
	}
	return &RedisReplayStore{client: client, timeout: timeout}, nil
}

// Record implements ReplayStore with SET key 1 NX PX ttl.
func (s *RedisReplayStore) Record(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	stored, err := s.client.SetNX(ctx, redisNoncePrefix+key, 1, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("redis: %w", err)
	}
	return stored, nil
}

// Close closes the connections to Redis.
func (s *RedisReplayStore) Close() error { return s.client.Close() }
