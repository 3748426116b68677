package gateway

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// signer is a test identity provider key.
type signer struct {
	kid string
	alg string
	key crypto.Signer
}

var (
	testRSAOnce sync.Once
	testRSAKey  *rsa.PrivateKey
)

func newSigner(t testing.TB, alg, kid string) *signer {
	t.Helper()
	s := &signer{kid: kid, alg: alg}
	var err error
	switch alg {
	case "RS256":
		testRSAOnce.Do(func() { testRSAKey, err = rsa.GenerateKey(rand.Reader, 2048) })
		s.key = testRSAKey
	case "ES256":
		s.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, s.key, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func b64u(b []byte) string { return b64.EncodeToString(b) }

// jwk is the public key as a JWKS entry.
func (s *signer) jwk() map[string]string {
	m := map[string]string{"kid": s.kid, "use": "sig"}
	switch k := s.key.Public().(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", b64u(k.N.Bytes()), b64u(big.NewInt(int64(k.E)).Bytes())
	case *ecdsa.PublicKey:
		b, _ := k.Bytes()
		m["kty"], m["crv"], m["x"], m["y"] = "EC", "P-256", b64u(b[1:33]), b64u(b[33:])
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b64u(k)
	}
	return m
}

func jwksJSON(signers ...*signer) []byte {
	var keys []map[string]string
	for _, s := range signers {
		keys = append(keys, s.jwk())
	}
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return b
}

// token signs claims with a header of alg and kid.
func (s *signer) token(t testing.TB, c map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(map[string]string{"alg": s.alg, "kid": s.kid, "typ": "JWT"})
	p, _ := json.Marshal(c)
	input := b64u(h) + "." + b64u(p)
	sum := sha256.Sum256([]byte(input))
	var sig []byte
	var err error
	switch k := s.key.(type) {
	case *rsa.PrivateKey:
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
	case *ecdsa.PrivateKey:
		var r, ss *big.Int
		r, ss, err = ecdsa.Sign(rand.Reader, k, sum[:])
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		ss.FillBytes(sig[32:])
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, []byte(input))
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64u(sig)
}

func goodClaims() map[string]any {
	now := time.Now().Unix()
	return map[string]any{"iss": "https://idp.test/", "aud": []string{"other", "https://api.test"}, "sub": "alice",
		"exp": now + 300, "iat": now, "nbf": now - 1, "scope": "items:read profile", "tenant": "acme"}
}

// jwksServer serves a JWKS that the test can replace, and counts fetches.
type jwksServer struct {
	mu      sync.Mutex
	doc     []byte
	fetches atomic.Int64
	block   chan struct{} // when set, requests wait on it
}

func (j *jwksServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	j.fetches.Add(1)
	j.mu.Lock()
	doc, block := j.doc, j.block
	j.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-r.Context().Done():
		}
		return
	}
	if doc == nil {
		http.Error(w, "down", 500)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(doc)
}

func (j *jwksServer) set(doc []byte) { j.mu.Lock(); j.doc = doc; j.mu.Unlock() }

const jwtYAML = `
gateways:
  - name: api
    listen: 127.0.0.1:0
    cors: {allow_origins: ["http://localhost:3000"], allow_headers: [Authorization]}
    request_headers:
      X-User: "${context.authorizer.claims.sub}"
      X-Tenant: "tenant=${context.authorizer.claims.tenant}"
    authorizers:
      - name: idp
        issuer: https://idp.test/
        audiences: [https://api.test]
        %SOURCE%
        jwks_fetch_timeout: 300ms
    routes:
      - {path: /items, methods: [GET], authorizer: idp, scopes: [items:read], integration: {url: "%BACKEND%"}}
      - {path: /admin, methods: [GET], authorizer: idp, scopes: [admin], integration: {url: "%BACKEND%"}}
      - {path: /public, methods: [GET], integration: {url: "%BACKEND%"}}
`

func TestJWTAuthorizer(t *testing.T) {
	rs, es, ed := newSigner(t, "RS256", "rsa1"), newSigner(t, "ES256", "ec1"), newSigner(t, "EdDSA", "ed1")
	js := &jwksServer{}
	js.set(jwksJSON(rs, es, ed))
	srv := httptest.NewServer(js)
	t.Cleanup(srv.Close)
	f := newAccessFixture(t, strings.Replace(jwtYAML, "%SOURCE%", "jwks_url: "+srv.URL, 1))
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

	for _, s := range []*signer{rs, es, ed} {
		r := f.do("GET", "/items", append(bearer(s.token(t, goodClaims())), "X-User", "mallory")...)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", s.alg, r.status, r.body)
		}
		got := f.backend.all()
		h := got[len(got)-1].Header
		if h.Get("X-User") != "alice" || h.Values("X-User")[0] != "alice" || len(h.Values("X-User")) != 1 || h.Get("X-Tenant") != "tenant=acme" {
			t.Fatalf("%s: backend headers %v, want the claims (and no client copy)", s.alg, h)
		}
	}

	mod := func(f func(map[string]any)) map[string]any { c := goodClaims(); f(c); return c }
	now := time.Now().Unix()
	hmacConfusion := func() string {
		// alg HS256 with the RSA public key's bytes as the HMAC secret: the classic confusion.
		h, _ := json.Marshal(map[string]string{"alg": "HS256", "kid": "rsa1"})
		p, _ := json.Marshal(goodClaims())
		in := b64u(h) + "." + b64u(p)
		m := hmac.New(sha256.New, []byte(rs.jwk()["n"]))
		m.Write([]byte(in))
		return in + "." + b64u(m.Sum(nil))
	}
	none := func() string {
		h, _ := json.Marshal(map[string]string{"alg": "none"})
		p, _ := json.Marshal(goodClaims())
		return b64u(h) + "." + b64u(p) + "."
	}
	tampered := func() string {
		tok := rs.token(t, goodClaims())
		parts := strings.Split(tok, ".")
		p, _ := json.Marshal(mod(func(c map[string]any) { c["sub"] = "admin" }))
		return parts[0] + "." + b64u(p) + "." + parts[2]
	}
	stranger := newSigner(t, "ES256", "ec1") // same kid, another key
	for _, tc := range []struct {
		name  string
		token string
	}{
		{"expired", rs.token(t, mod(func(c map[string]any) { c["exp"] = now - 60 }))},
		{"no exp", rs.token(t, mod(func(c map[string]any) { delete(c, "exp") }))},
		{"exp as string", rs.token(t, mod(func(c map[string]any) { c["exp"] = "9999999999" }))},
		{"not yet valid", es.token(t, mod(func(c map[string]any) { c["nbf"] = now + 120 }))},
		{"issued in the future", es.token(t, mod(func(c map[string]any) { c["iat"] = now + 120 }))},
		{"wrong issuer", ed.token(t, mod(func(c map[string]any) { c["iss"] = "https://evil.test/" }))},
		{"wrong audience", ed.token(t, mod(func(c map[string]any) { c["aud"] = "https://other.test" }))},
		{"no audience", ed.token(t, mod(func(c map[string]any) { delete(c, "aud") }))},
		{"alg none", none()},
		{"HS256 with the public key", hmacConfusion()},
		{"tampered payload", tampered()},
		{"unknown signer, known kid", stranger.token(t, goodClaims())},
		{"garbage", "a.b.c"},
		{"two parts", "abc.def"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do("GET", "/items", bearer(tc.token)...)
			wantJSON(t, r, 401, "Unauthorized")
			if wa := r.header.Get("WWW-Authenticate"); wa != `Bearer realm="idp", error="invalid_token"` {
				t.Fatalf("WWW-Authenticate %q", wa)
			}
		})
	}
	// Within the leeway (30s by default) an expired token still passes.
	if r := f.do("GET", "/items", bearer(rs.token(t, mod(func(c map[string]any) { c["exp"] = now - 5 })))...); r.status != 200 {
		t.Fatalf("expired within leeway: %d", r.status)
	}
	for _, h := range [][]string{nil, {"Authorization", "Basic YTpi"}, {"Authorization", "Bearer"}} {
		r := f.do("GET", "/items", h...)
		wantJSON(t, r, 401, "Unauthorized")
		if wa := r.header.Get("WWW-Authenticate"); wa != `Bearer realm="idp"` {
			t.Fatalf("%v: WWW-Authenticate %q", h, wa)
		}
	}
	r := f.do("GET", "/admin", bearer(rs.token(t, goodClaims()))...)
	wantJSON(t, r, 403, "Forbidden")
	if !strings.Contains(r.header.Get("WWW-Authenticate"), `error="insufficient_scope", scope="admin"`) {
		t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
	}
	if r := f.do("GET", "/admin", bearer(rs.token(t, mod(func(c map[string]any) { delete(c, "scope"); c["scp"] = []string{"admin"} })))...); r.status != 200 {
		t.Fatalf("scp array: %d", r.status)
	}
	if r := f.do("GET", "/public"); r.status != 200 {
		t.Fatalf("route without authorizer: %d", r.status)
	}
	// A preflight never runs the authorizer; CORS headers are on the 401 of an actual request.
	r = f.do("OPTIONS", "/items", "Origin", allowedOrigin, "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "authorization")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != allowedOrigin {
		t.Fatalf("preflight: %d %v", r.status, r.header)
	}
	r = f.do("GET", "/items", "Origin", allowedOrigin)
	if r.status != 401 || r.header.Get("Access-Control-Allow-Origin") != allowedOrigin {
		t.Fatalf("401 for an allowed origin: %d %v, want CORS headers", r.status, r.header)
	}
	if strings.Contains(f.logs.String(), rs.token(t, goodClaims())[:40]) {
		t.Fatal("a token reached the logs")
	}
}

