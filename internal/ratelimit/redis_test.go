package ratelimit

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/ratelimit/redistest"
	"github.com/redis/go-redis/v9"
)

func newRedis(t *testing.T, url string) *Redis {
	t.Helper()
	r, err := NewRedis(url, "test:", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRedisBucket(t *testing.T) {
	srv := redistest.Start(t)
	r := newRedis(t, srv.URL())
	ctx := context.Background()
	l := Limit{Rate: 0.5, Burst: 3} // a token every 2s: nothing comes back during the test
	for i := range 3 {
		res, err := r.Allow(ctx, "k", l)
		if err != nil || !res.Allowed || res.Remaining != 2-i || res.Limit != 3 {
			t.Fatalf("request %d: %+v %v, want allowed with %d remaining", i, res, err, 2-i)
		}
	}
	res, err := r.Allow(ctx, "k", l)
	if err != nil || res.Allowed || res.Remaining != 0 {
		t.Fatalf("4th request: %+v %v, want refused", res, err)
	}
	if res.RetryAfter <= 0 || res.RetryAfter > 2*time.Second || res.Reset <= 4*time.Second || res.Reset > 6*time.Second {
		t.Fatalf("4th request: retry after %s, reset %s; want ≤2s and ≈6s", res.RetryAfter, res.Reset)
	}
	// The key lives only until the bucket is full again.
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer raw.Close()
	ttl, err := raw.PTTL(ctx, "test:b:k").Result()
	if err != nil || ttl <= 4*time.Second || ttl > 6*time.Second {
		t.Fatalf("bucket TTL %s %v, want ≈6s", ttl, err)
	}
	// A long, client-chosen key is stored hashed.
	long := strings.Repeat("x", 1000)
	if res, err := r.Allow(ctx, long, l); err != nil || !res.Allowed {
		t.Fatalf("long key: %+v %v", res, err)
	}
	keys, _ := raw.Keys(ctx, "test:b:*").Result()
	for _, k := range keys {
		if len(k) > 120 {
			t.Fatalf("key of %d bytes stored", len(k))
		}
	}
}

func TestRedisRefills(t *testing.T) {
	srv := redistest.Start(t)
	r := newRedis(t, srv.URL())
	l := Limit{Rate: 20, Burst: 1} // a token every 50ms
	ctx := context.Background()
	if res, _ := r.Allow(ctx, "k", l); !res.Allowed {
		t.Fatal("first request refused")
	}
	res, _ := r.Allow(ctx, "k", l)
	if res.Allowed {
		t.Fatal("second request admitted at once")
	}
	time.Sleep(res.RetryAfter + 5*time.Millisecond) // the bucket's own promise
	if res, err := r.Allow(ctx, "k", l); err != nil || !res.Allowed {
		t.Fatalf("after RetryAfter: %+v %v, want admitted", res, err)
	}
}

// Two clients (two gateway replicas) share one bucket: together they admit the burst, not twice.
func TestRedisSharedAcrossClients(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newRedis(t, srv.URL()), newRedis(t, srv.URL())
	l := Limit{Rate: 0.001, Burst: 40}
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		r := a
		if i%2 == 1 {
			r = b
		}
		wg.Go(func() {
			for range 20 {
				res, err := r.Allow(context.Background(), "shared", l)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Allowed {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if ok.Load() != 40 {
		t.Fatalf("%d admitted by two clients, want exactly 40", ok.Load())
	}
}

func TestRedisQuota(t *testing.T) {
	srv := redistest.Start(t)
	r := newRedis(t, srv.URL())
	ctx := context.Background()
	for i := range 2 {
		if res, err := r.Consume(ctx, "plan|acme", 2, Month); err != nil || !res.Allowed || res.Used != int64(i+1) {
			t.Fatalf("request %d: %+v %v", i, res, err)
		}
	}
	res, err := r.Consume(ctx, "plan|acme", 2, Month)
	if err != nil || res.Allowed || res.Used != 2 {
		t.Fatalf("over quota: %+v %v, want refused and not counted", res, err)
	}
	_, end, _ := Month.window(time.Now())
	if !res.Reset.Equal(end) {
		t.Fatalf("reset %s, want %s", res.Reset, end)
	}
	// A new client (a restarted gateway) sees the same count.
	r2 := newRedis(t, srv.URL())
	if res, _ := r2.Consume(ctx, "plan|acme", 2, Month); res.Allowed {
		t.Fatal("quota reset by a new client")
	}
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer raw.Close()
	keys, _ := raw.Keys(ctx, "test:q:*").Result()
	if len(keys) != 1 {
		t.Fatalf("quota keys %v", keys)
	}
	if ttl, _ := raw.TTL(ctx, keys[0]).Result(); ttl <= 0 || ttl > 33*24*time.Hour {
		t.Fatalf("quota key TTL %s, want until the end of the month (+1 day)", ttl)
	}
}

// A stopped Redis is an error within the timeout (the caller's on_store_error decides), and the
// store recovers by itself when Redis is back.
func TestRedisDownAndBack(t *testing.T) {
	srv := redistest.Start(t)
	r := newRedis(t, srv.URL())
	ctx := context.Background()
	l := Limit{Rate: 100, Burst: 100}
	if _, err := r.Allow(ctx, "k", l); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	start := time.Now()
	if _, err := r.Allow(ctx, "k", l); err == nil {
		t.Fatal("no error with Redis stopped")
	}
	if _, err := r.Consume(ctx, "k", 1, Day); err == nil {
		t.Fatal("quota: no error with Redis stopped")
	}
	if d := time.Since(start); d > 10*DefaultRedisTimeout {
		t.Errorf("errors took %s, want about the timeout", d)
	}
	srv.Restart()
	if res, err := r.Allow(ctx, "k", l); err != nil || !res.Allowed {
		t.Fatalf("after restart: %+v %v", res, err)
	}
}

func TestNewRedisHidesURL(t *testing.T) {
	for _, u := range []string{"http://user:s3cret@host", "redis://:s3cret@host:notaport", "s3cret"} {
		_, err := NewRedis(u, "", 0)
		if err == nil {
			t.Errorf("%q accepted", u)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error %q shows the password", err)
		}
	}
}
