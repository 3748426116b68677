package originverify

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"weak"
)

// Signed mode. Instead of the key, the injector sends a token bound to one request and one moment:
//
//	v1.<key id>.<unix time>.<nonce>.<mac>
//
// where mac is the unpadded base64url HMAC-SHA256, keyed with the key's secret (its bytes as
// written in the keyring file), of the string to sign:
//
//	v1.<key id>.<unix time>.<nonce> "\n" METHOD "\n" host "\n" path "\n" query
//
// host is the Host header the verifier receives, ASCII-lowercased; path and query are the
// request-target exactly as sent on the wire, split at the first "?" (query without the "?").
// docs/origin-verify.md is the reference for other injectors.

// TokenPrefix starts every signed token of this format version.
const TokenPrefix = "v1."

// DefaultMaxSkew is how far a token's time may be from the verifier's clock, either way.
const DefaultMaxSkew = 30 * time.Second

const (
	nonceBytes   = 16 // random bytes in a nonce this package makes
	minNonceLen  = 16 // characters of a nonce the verifier accepts
	maxNonceLen  = 64
	macLen       = 43 // base64url characters of a SHA-256 MAC without padding
	maxTimeLen   = 19 // digits of a unix time; more would overflow int64
	maxTokenSize = len(TokenPrefix) + 64 + 1 + maxTimeLen + 1 + maxNonceLen + 1 + macLen
)

// Reasons a signed token is refused. Callers may log them: none carries token content.
var (
	ErrMalformed       = errors.New("malformed token")
	ErrUnknownKey      = errors.New("token names no active key")
	ErrBadMAC          = errors.New("token MAC does not match the request")
	ErrSkew            = errors.New("token time is outside the allowed clock skew")
	ErrReplay          = errors.New("token nonce was already used")
	ErrReplayCacheFull = errors.New("replay cache is full")
)

// Token is a parsed signed token.
type Token struct {
	KeyID string
	Time  int64 // unix seconds
	Nonce string
	MAC   string // base64url, unverified
	// signed is the token without "." and the MAC: the first line of the string to sign.
	signed string
}

// ParseToken splits a token into its fields and checks their syntax. It does not check the MAC.
func ParseToken(s string) (Token, error) {
	if len(s) > maxTokenSize || !strings.HasPrefix(s, TokenPrefix) {
		return Token{}, ErrMalformed
	}
	rest := s[len(TokenPrefix):]
	var fields [4]string
	for i := range 3 {
		j := strings.IndexByte(rest, '.')
		if j < 0 {
			return Token{}, ErrMalformed
		}
		fields[i], rest = rest[:j], rest[j+1:]
	}
	fields[3] = rest
	kid, ts, nonce, mac := fields[0], fields[1], fields[2], fields[3]
	if !validKeyID(kid) || len(nonce) < minNonceLen || len(nonce) > maxNonceLen || len(mac) != macLen {
		return Token{}, ErrMalformed
	}
	for i := 0; i < len(nonce); i++ {
		if !tokenChar(nonce[i]) {
			return Token{}, ErrMalformed
		}
	}
	for i := 0; i < len(mac); i++ {
		if !tokenChar(mac[i]) {
			return Token{}, ErrMalformed
		}
	}
	t, ok := parseUnix(ts)
	if !ok {
		return Token{}, ErrMalformed
	}
	return Token{KeyID: kid, Time: t, Nonce: nonce, MAC: mac, signed: s[:len(s)-macLen-1]}, nil
}

// parseUnix reads a non-negative decimal without sign or leading zeros.
func parseUnix(s string) (int64, bool) {
	if s == "" || len(s) > maxTimeLen || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, n >= 0
}

// tokenChar reports whether c is in the base64url alphabet, which key ids, nonces and MACs use.
func tokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// macState is a keyed HMAC and its scratch space, pooled per key so that signing and verifying
// do not allocate.
type macState struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
	enc [macLen]byte
}

func newMACPool(secret []byte) *sync.Pool {
	return &sync.Pool{New: func() any {
		return &macState{h: hmac.New(sha256.New, secret), buf: make([]byte, 0, 256)}
	}}
}

