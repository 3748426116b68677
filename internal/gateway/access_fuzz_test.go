package gateway

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
)

// FuzzJWTVerify: whatever the token, verification never panics, and nothing but the seeds' own
// signed content is ever accepted (the fuzzer cannot forge a signature).
func FuzzJWTVerify(f *testing.F) {
	rs, es, ed := newSigner(f, "RS256", "rsa1"), newSigner(f, "ES256", "ec1"), newSigner(f, "EdDSA", "ed1")
	keys, err := parseJWKS(jwksJSON(rs, es, ed))
	if err != nil {
		f.Fatal(err)
	}
	az := &jwtAuthorizer{algs: []string{"RS256", "ES256", "EdDSA"},
		policy: jwtPolicy{issuer: "https://idp.test/", audiences: []string{"https://api.test"}, leeway: time.Minute},
		keys:   &jwksSource{refresh: time.Hour, now: time.Now}, now: time.Now}
	az.keys.set.Store(&keySet{keys: keys, loaded: time.Now()})
	signed := map[string]bool{}
	for _, s := range []*signer{rs, es, ed} {
		tok := s.token(f, goodClaims())
		signed[tok[:strings.LastIndexByte(tok, '.')]] = true
		f.Add(tok)
	}
	f.Add("e30.e30.")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("..")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := az.verify(context.Background(), token)
		if err != nil {
			return
		}
		if !signed[token[:strings.LastIndexByte(token, '.')]] {
			t.Fatalf("accepted content nobody signed: %q %v", token, c)
		}
	})
}

// FuzzParseJWKS: any document parses or fails; every key returned is one this build verifies.
func FuzzParseJWKS(f *testing.F) {
	f.Add(jwksJSON(newSigner(f, "RS256", "a"), newSigner(f, "ES256", "b"), newSigner(f, "EdDSA", "c")))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AA","e":"AQAB"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := parseJWKS(data)
		if err != nil {
			return
		}
		for _, k := range keys {
			if keyAlg(k.key) == "" {
				t.Fatalf("unusable key returned: %T", k.key)
			}
		}
	})
}

// FuzzBearerToken: an extracted token is a bounded run of base64url characters and dots.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc.def.ghi", "bearer  x ", "Basic YTpi", "Bearer", "Bearer a b", "BEARER \x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		tok, ok := bearerToken([]string{v})
		if !ok {
			return
		}
		if tok == "" || len(tok) > maxTokenBytes || strings.Trim(tok, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != "" {
			t.Fatalf("bad token %q from %q", tok, v)
		}
	})
}

// FuzzAPIKeyHeader: an extracted key is bounded printable ASCII without spaces.
func FuzzAPIKeyHeader(f *testing.F) {
	for _, s := range []string{keyAcme, " " + keyAcme + "\t", "", "a b", "\xff", strings.Repeat("k", 300)} {
		f.Add(s)
	}
	keys := map[[32]byte]*apiKey{}
	f.Fuzz(func(t *testing.T, v string) {
		k, ok := apiKeyValue([]string{v})
		if !ok {
			return
		}
		if k == "" || len(k) > maxAPIKeyBytes || !validKeyValue(k) || !strings.Contains(v, k) {
			t.Fatalf("bad key %q from %q", k, v)
		}
		_ = lookupKey(keys, k)
	})
}

// FuzzThrottleKey: client keys from any header value or claim set start with the rule's prefix,
// and a claim used as a header value never carries a control character.
func FuzzThrottleKey(f *testing.F) {
	f.Add("acme", `{"sub":"alice"}`)
	f.Add("", `{"sub":{"a":[1,2]}}`)
	f.Add("x\r\ny", `{"sub":"a\nb"}`)
	f.Add("\x00", `{"sub":1e400}`)
	open, ident := compileThrottles("g", "l", []config.Throttle{
		{Key: "header:X-Tenant", Rate: 1, Burst: 1}, {Key: "source_ip", Rate: 1, Burst: 1}, {Key: "jwt:sub", Rate: 1, Burst: 1},
	})
	rules := append(open, ident...)
	f.Fuzz(func(t *testing.T, header, claimsJSON string) {
		var c claims
		if strictUnmarshal([]byte(claimsJSON), &c) != nil {
			c = nil
		}
		req := httptest.NewRequest("GET", "/", nil)
		req.Header["X-Tenant"] = []string{header}
		id := &identity{claims: c}
		for i := range rules {
			if k := rules[i].clientKey(req, id); !strings.HasPrefix(k, rules[i].prefix) || len(k) == len(rules[i].prefix) {
				t.Fatalf("key %q for rule %q", k, rules[i].prefix)
			}
		}
		v := c.claimString("sub")
		if strings.ContainsAny(v, "\r\n\x00") || len(v) > 1024 {
			t.Fatalf("claim value %q", v)
		}
	})
}
