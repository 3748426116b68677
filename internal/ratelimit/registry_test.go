package ratelimit

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/rampart-edge/rampart/internal/ratelimit/redistest"
)

// TestRegistryShares checks which acquisitions share a store: the same gateway's limiter, the
// same quota file (by absolute path, whoever asks), the same gateway's file-less counters.
func TestRegistryShares(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	reg := NewRegistry()
	defer reg.Close()
	acquire := func(kind, a, b string) (any, func() error) {
		t.Helper()
		var s any
		var release func() error
		var err error
		switch kind {
		case "memory":
			s, release, err = reg.Memory(a)
		case "quota":
			s, release, err = reg.FileQuota(a, b, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { release() })
		return s, release
	}
	for _, tc := range []struct {
		name         string
		kind         string
		a1, b1       string
		a2, b2       string
		wantSameOnes bool
	}{
		{"memory, same gateway", "memory", "gw", "", "gw", "", true},
		{"memory, other gateway", "memory", "gw", "", "other", "", false},
		{"quota, same file", "quota", filepath.Join(dir, "q.json"), "gw", filepath.Join(dir, "q.json"), "gw", true},
		{"quota, same file as relative path, other gateway", "quota", filepath.Join(dir, "q.json"), "gw", "q.json", "other", true},
		{"quota, other file", "quota", filepath.Join(dir, "q.json"), "gw", filepath.Join(dir, "r.json"), "gw", false},
		{"quota, no file, same gateway", "quota", "", "gw", "", "gw", true},
		{"quota, no file, other gateway", "quota", "", "gw", "", "other", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s1, _ := acquire(tc.kind, tc.a1, tc.b1)
			s2, _ := acquire(tc.kind, tc.a2, tc.b2)
			if (s1 == s2) != tc.wantSameOnes {
				t.Fatalf("same store = %v, want %v", s1 == s2, tc.wantSameOnes)
			}
		})
	}
}

// TestRegistryQuotaLifetime checks that counts carry over while a quota is shared, that the last
// release writes the file and that reopening reads it back, and that Close closes what is left.
func TestRegistryQuotaLifetime(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "quota.json")
	reg := NewRegistry()
	consume := func(q *FileQuota) int64 {
		t.Helper()
		res, err := q.Consume(ctx, "k", 10, Day)
		if err != nil || !res.Allowed {
			t.Fatalf("Consume = %+v, %v", res, err)
		}
		return res.Used
	}

	old, releaseOld, err := reg.FileQuota(path, "gw", nil)
	if err != nil {
		t.Fatal(err)
	}
	consume(old)
	cur, releaseCur, err := reg.FileQuota(path, "gw", nil) // a reload: the old one still drains
	if err != nil {
		t.Fatal(err)
	}
	consume(old) // a request finishing on the old generation
	if n := consume(cur); n != 3 {
		t.Fatalf("used %d after the reload, want 3", n)
	}
	if err := releaseOld(); err != nil {
		t.Fatal(err)
	}
	if err := releaseOld(); err != nil { // twice: once only
		t.Fatal(err)
	}
	if n := consume(cur); n != 4 {
		t.Fatalf("used %d after the old generation retired, want 4", n)
	}
	if err := releaseCur(); err != nil { // the last user: closed, written
		t.Fatal(err)
	}

	again, releaseAgain, err := reg.FileQuota(path, "gw", nil)
	if err != nil {
		t.Fatal(err)
	}
	if again == cur {
		t.Fatal("a closed quota was handed out again")
	}
	if n := consume(again); n != 5 {
		t.Fatalf("used %d after reopening the file, want 5", n)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := releaseAgain(); err != nil { // after Close: nothing to do
		t.Fatal(err)
	}
	if _, _, err := reg.Memory("gw"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Memory after Close: %v, want ErrClosed", err)
	}
	q, err := NewFileQuota(path, nil) // what Close wrote
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if n := consume(q); n != 6 {
		t.Fatalf("used %d after Close, want 6", n)
	}
}

// TestRegistryRedisClient checks that the users of one Redis URL share one client, which the
// last release closes.
func TestRegistryRedisClient(t *testing.T) {
	srv := redistest.Start(t)
	reg := NewRegistry()
	defer reg.Close()
	a, releaseA, err := reg.Redis(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	b, releaseB, err := reg.Redis(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatal("two clients for one URL")
	}
	releaseA()
	if err := b.Ping(context.Background()); err != nil {
		t.Fatalf("Ping after the first release: %v", err)
	}
	releaseB()
	if err := b.Ping(context.Background()); err == nil {
		t.Fatal("Ping after the last release succeeded: the client is not closed")
	}
}
