package originverify

import (
	"hash/maphash"
	"net/http"
	"strings"
	"sync"
	"time"
	"weak"
)

// DefaultReplayCacheSize bounds the nonces a replay cache holds. With the default 30 s skew a
// nonce is held for one to two minutes, so this admits about 8,700 signed requests per second
// per process; beyond that, requests are refused (fail closed) rather than replays admitted.
const DefaultReplayCacheSize = 1 << 20

const replayShards = 32

// ReplayCache remembers the nonces of accepted tokens for at least one period, in memory. It is
// two generations of maps per shard: a nonce is looked up in both, inserted in the newer, and
// dropped when its generation has aged out, so expiry costs nothing per entry. It is bounded: when
// full, Check refuses instead of forgetting a nonce early.
type ReplayCache struct {
	period   int64 // nanoseconds
	perShard int
	seed     maphash.Seed
	shards   [replayShards]replayShard
}

type replayShard struct {
	mu        sync.Mutex
	gen       int64 // index of the current generation: unix nanoseconds / period
	cur, prev map[string]weak.Pointer[http.Request]
}

// NewReplayCache returns a cache that remembers each nonce for at least period and holds at most
// about size nonces.
func NewReplayCache(period time.Duration, size int) *ReplayCache {
	if period <= 0 {
		period = time.Second
	}
	c := &ReplayCache{period: int64(period), perShard: max(size/replayShards, 1), seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].cur = map[string]weak.Pointer[http.Request]{}
		c.shards[i].prev = map[string]weak.Pointer[http.Request]{}
	}
	return c
}

// Check records nonce as used at now. It returns ErrReplay when the nonce was recorded within the
// last period by another owner, and ErrReplayCacheFull when there is no room to record it. The
// same live owner (one *http.Request checked by two rules) may check a nonce more than once.
func (c *ReplayCache) Check(nonce string, now time.Time, owner weak.Pointer[http.Request]) error {
	_, err := c.check(nonce, now, owner)
	return err
}

// check is Check that also reports whether the nonce was recorded before by the same live owner,
// so that a shared store behind the cache is consulted once per request, not once per rule.
func (c *ReplayCache) check(nonce string, now time.Time, owner weak.Pointer[http.Request]) (repeat bool, err error) {
	sh := &c.shards[maphash.String(c.seed, nonce)%replayShards]
	gen := now.UnixNano() / c.period
	sh.mu.Lock()
	defer sh.mu.Unlock()
	switch {
	case gen == sh.gen:
	case gen == sh.gen+1:
		// Entries of the previous generation were recorded more than one period ago.
		clear(sh.prev)
		sh.prev, sh.cur = sh.cur, sh.prev
		sh.gen = gen
	case gen > sh.gen+1:
		clear(sh.prev)
		clear(sh.cur)
		sh.gen = gen
	}
	// A clock that went back (gen < sh.gen) keeps the newer generations: forgetting early is
	// the one thing a replay cache must not do.
	for _, m := range []map[string]weak.Pointer[http.Request]{sh.cur, sh.prev} {
		if o, ok := m[nonce]; ok {
			if owner.Value() != nil && o == owner {
				return true, nil
			}
			return false, ErrReplay
		}
	}
	if len(sh.cur)+len(sh.prev) >= c.perShard {
		return false, ErrReplayCacheFull
	}
	sh.cur[strings.Clone(nonce)] = owner // not a substring that would pin the whole header
	return false, nil
}

// Len returns the number of nonces held.
func (c *ReplayCache) Len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		n += len(sh.cur) + len(sh.prev)
		sh.mu.Unlock()
	}
	return n
}

// sharedTTL is how long a shared store remembers a nonce: two periods, as this cache at most
// does, which covers a token's whole window even on a verifier whose clock is a period off.
func (c *ReplayCache) sharedTTL() time.Duration { return 2 * time.Duration(c.period) }