// Keys are cached; an unknown kid makes one early fetch (a rotation at the provider).
func TestJWKSRotationAndCache(t *testing.T) {
	old, next := newSigner(t, "ES256", "old"), newSigner(t, "ES256", "new")
	js := &jwksServer{}
	js.set(jwksJSON(old))
	srv := httptest.NewServer(js)
	t.Cleanup(srv.Close)
	f := newAccessFixture(t, strings.Replace(jwtYAML, "%SOURCE%", "jwks_url: "+srv.URL, 1))
	for range 5 {
		if r := f.do("GET", "/items", "Authorization", "Bearer "+old.token(t, goodClaims())); r.status != 200 {
			t.Fatalf("old key: %d", r.status)
		}
	}
	if n := js.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for 5 requests, want 1 (cached)", n)
	}
	js.set(jwksJSON(old, next))
	if r := f.do("GET", "/items", "Authorization", "Bearer "+next.token(t, goodClaims())); r.status != 200 {
		t.Fatalf("rotated-in key: %d", r.status)
	}
	// A made-up kid right after cannot make the gateway fetch again.
	ghost := newSigner(t, "ES256", "ghost")
	for range 3 {
		if r := f.do("GET", "/items", "Authorization", "Bearer "+ghost.token(t, goodClaims())); r.status != 401 {
			t.Fatalf("unknown kid: %d", r.status)
		}
	}
	if n := js.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
}

