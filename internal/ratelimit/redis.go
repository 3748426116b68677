package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// bucketScript is GCRA (see gcra in ratelimit.go) done atomically in Redis with the server's
// clock, so that replicas whose clocks differ still share one bucket exactly. The key expires
// when the bucket is full again: an absent key is a full bucket.
//
// KEYS[1] the bucket; ARGV[1] the interval between tokens in µs; ARGV[2] the burst.
// Returns {allowed (0|1), remaining, retry-after µs, reset µs}.
const bucketScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2]) * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now then tat = now end
local nxt = tat + interval
local allow_at = nxt - burst
if now < allow_at then
  local remaining = math.floor((now - (tat - burst)) / interval)
  if remaining < 0 then remaining = 0 end
  return {0, remaining, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.ceil((nxt - now) / 1000))
return {1, math.floor((now - allow_at) / interval), 0, nxt - now}
`

// quotaScript counts one more request unless the limit is reached; the counter expires at the
// end of its period (plus a day, so that clock skew between replicas cannot restart it early).
//
// KEYS[1] the counter; ARGV[1] the limit; ARGV[2] the expiry as a Unix time in seconds.
// Returns {allowed (0|1), used}.
const quotaScript = `
local used = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if used >= tonumber(ARGV[1]) then return {0, used} end
used = redis.call('INCR', KEYS[1])
if used == 1 then redis.call('EXPIREAT', KEYS[1], ARGV[2]) end
return {1, used}
`

var (
	bucket = redis.NewScript(bucketScript)
	quota  = redis.NewScript(quotaScript)
)

// DefaultRedisTimeout bounds each Redis call, so that an unreachable Redis costs a request this
// long at most before the on_store_error policy decides.
const DefaultRedisTimeout = 250 * time.Millisecond

// Redis is the Limiter and Quota shared by every gateway replica that uses the same Redis.
type Redis struct {
	client  *redis.Client
	prefix  string
	timeout time.Duration
	now     func() time.Time
}

// NewRedis connects lazily to the Redis at rawURL (redis://[:password@]host:port[/db] or
// rediss://…). Keys are namespaced by prefix. timeout bounds each call (0: DefaultRedisTimeout).
// Errors never include the URL, which may hold a password.
func NewRedis(rawURL, prefix string, timeout time.Duration) (*Redis, error) {
	if timeout <= 0 {
		timeout = DefaultRedisTimeout
	}
	client, err := NewRedisClient(rawURL, "rate_limit_store", timeout)
	if err != nil {
		return nil, err
	}
	return &Redis{client: client, prefix: prefix, timeout: timeout, now: time.Now}, nil
}

// NewRedisClient returns a client for the shared Redis store at rawURL (redis://… or rediss://…),
// connecting lazily, with every call bounded by timeout and one retry for a connection Redis
// closed (a restart). Every Redis user of Rampart (throttles, quotas, WAF rate rules, the replay
// cache) connects through it. key names the config key in errors, which never include the URL
// (it may hold a password).
func NewRedisClient(rawURL, key string, timeout time.Duration) (*redis.Client, error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL
		}
		return nil, fmt.Errorf("%s: not a redis:// URL: %v", key, redactURLError(err, rawURL))
	}
	opts.DialTimeout = timeout
	opts.ReadTimeout = timeout
	opts.WriteTimeout = timeout
	opts.PoolTimeout = timeout
	opts.MaxRetries = 1
	opts.DisableIdentity = true
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return redis.NewClient(opts), nil
}

// redactURLError removes rawURL from an error message.
func redactURLError(err error, rawURL string) string {
	if rawURL == "" {
		return err.Error()
	}
	return strings.ReplaceAll(err.Error(), rawURL, "<url>")
}

// Close closes the connections to Redis.
func (r *Redis) Close() error { return r.client.Close() }

// Ping checks that Redis answers.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// redisKey namespaces key; a long key (a client-chosen header value) is hashed, so that a client
// cannot make Redis store large keys.
func (r *Redis) redisKey(kind, key string) string {
	if len(key) > 96 {
		sum := sha256.Sum256([]byte(key))
		key = "h:" + base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return r.prefix + kind + key
}

// Allow implements Limiter with one script call.
func (r *Redis) Allow(ctx context.Context, key string, l Limit) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	iv := l.interval().Microseconds()
	v, err := bucket.Run(ctx, r.client, []string{r.redisKey("b:", key)}, iv, l.Burst).Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("redis rate limit: %w", err)
	}
	if len(v) != 4 {
		return Result{}, fmt.Errorf("redis rate limit: unexpected reply of %d values", len(v))
	}
	return Result{
		Allowed:    v[0] == 1,
		Limit:      l.Burst,
		Remaining:  int(v[1]),
		RetryAfter: time.Duration(v[2]) * time.Microsecond,
		Reset:      time.Duration(v[3]) * time.Microsecond,
	}, nil
}

// Consume implements Quota. The period is computed with this process's clock.
func (r *Redis) Consume(ctx context.Context, key string, limit int64, p Period) (QuotaResult, error) {
	start, end, err := p.window(r.now())
	if err != nil {
		return QuotaResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	k := r.redisKey("q:", key+"|"+start.Format("2006-01-02"))
	v, err := quota.Run(ctx, r.client, []string{k}, limit, strconv.FormatInt(end.Add(24*time.Hour).Unix(), 10)).Int64Slice()
	if err != nil {
		return QuotaResult{}, fmt.Errorf("redis quota: %w", err)
	}
	if len(v) != 2 {
		return QuotaResult{}, fmt.Errorf("redis quota: unexpected reply of %d values", len(v))
	}
	return QuotaResult{Allowed: v[0] == 1, Used: v[1], Limit: limit, Reset: end}, nil
}