// compute returns the base64url MAC of the string to sign; the result is valid until the state
// is reused.
func (st *macState) compute(signed, method, host, requestURI string) []byte {
	path, query, _ := strings.Cut(requestURI, "?")
	b := st.buf[:0]
	b = append(b, signed...)
	b = append(b, '\n')
	b = append(b, method...)
	b = append(b, '\n')
	for i := 0; i < len(host); i++ {
		c := host[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	b = append(b, '\n')
	b = append(b, path...)
	b = append(b, '\n')
	b = append(b, query...)
	st.buf = b[:0]
	st.h.Reset()
	st.h.Write(b)
	st.h.Sum(st.sum[:0])
	base64.RawURLEncoding.Encode(st.enc[:], st.sum[:])
	return st.enc[:]
}

// Sign returns a token for one request with the current key: method, the Host it is sent to, and
// its request-target (path and query as written on the wire, such as "/items?limit=5").
func (k *Keyring) Sign(method, host, requestURI string, now time.Time) string {
	s := k.snap.Load()
	ak := &s.active[0] // the current key comes first
	var raw [nonceBytes]byte
	_, _ = rand.Read(raw[:]) // never fails (crypto/rand panics instead)
	var nonce [22]byte
	base64.RawURLEncoding.Encode(nonce[:], raw[:])

	b := make([]byte, 0, len(TokenPrefix)+len(ak.id)+1+maxTimeLen+1+len(nonce)+1+macLen)
	b = append(b, TokenPrefix...)
	b = append(b, ak.id...)
	b = append(b, '.')
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, '.')
	b = append(b, nonce[:]...)
	st := ak.mac.Get().(*macState)
	mac := st.compute(string(b), method, host, requestURI)
	b = append(b, '.')
	b = append(b, mac...)
	ak.mac.Put(st)
	return string(b)
}

// SignedVerifier checks signed tokens against a keyring: syntax, key, clock skew, MAC (in
// constant time) and replay, in that order, so that only a token with a valid MAC can take a
// place in the replay cache.
type SignedVerifier struct {
	k       *Keyring
	maxSkew int64 // seconds
	cache   *ReplayCache
	now     func() time.Time
	shared  *sharedReplay // replaystore.go; nil: the in-memory cache alone
}

// SignedVerifier returns a verifier that accepts tokens whose time is within maxSkew of the
// clock (DefaultMaxSkew when zero). Verifiers of one keyring with the same skew share one replay
// cache, so a token accepted by one listener is refused by every other of the process.
func (k *Keyring) SignedVerifier(maxSkew time.Duration) *SignedVerifier {
	if maxSkew <= 0 {
		maxSkew = DefaultMaxSkew
	}
	secs := int64((maxSkew + time.Second - 1) / time.Second)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.replay == nil {
		k.replay = map[int64]*ReplayCache{}
	}
	c := k.replay[secs]
	if c == nil {
		// A token is valid for 2*skew at most (from time-skew to time+skew), so its nonce must be
		// remembered that long.
		c = NewReplayCache(2*time.Duration(secs)*time.Second, DefaultReplayCacheSize)
		k.replay[secs] = c
	}
	return &SignedVerifier{k: k, maxSkew: secs, cache: c, now: time.Now}
}

// SetClock replaces the verifier's clock, for tests.
func (v *SignedVerifier) SetClock(now func() time.Time) { v.now = now }

// Verify checks token for a request given by its method, Host and request-target. A token passes
// once: its nonce is then remembered until the token has expired.
func (v *SignedVerifier) Verify(method, host, requestURI, token string) (keyID string, err error) {
	return v.verify(context.Background(), method, host, requestURI, token, weak.Pointer[http.Request]{})
}

// VerifyRequest checks token for r. Checking the same token for the same *http.Request again
// (two WAF rules reading one header) passes again; any other request is a replay.
func (v *SignedVerifier) VerifyRequest(r *http.Request, token string) (keyID string, err error) {
	return v.verify(r.Context(), r.Method, r.Host, RequestTarget(r), token, weak.Make(r))
}

// RequestTarget is the path and query of r as its client wrote them: what a signed token covers.
func RequestTarget(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		return r.RequestURI
	}
	// An absolute-form target ("GET http://host/path") or a request built in-process.
	return r.URL.RequestURI()
}

func (v *SignedVerifier) verify(ctx context.Context, method, host, requestURI, token string, owner weak.Pointer[http.Request]) (string, error) {
	t, err := ParseToken(token)
	if err != nil {
		return "", err
	}
	s := v.k.snap.Load()
	i, ok := s.byID[t.KeyID]
	if !ok {
		return "", ErrUnknownKey
	}
	now := v.now().Unix()
	if d := now - t.Time; d > v.maxSkew || d < -v.maxSkew {
		return "", ErrSkew
	}
	ak := &s.active[i]
	st := ak.mac.Get().(*macState)
	want := st.compute(t.signed, method, host, requestURI)
	ok = equalConstantTime(t.MAC, want)
	ak.mac.Put(st)
	if !ok {
		return "", ErrBadMAC
	}
	repeat, err := v.cache.check(t.Nonce, v.now(), owner)
	if err != nil {
		return "", err
	}
	if v.shared != nil && !repeat {
		if err := v.shared.record(ctx, v.k.name, t.Nonce, v.cache.sharedTTL()); err != nil {
			return "", err
		}
	}
	ak.matches.Add(1)
	return ak.id, nil
}
