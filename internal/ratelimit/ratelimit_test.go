package ratelimit

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestMemoryBucket(t *testing.T) {
	clk := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	m := newMemory(clk.now, DefaultMaxBuckets)
	l := Limit{Rate: 2, Burst: 3} // a token every 500ms
	ctx := context.Background()
	for i := range 3 {
		res, _ := m.Allow(ctx, "k", l)
		if !res.Allowed || res.Remaining != 2-i || res.Limit != 3 {
			t.Fatalf("request %d: %+v, want allowed with %d remaining", i, res, 2-i)
		}
	}
	res, _ := m.Allow(ctx, "k", l)
	if res.Allowed || res.Remaining != 0 || res.RetryAfter != 500*time.Millisecond || res.Reset != 1500*time.Millisecond {
		t.Fatalf("4th request: %+v, want refused, retry after 500ms, reset 1.5s", res)
	}
	if res, _ := m.Allow(ctx, "other", l); !res.Allowed {
		t.Fatal("another key shares the bucket")
	}
	clk.add(499 * time.Millisecond)
	if res, _ := m.Allow(ctx, "k", l); res.Allowed {
		t.Fatal("a token came back early")
	}
	clk.add(time.Millisecond)
	if res, _ := m.Allow(ctx, "k", l); !res.Allowed || res.Remaining != 0 {
		t.Fatalf("after 500ms: %+v, want one token", res)
	}
	clk.add(10 * time.Second)
	if res, _ := m.Allow(ctx, "k", l); !res.Allowed || res.Remaining != 2 {
		t.Fatalf("after a long pause: %+v, want a full bucket (no more than burst)", res)
	}
}

func TestMemoryDropsFullBuckets(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	m := newMemory(clk.now, DefaultMaxBuckets)
	l := Limit{Rate: 1000, Burst: 1} // a bucket is full again 1ms after its request
	for i := range 20_000 {
		m.Allow(context.Background(), strconv.Itoa(i), l)
		clk.add(time.Millisecond)
	}
	if n := m.size(); n > 1000 {
		t.Fatalf("%d buckets kept, want full ones dropped as they come", n)
	}
	if n := m.evictedLive(); n != 0 {
		t.Fatalf("%d live buckets evicted below the cap", n)
	}
}

// TestMemoryHashesLongKeys: a client-chosen key (a header value of up to ~64 KB) is not kept as
// is, and still names one bucket.
func TestMemoryHashesLongKeys(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	m := newMemory(clk.now, DefaultMaxBuckets)
	l := Limit{Rate: 0.001, Burst: 1}
	long := "t|gw|gateway|header:X-Tenant|1/1|" + strings.Repeat("A", 64<<10)
	if res, _ := m.Allow(context.Background(), long, l); !res.Allowed {
		t.Fatal("first request refused")
	}
	if res, _ := m.Allow(context.Background(), long, l); res.Allowed {
		t.Fatal("second request admitted: the long key did not name one bucket")
	}
	if res, _ := m.Allow(context.Background(), long[:len(long)-1]+"B", l); !res.Allowed {
		t.Fatal("another long key shares the bucket")
	}
	for i := range m.shards {
		for k := range m.shards[i].buckets {
			if len(k) > maxKeyBytes+2 {
				t.Fatalf("a %d-byte key is stored as is", len(k))
			}
		}
	}
}

// TestMemoryCap floods the store with distinct keys whose buckets stay live (a slow rate): it
// keeps at most its cap, and a bucket its client keeps hitting (here refused each time) is
// never the one evicted, so a flood cannot reset the throttle on a client that is held back.
func TestMemoryCap(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	const maxBuckets = 64 * 16
	m := newMemory(clk.now, maxBuckets)
	ctx := context.Background()
	l := Limit{Rate: 1.0 / 3600, Burst: 1}
	if res, _ := m.Allow(ctx, "held", l); !res.Allowed {
		t.Fatal("first request refused")
	}
	for i := range 20 * maxBuckets {
		if res, _ := m.Allow(ctx, "flood-"+strconv.Itoa(i), l); !res.Allowed {
			t.Fatalf("new key %d refused: a full store must not lock new clients out", i)
		}
		if res, _ := m.Allow(ctx, "held", l); res.Allowed {
			t.Fatalf("after %d flood keys the held-back client was admitted: its bucket was evicted", i+1)
		}
		clk.add(time.Millisecond)
	}
	if n := m.size(); n > maxBuckets {
		t.Fatalf("%d buckets kept, want at most the cap of %d", n, maxBuckets)
	}
	if m.evictedLive() == 0 {
		t.Fatal("no live bucket was evicted: the flood did not reach the cap")
	}
}

func TestMemoryConcurrentAdmitsBurst(t *testing.T) {
	m := NewMemory()
	l := Limit{Rate: 0.001, Burst: 50}
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if res, _ := m.Allow(context.Background(), "k", l); res.Allowed {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if ok.Load() != 50 {
		t.Fatalf("%d admitted, want exactly the burst of 50", ok.Load())
	}
}

func TestPeriodWindows(t *testing.T) {
	at := time.Date(2025, 3, 13, 15, 4, 5, 0, time.FixedZone("x", 5*3600)) // Thursday 10:04 UTC
	for _, tc := range []struct {
		p          Period
		start, end string
	}{
		{Day, "2025-03-13", "2025-03-14"},
		{Week, "2025-03-10", "2025-03-17"}, // Monday to Monday
		{Month, "2025-03-01", "2025-04-01"},
	} {
		s, e, err := tc.p.window(at)
		if err != nil || s.Format(time.DateOnly) != tc.start || e.Format(time.DateOnly) != tc.end {
			t.Errorf("%s: %s..%s %v, want %s..%s", tc.p, s, e, err, tc.start, tc.end)
		}
	}
	if _, _, err := Period("year").window(at); err == nil {
		t.Error("unknown period accepted")
	}
}

func TestFileQuotaSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q", "quota.json")
	clk := &fakeClock{t: time.Date(2025, 3, 13, 23, 0, 0, 0, time.UTC)}
	open := func() *FileQuota {
		q, err := newFileQuota(path, nil, clk.now)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	ctx := context.Background()
	q := open()
	for i := range 2 {
		if res, _ := q.Consume(ctx, "plan|acme", 3, Day); !res.Allowed || res.Used != int64(i+1) {
			t.Fatalf("request %d: %+v", i, res)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = open()
	defer q.Close()
	if res, _ := q.Consume(ctx, "plan|acme", 3, Day); !res.Allowed || res.Used != 3 {
		t.Fatalf("after restart: %+v, want the 3rd of 3", res)
	}
	res, _ := q.Consume(ctx, "plan|acme", 3, Day)
	if res.Allowed || res.Used != 3 || !res.Reset.Equal(time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("over quota: %+v, want refused until midnight UTC", res)
	}
	clk.add(time.Hour) // next day: a new period
	if res, _ := q.Consume(ctx, "plan|acme", 3, Day); !res.Allowed || res.Used != 1 {
		t.Fatalf("next day: %+v, want a fresh quota", res)
	}
}
