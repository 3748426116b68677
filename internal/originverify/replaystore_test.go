package originverify

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/ratelimit/redistest"
)

// fakeStore is a ReplayStore in a map that can be made to fail.
type fakeStore struct {
	keys  map[string]bool
	calls int
	err   error
}

func (f *fakeStore) Record(_ context.Context, key string, _ time.Duration) (bool, error) {
	f.calls++
	if f.err != nil {
		return false, f.err
	}
	if f.keys[key] {
		return false, nil
	}
	f.keys[key] = true
	return true, nil
}

// TestSharedReplayPolicy checks the order and the policies of a verifier with a shared store: a
// nonce the store already has is a replay even for a process that never saw it, and a failing
// store refuses (deny) or accepts (allow) a fresh token.
func TestSharedReplayPolicy(t *testing.T) {
	k := twoKeyring(t)
	store := &fakeStore{keys: map[string]bool{}}
	var reported []error
	a := k.SignedVerifier(0).WithReplayStore(store, false, func(err error) { reported = append(reported, err) })
	tok := k.Sign("GET", "lb", "/items", time.Now())
	if _, err := a.Verify("GET", "lb", "/items", tok); err != nil {
		t.Fatal(err)
	}
	// Another process (another keyring instance, its own memory cache) sharing the store.
	other := twoKeyring(t)
	b := other.SignedVerifier(0).WithReplayStore(store, false, nil)
	if _, err := b.Verify("GET", "lb", "/items", tok); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay to another process: %v, want ErrReplay", err)
	}
	// A bad MAC never reaches the store.
	calls := store.calls
	if _, err := b.Verify("GET", "lb", "/other", k.Sign("GET", "lb", "/items", time.Now())); !errors.Is(err, ErrBadMAC) || store.calls != calls {
		t.Fatalf("bad MAC: %v, store calls %d → %d", err, calls, store.calls)
	}

	store.err = errors.New("connection refused")
	if _, err := a.Verify("GET", "lb", "/items", k.Sign("GET", "lb", "/items", time.Now())); !errors.Is(err, ErrReplayStore) {
		t.Fatalf("deny with the store down: %v, want ErrReplayStore", err)
	}
	if len(reported) != 1 {
		t.Fatalf("store errors reported: %d, want 1", len(reported))
	}
	open := other.SignedVerifier(0).WithReplayStore(store, true, nil)
	tok2 := other.Sign("GET", "lb", "/items", time.Now())
	if _, err := open.Verify("GET", "lb", "/items", tok2); err != nil {
		t.Fatalf("allow with the store down: %v", err)
	}
	if _, err := open.Verify("GET", "lb", "/items", tok2); !errors.Is(err, ErrReplay) {
		t.Fatalf("allow with the store down, replay to the same process: %v, want ErrReplay", err)
	}
}

func TestRedisReplayStoreURLNotEchoed(t *testing.T) {
	_, err := NewRedisReplayStore("redis://:hunter2@[::1", 0)
	if err == nil {
		t.Fatal("accepted a malformed URL")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error echoes the password: %v", err)
	}
}

// BenchmarkVerifySignedRedis is BenchmarkVerifySigned with a real redis-server as the shared
// replay store: one SET NX round trip per token on loopback.
func BenchmarkVerifySignedRedis(b *testing.B) {
	srv := redistest.Start(b)
	store, err := NewRedisReplayStore(srv.URL(), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	k := twoKeyring(b)
	v := k.SignedVerifier(0).WithReplayStore(store, false, nil)
	now := time.Now()
	toks := make([]string, b.N)
	for i := range toks {
		toks[i] = k.Sign("GET", "127.0.0.1:8081", "/items?limit=10", now)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Verify("GET", "127.0.0.1:8081", "/items?limit=10", toks[i]); err != nil {
			b.Fatal(err)
		}
	}
}
