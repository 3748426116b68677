package ratelimit

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// Memory is the in-memory Limiter: buckets of one process. It keeps a bucket only while it is
// below full (a full bucket is the same as no bucket), so a flood of distinct client keys costs
// memory for as long as each key's bucket takes to refill, not forever.
type Memory struct {
	seed   maphash.Seed
	start  time.Time // monotonic origin of the durations stored in buckets
	now    func() time.Time
	shards [64]memShard
}

type memShard struct {
	mu      sync.Mutex
	buckets map[string]time.Duration // key → tat, relative to start
	ops     int
}

// sweepEvery is how many updates of a shard trigger a sweep of its full buckets.
const sweepEvery = 4096

// NewMemory returns an empty in-memory limiter.
func NewMemory() *Memory { return newMemory(time.Now) }

func newMemory(now func() time.Time) *Memory {
	m := &Memory{seed: maphash.MakeSeed(), start: now(), now: now}
	for i := range m.shards {
		m.shards[i].buckets = map[string]time.Duration{}
	}
	return m
}

// Allow implements Limiter. It never fails.
func (m *Memory) Allow(_ context.Context, key string, l Limit) (Result, error) {
	now := m.now().Sub(m.start)
	s := &m.shards[maphash.String(m.seed, key)%uint64(len(m.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	res, tat := gcra(s.buckets[key], now, l)
	if res.Allowed {
		s.buckets[key] = tat
	}
	if s.ops++; s.ops >= sweepEvery {
		s.ops = 0
		for k, t := range s.buckets {
			if t <= now {
				delete(s.buckets, k)
			}
		}
	}
	return res, nil
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