// A JWKS that cannot be had is a 503 (the gateway's problem, not the token's), within the fetch
// timeout.
func TestJWKSUnavailable(t *testing.T) {
	js := &jwksServer{block: make(chan struct{})}
	srv := httptest.NewServer(js)
	t.Cleanup(func() { close(js.block); srv.Close() })
	f := newAccessFixture(t, strings.Replace(jwtYAML, "%SOURCE%", "jwks_url: "+srv.URL, 1))
	start := time.Now()
	wantJSON(t, f.do("GET", "/items", "Authorization", "Bearer "+newSigner(t, "EdDSA", "k").token(t, goodClaims())), 503, "Service Unavailable")
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %s with a 300ms fetch timeout", d)
	}
}

func TestJWKSFile(t *testing.T) {
	s := newSigner(t, "EdDSA", "")
	dir := t.TempDir()
	path := filepath.Join(dir, "jwks.json")
	os.WriteFile(path, jwksJSON(s), 0o600)
	f := newAccessFixture(t, strings.Replace(jwtYAML, "%SOURCE%", "jwks_file: "+path, 1))
	// No kid: the only key of the algorithm is used.
	if r := f.do("GET", "/items", "Authorization", "Bearer "+s.token(t, goodClaims())); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	// A bad file is a startup error.
	os.WriteFile(path, []byte(`{"keys":[]}`), 0o600)
	gc := parseGateway(t, dir, "http://127.0.0.1:1", strings.Replace(jwtYAML, "%SOURCE%", "jwks_file: "+path, 1))
	if _, err := New(gc, nil, nil); err == nil || !strings.Contains(err.Error(), "no RS256") {
		t.Fatalf("empty JWKS: %v", err)
	}
}

func TestParseJWKSRefusesWeakKeys(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	for name, doc := range map[string]string{
		"1024-bit RSA":        `{"keys":[{"kty":"RSA","n":"` + b64u(small.N.Bytes()) + `","e":"AQAB"}]}`,
		"point off the curve": `{"keys":[{"kty":"EC","crv":"P-256","x":"` + b64u(make([]byte, 32)) + `","y":"` + b64u(make([]byte, 32)) + `"}]}`,
		"short Ed25519":       `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}`,
		"only HMAC":           `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`,
		"not JSON":            `keys`,
	} {
		if _, err := parseJWKS([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
