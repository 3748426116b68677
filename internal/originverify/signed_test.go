package originverify

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"weak"
)

func twoKeyring(t testing.TB) *Keyring {
	t.Helper()
	k, err := Parse("ov", keyringJSON(t,
		Key{ID: "cur", Secret: "current-secret-0000000", State: StateCurrent},
		Key{ID: "old", Secret: "previous-secret-000000", State: StatePrevious},
		Key{ID: "gone", Secret: "retired-secret-0000000", State: StateRetired},
	))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// clock is a settable clock for verifiers.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestSignedVerify(t *testing.T) {
	k := twoKeyring(t)
	other, err := Parse("other", keyringJSON(t, Key{ID: "cur", Secret: "another-secret-0000000", State: StateCurrent}))
	if err != nil {
		t.Fatal(err)
	}
	retired, err := Parse("r", keyringJSON(t, Key{ID: "gone", Secret: "retired-secret-0000000", State: StateCurrent}))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_700_000_000, 0)
	sign := func(k *Keyring, method, host, uri string, at time.Time) string { return k.Sign(method, host, uri, at) }

	tests := []struct {
		name              string
		token             string
		method, host, uri string
		want              error
		wantKey           string
	}{
		{"valid", sign(k, "GET", "lb:8081", "/items?limit=5", t0), "GET", "lb:8081", "/items?limit=5", nil, "cur"},
		{"host case is ignored", sign(k, "GET", "LB:8081", "/items", t0), "GET", "lb:8081", "/items", nil, "cur"},
		{"within skew, late", sign(k, "GET", "h", "/", t0.Add(-30*time.Second)), "GET", "h", "/", nil, "cur"},
		{"within skew, early", sign(k, "GET", "h", "/", t0.Add(30*time.Second)), "GET", "h", "/", nil, "cur"},
		{"expired", sign(k, "GET", "h", "/", t0.Add(-31*time.Second)), "GET", "h", "/", ErrSkew, ""},
		{"from the future", sign(k, "GET", "h", "/", t0.Add(31*time.Second)), "GET", "h", "/", ErrSkew, ""},
		{"another path", sign(k, "GET", "h", "/items", t0), "GET", "h", "/admin", ErrBadMAC, ""},
		{"another query", sign(k, "GET", "h", "/items?a=1", t0), "GET", "h", "/items?a=2", ErrBadMAC, ""},
		{"query moved into path", sign(k, "GET", "h", "/items?a", t0), "GET", "h", "/items%3Fa", ErrBadMAC, ""},
		{"another method", sign(k, "GET", "h", "/items", t0), "DELETE", "h", "/items", ErrBadMAC, ""},
		{"another host", sign(k, "GET", "a", "/items", t0), "GET", "b", "/items", ErrBadMAC, ""},
		{"wrong key, same id", sign(other, "GET", "h", "/", t0), "GET", "h", "/", ErrBadMAC, ""},
		{"retired key", sign(retired, "GET", "h", "/", t0), "GET", "h", "/", ErrUnknownKey, ""},
		{"static secret", "current-secret-0000000", "GET", "h", "/", ErrMalformed, ""},
		{"empty", "", "GET", "h", "/", ErrMalformed, ""},
		{"v2", "v2" + strings.TrimPrefix(sign(k, "GET", "h", "/", t0), "v1"), "GET", "h", "/", ErrMalformed, ""},
		{"extra field", sign(k, "GET", "h", "/", t0) + ".x", "GET", "h", "/", ErrMalformed, ""},
		{"short nonce", "v1.cur.1700000000.abc.0123456789012345678901234567890123456789012", "GET", "h", "/", ErrMalformed, ""},
		{"leading zero time", "v1.cur.01700000000.abcdefghijklmnopqrstuv.0123456789012345678901234567890123456789012", "GET", "h", "/", ErrMalformed, ""},
		{"signed time", "v1.cur.+1700000000.abcdefghijklmnopqrstuv.0123456789012345678901234567890123456789012", "GET", "h", "/", ErrMalformed, ""},
		{"bad mac chars", "v1.cur.1700000000.abcdefghijklmnopqrstuv.01234567890123456789012345678901234567890+=", "GET", "h", "/", ErrMalformed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := k.SignedVerifier(0)
			v.SetClock((&clock{t0}).now)
			id, err := v.Verify(tt.method, tt.host, tt.uri, tt.token)
			if !errors.Is(err, tt.want) || id != tt.wantKey {
				t.Fatalf("Verify = %q, %v; want %q, %v", id, err, tt.wantKey, tt.want)
			}
		})
	}
}

func TestSignedReplay(t *testing.T) {
	k := twoKeyring(t)
	c := &clock{time.Unix(1_700_000_000, 0)}
	v := k.SignedVerifier(10 * time.Second)
	v.SetClock(c.now)
	tok := k.Sign("POST", "h", "/items", c.t)
	if _, err := v.Verify("POST", "h", "/items", tok); err != nil {
		t.Fatalf("first use: %v", err)
	}
	// Replayed at once, later within the window, and by a second verifier of the same keyring
	// (another listener of the process): all refused.
	for _, d := range []time.Duration{0, 5 * time.Second, 10 * time.Second} {
		c.t = time.Unix(1_700_000_000, 0).Add(d)
		if _, err := v.Verify("POST", "h", "/items", tok); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay after %s: %v, want ErrReplay", d, err)
		}
	}
	v2 := k.SignedVerifier(10 * time.Second)
	v2.SetClock(c.now)
	if _, err := v2.Verify("POST", "h", "/items", tok); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay on another verifier: %v", err)
	}
	// Past the window the token is refused for its time, and its nonce may be forgotten.
	c.t = c.t.Add(11 * time.Second)
	if _, err := v.Verify("POST", "h", "/items", tok); !errors.Is(err, ErrSkew) {
		t.Fatalf("after the window: %v, want ErrSkew", err)
	}
	if got := k.MatchCount("cur"); got != 1 {
		t.Fatalf("matches of cur = %d, want 1", got)
	}
}

