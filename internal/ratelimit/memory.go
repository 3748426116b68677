package ratelimit

import (
	"context"
	"crypto/sha256"
	"hash/maphash"
	"sync"
	"time"
)

// DefaultMaxBuckets bounds the buckets NewMemory keeps, whatever the traffic: about 25 MB at
// worst (keys are at most maxKeyBytes, longer ones are hashed).
const DefaultMaxBuckets = 1 << 17

// maxKeyBytes is the longest key kept as is. A longer one (a client-chosen header value can be
// ~64 KB) is replaced by its SHA-256, as the Redis store does, so that a client cannot make the
// store hold large keys.
const maxKeyBytes = 96

// expireChecks is how many of the least recently used buckets each update checks for being full
// again (a full bucket is the same as no bucket, so it is dropped). The work per update is
// constant: there is no sweep over a whole shard under its lock.
const expireChecks = 2

// Memory is the in-memory Limiter: buckets of one process. It keeps a bucket only while it is
// below full (a full bucket is the same as no bucket), and at most a fixed number of buckets.
//
// When a shard is at its cap, a new key evicts the shard's least recently used bucket. "Used"
// counts every request, refused ones too, so the buckets that are holding someone back are the
// ones a client keeps touching and the last to go. To push out a bucket, an attacker must make
// about max (DefaultMaxBuckets) new buckets after that bucket's last request (the shard is chosen
// by a per-process random seed, so it cannot aim at one shard), and each new bucket is a request
// some throttle admitted. The evicted client gets at most its burst back early. The
// alternatives are worse: refusing new keys when full lets a flood lock every new client out,
// admitting them untracked lets it switch throttling off, and evicting the oldest or a random
// bucket could drop the very bucket a client is hammering.
type Memory struct {
	seed     maphash.Seed
	start    time.Time // monotonic origin of the durations stored in buckets
	now      func() time.Time
	shardMax int // buckets per shard
	shards   [64]memShard
}

type memShard struct {
	mu      sync.Mutex
	buckets map[string]*memBucket
	lru     memBucket // sentinel of the recency list: lru.next is the most recently used
	evicted int64     // live buckets evicted at the cap
}

// memBucket is one bucket, in its shard's map and recency list.
type memBucket struct {
	key        string
	tat        time.Duration // relative to Memory.start
	prev, next *memBucket
}

// NewMemory returns an empty in-memory limiter that holds at most DefaultMaxBuckets buckets.
func NewMemory() *Memory { return newMemory(time.Now, DefaultMaxBuckets) }

func newMemory(now func() time.Time, maxBuckets int) *Memory {
	m := &Memory{seed: maphash.MakeSeed(), start: now(), now: now}
	m.shardMax = max(maxBuckets/len(m.shards), 1)
	for i := range m.shards {
		s := &m.shards[i]
		s.buckets = map[string]*memBucket{}
		s.lru.next, s.lru.prev = &s.lru, &s.lru
	}
	return m
}

// memKey is the key under which key's bucket is stored: key itself, or a hash of a long key.
// The hashed form starts with a NUL byte, which no header value or claim can hold, so it cannot
// be hit by a short key.
func memKey(key string) string {
	if len(key) <= maxKeyBytes {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "\x00h" + string(sum[:])
}

// Allow implements Limiter. It never fails.
func (m *Memory) Allow(_ context.Context, key string, l Limit) (Result, error) {
	key = memKey(key)
	now := m.now().Sub(m.start)
	s := &m.shards[maphash.String(m.seed, key)%uint64(len(m.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[key]
	var tat time.Duration
	if b != nil {
		tat = b.tat
	}
	res, next := gcra(tat, now, l)
	switch {
	case b != nil:
		b.tat = next // unchanged when refused
		s.unlink(b)
		s.pushFront(b)
	case res.Allowed:
		if len(s.buckets) >= m.shardMax {
			lru := s.lru.prev
			if lru.tat > now {
				s.evicted++
			}
			s.remove(lru)
		}
		b = &memBucket{key: key, tat: next}
		s.buckets[key] = b
		s.pushFront(b)
	}
	for range expireChecks {
		lru := s.lru.prev
		if lru == &s.lru || lru == b || lru.tat > now {
			break
		}
		s.remove(lru)
	}
	return res, nil
}

func (s *memShard) pushFront(b *memBucket) {
	b.prev, b.next = &s.lru, s.lru.next
	b.next.prev = b
	s.lru.next = b
}

func (s *memShard) unlink(b *memBucket) {
	b.prev.next, b.next.prev = b.next, b.prev
	b.prev, b.next = nil, nil
}

func (s *memShard) remove(b *memBucket) {
	s.unlink(b)
	delete(s.buckets, b.key)
}

// size is the number of buckets held, for tests.
func (m *Memory) size() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}

// evictedLive is the number of buckets evicted while not full, for tests.
func (m *Memory) evictedLive() int64 {
	var n int64
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += s.evicted
		s.mu.Unlock()
	}
	return n
}