func TestSignedSameRequestTwice(t *testing.T) {
	k := twoKeyring(t)
	v := k.SignedVerifier(0)
	r := httptest.NewRequest("GET", "http://lb/items?x=1", nil)
	tok := k.Sign("GET", "lb", "/items?x=1", time.Now())
	for i := range 2 {
		if _, err := v.VerifyRequest(r, tok); err != nil {
			t.Fatalf("check %d of the same request: %v", i+1, err)
		}
	}
	r2 := httptest.NewRequest("GET", "http://lb/items?x=1", nil)
	if _, err := v.VerifyRequest(r2, tok); !errors.Is(err, ErrReplay) {
		t.Fatalf("another request with the token: %v, want ErrReplay", err)
	}
}

func TestReplayCacheBoundsAndExpiry(t *testing.T) {
	c := NewReplayCache(time.Second, replayShards) // one nonce per shard
	now := time.Unix(100, 0)
	var stored []string
	full := false
	for i := 0; i < 10*replayShards && !full; i++ {
		n := strings.Repeat("n", 16) + string(rune('A'+i%26)) + string(rune('A'+i/26))
		err := c.Check(n, now, zeroOwner())
		switch {
		case err == nil:
			stored = append(stored, n)
		case errors.Is(err, ErrReplayCacheFull):
			full = true
		default:
			t.Fatal(err)
		}
	}
	if !full || c.Len() != len(stored) || len(stored) > replayShards {
		t.Fatalf("cache took %d nonces (len %d), full=%v; want at most %d, then refusals", len(stored), c.Len(), full, replayShards)
	}
	// Two periods later every generation has aged out: the same nonces are accepted again.
	for _, n := range stored {
		if err := c.Check(n, now.Add(2*time.Second), zeroOwner()); err != nil {
			t.Fatalf("after two periods: %v", err)
		}
	}
	// A nonce survives at least one full period, whatever its place within its generation.
	c2 := NewReplayCache(time.Second, 1000)
	start := time.Unix(100, 999_000_000) // just before a generation boundary
	if err := c2.Check("nonce-aaaaaaaaaaaaaaa", start, zeroOwner()); err != nil {
		t.Fatal(err)
	}
	if err := c2.Check("nonce-aaaaaaaaaaaaaaa", start.Add(999*time.Millisecond), zeroOwner()); !errors.Is(err, ErrReplay) {
		t.Fatalf("within one period: %v, want ErrReplay", err)
	}
}

func FuzzParseToken(f *testing.F) {
	k := twoKeyring(f)
	f.Add(k.Sign("GET", "h", "/", time.Unix(1_700_000_000, 0)))
	f.Add("v1.a.0.abcdefghijklmnop.0123456789012345678901234567890123456789012")
	f.Add("v1....")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			if tok != (Token{}) {
				t.Fatalf("error with a non-zero token")
			}
			return
		}
		// A parsed token re-assembles to its input, so nothing in it was skipped or guessed.
		if got := tok.signed + "." + tok.MAC; got != s {
			t.Fatalf("re-assembled %q from %q", got, s)
		}
		if !validKeyID(tok.KeyID) || tok.Time < 0 || len(tok.MAC) != macLen {
			t.Fatalf("accepted bad fields: %+v", tok)
		}
		// No parsed input verifies unless it is a real signature.
		v := k.SignedVerifier(time.Duration(1 << 62))
		if _, err := v.Verify("GET", "h", "/", s); err == nil && !strings.HasPrefix(s, "v1.cur.") {
			t.Fatalf("verified %q", s)
		}
	})
}

func BenchmarkVerifyStatic(b *testing.B) {
	k := twoKeyring(b)
	secret := k.Current().Secret
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := k.Verify(secret); !ok {
			b.Fatal("refused")
		}
	}
}

func BenchmarkVerifySigned(b *testing.B) {
	k := twoKeyring(b)
	v := k.SignedVerifier(0)
	now := time.Now()
	// Tokens are made before timing: the benchmark measures the verifier, including the replay
	// cache insert that each fresh token costs.
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

func BenchmarkSign(b *testing.B) {
	k := twoKeyring(b)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_ = k.Sign("GET", "127.0.0.1:8081", "/items?limit=10", now)
	}
}

func zeroOwner() weak.Pointer[http.Request] { return weak.Pointer[http.Request]{} }

// TestSignedWireFormatExample is the worked example of docs/origin-verify.md: an injector written
// from the document alone produces a token this verifier accepts.
func TestSignedWireFormatExample(t *testing.T) {
	k, err := Parse("ov", keyringJSON(t, Key{ID: "k1", Secret: "current-secret-0000000", State: StateCurrent}))
	if err != nil {
		t.Fatal(err)
	}
	v := k.SignedVerifier(0)
	v.SetClock(func() time.Time { return time.Unix(1_700_000_000, 0) })
	const tok = "v1.k1.1700000000.abcdefghijklmnopqrstuv.B-DU5nVx8MTyVHNVMeD1kXTJK2n-73mXiABm-iutXIU"
	if id, err := v.Verify("GET", "LB:8081", "/items?limit=5", tok); err != nil || id != "k1" {
		t.Fatalf("documented example: %q, %v", id, err)
	}
}
