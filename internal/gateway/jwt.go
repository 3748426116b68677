package gateway

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"
)

// This file is a deliberately small JWS (compact serialization) and JWKS implementation on the
// standard library's crypto: RS256, ES256 and EdDSA (Ed25519) only. What it refuses, on purpose:
// "none" and HMAC algorithms (the algorithm-confusion attacks), a header algorithm other than the
// configured ones and the key's own, "crit" extensions it does not know, key material carried in
// the token (jwk, jku, x5u, x5c are never used to pick a key), padded or non-canonical base64,
// RSA keys under 2048 bits, EC points not on P-256, and tokens over maxTokenBytes.

// maxTokenBytes bounds a token before any decoding.
const maxTokenBytes = 8 << 10

// maxJWKSBytes bounds a JWKS document.
const maxJWKSBytes = 1 << 20

var b64 = base64.RawURLEncoding.Strict()

// jwk is one verification key of a JWKS.
type jwk struct {
	kid string
	alg string // the key's own alg, if the JWKS says; "" when it does not
	key crypto.PublicKey
}

// keyAlg is the JWS algorithm a key's type implies.
func keyAlg(k crypto.PublicKey) string {
	switch k.(type) {
	case *rsa.PublicKey:
		return "RS256"
	case *ecdsa.PublicKey:
		return "ES256"
	case ed25519.PublicKey:
		return "EdDSA"
	}
	return ""
}

type rawJWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS reads a JWKS document. Keys of other types, curves or uses (enc) are skipped, not
// errors, so that an identity provider may publish them; a usable-looking key that is malformed
// is an error, and so is a set with no usable key.
func parseJWKS(data []byte) ([]jwk, error) {
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("JWKS over %d bytes", maxJWKSBytes)
	}
	var doc struct {
		Keys []rawJWK `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("JWKS is not JSON: %w", err)
	}
	var out []jwk
	for i, rk := range doc.Keys {
		if rk.Use != "" && rk.Use != "sig" {
			continue
		}
		k, err := rk.publicKey()
		if err != nil {
			return nil, fmt.Errorf("JWKS key %d (kid %q): %w", i, rk.Kid, err)
		}
		if k == nil {
			continue
		}
		if rk.Alg != "" && rk.Alg != keyAlg(k) {
			continue // e.g. an RSA key for PS256 or RS512: not usable here
		}
		out = append(out, jwk{kid: rk.Kid, alg: rk.Alg, key: k})
	}
	if len(out) == 0 {
		return nil, errors.New("JWKS has no RS256, ES256 (P-256) or EdDSA (Ed25519) signing key")
	}
	return out, nil
}

// publicKey decodes the key, or returns nil for a type this build does not verify.
func (rk rawJWK) publicKey() (crypto.PublicKey, error) {
	switch rk.Kty {
	case "RSA":
		n, err := b64.DecodeString(rk.N)
		if err != nil || len(n) == 0 || n[0] == 0 {
			return nil, errors.New("bad RSA modulus n")
		}
		e, err := b64.DecodeString(rk.E)
		if err != nil || len(e) == 0 || len(e) > 4 || e[0] == 0 {
			return nil, errors.New("bad RSA exponent e")
		}
		var ev int
		for _, b := range e {
			ev = ev<<8 | int(b)
		}
		if ev < 3 || ev%2 == 0 {
			return nil, errors.New("bad RSA exponent e")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: ev}
		if pub.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits: at least 2048 are required", pub.N.BitLen())
		}
		return pub, nil
	case "EC":
		if rk.Crv != "P-256" {
			return nil, nil
		}
		x, err1 := b64.DecodeString(rk.X)
		y, err2 := b64.DecodeString(rk.Y)
		if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
			return nil, errors.New("bad P-256 coordinates")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, errors.New("the P-256 point is not on the curve")
		}
		return pub, nil
	case "OKP":
		if rk.Crv != "Ed25519" {
			return nil, nil
		}
		x, err := b64.DecodeString(rk.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 key x")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, nil
}

// Errors of token verification. Their text never includes the token.
var (
	errMalformed   = errors.New("malformed token")
	errAlgorithm   = errors.New("algorithm not accepted")
	errNoKey       = errors.New("no key for the token's kid")
	errSignature   = errors.New("bad signature")
	errExpired     = errors.New("token expired")
	errNotYetValid = errors.New("token not yet valid")
	errIssuer      = errors.New("wrong issuer")
	errAudience    = errors.New("wrong audience")
)

// jwsHeader is the protected header. Only alg and kid select a key.
type jwsHeader struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Crit json.RawMessage `json:"crit"`
}

// parsedJWS is a token split and decoded, not yet verified.
type parsedJWS struct {
	header       jwsHeader
	signingInput string
	payload, sig []byte
}

// parseJWS splits and decodes a compact JWS without trusting any of it.
func parseJWS(token string) (*parsedJWS, error) {
	if len(token) == 0 || len(token) > maxTokenBytes {
		return nil, errMalformed
	}
	h, rest, ok1 := strings.Cut(token, ".")
	p, s, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(s, ".") || h == "" || p == "" || s == "" {
		return nil, errMalformed
	}
	hb, err := b64.DecodeString(h)
	if err != nil {
		return nil, errMalformed
	}
	out := &parsedJWS{signingInput: token[:len(h)+1+len(p)]}
	if err := strictUnmarshal(hb, &out.header); err != nil {
		return nil, errMalformed
	}
	if out.header.Crit != nil {
		return nil, errMalformed // no extension is understood, so every critical one is refused
	}
	if out.payload, err = b64.DecodeString(p); err != nil {
		return nil, errMalformed
	}
	if out.sig, err = b64.DecodeString(s); err != nil {
		return nil, errMalformed
	}
	return out, nil
}

// strictUnmarshal decodes one JSON object and refuses trailing data.
func strictUnmarshal(data []byte, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return errMalformed
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errMalformed
	}
	return nil
}

// verify checks the signature of t with key.
func (t *parsedJWS) verify(k crypto.PublicKey) bool {
	switch pub := k.(type) {
	case *rsa.PublicKey:
		if t.header.Alg != "RS256" {
			return false
		}
		sum := sha256.Sum256([]byte(t.signingInput))
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], t.sig) == nil
	case *ecdsa.PublicKey:
		if t.header.Alg != "ES256" || len(t.sig) != 64 {
			return false
		}
		sum := sha256.Sum256([]byte(t.signingInput))
		r, s := new(big.Int).SetBytes(t.sig[:32]), new(big.Int).SetBytes(t.sig[32:])
		return ecdsa.Verify(pub, sum[:], r, s)
	case ed25519.PublicKey:
		if t.header.Alg != "EdDSA" || len(t.sig) != ed25519.SignatureSize {
			return false
		}
		return ed25519.Verify(pub, []byte(t.signingInput), t.sig)
	}
	return false
}

// claims is a verified token's payload.
type claims map[string]any

// jwtPolicy is what a verified token must also satisfy.
type jwtPolicy struct {
	issuer    string
	audiences []string
	leeway    time.Duration
}

// check verifies the registered claims at time now. exp is required: a token that never expires
// is refused.
func (p *jwtPolicy) check(c claims, now time.Time) error {
	exp, ok := numericDate(c["exp"])
	if !ok {
		return errExpired
	}
	if now.After(exp.Add(p.leeway)) {
		return errExpired
	}
	if v, present := c["nbf"]; present {
		nbf, ok := numericDate(v)
		if !ok || now.Add(p.leeway).Before(nbf) {
			return errNotYetValid
		}
	}
	if v, present := c["iat"]; present {
		iat, ok := numericDate(v)
		if !ok || now.Add(p.leeway).Before(iat) {
			return errNotYetValid
		}
	}
	if iss, _ := c["iss"].(string); iss != p.issuer {
		return errIssuer
	}
	if !p.audienceOK(c["aud"]) {
		return errAudience
	}
	return nil
}

func (p *jwtPolicy) audienceOK(v any) bool {
	match := func(s string) bool {
		for _, a := range p.audiences {
			if s == a {
				return true
			}
		}
		return false
	}
	switch aud := v.(type) {
	case string:
		return match(aud)
	case []any:
		for _, x := range aud {
			if s, ok := x.(string); ok && match(s) {
				return true
			}
		}
	}
	return false
}

// numericDate reads a JSON NumericDate (seconds since the epoch, possibly fractional).
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > 1e11 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// scopes lists the token's scopes: "scope" (a space-separated string, RFC 8693) or "scp" (a
// string or an array, as some providers send).
func (c claims) scopes() []string {
	var out []string
	for _, name := range []string{"scope", "scp"} {
		switch v := c[name].(type) {
		case string:
			out = append(out, strings.Fields(v)...)
		case []any:
			for _, x := range v {
				if s, ok := x.(string); ok {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// claimString is a claim's value as header text: strings as they are, numbers and booleans
// written out, arrays and objects as compact JSON. A value with a control character (which could
// split a header) or over 1 KB is "", as if absent.
func (c claims) claimString(name string) string {
	var s string
	switch v := c[name].(type) {
	case nil:
		return ""
	case string:
		s = v
	case json.Number:
		s = v.String()
	case bool:
		s = fmt.Sprint(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		s = string(b)
	}
	if len(s) > 1024 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return ""
		}
	}
	return s
}

// bearerToken extracts the token of "Authorization: Bearer TOKEN". Exactly one Authorization
// header, the scheme case-insensitive, the token made of base64url characters and dots.
func bearerToken(values []string) (string, bool) {
	if len(values) != 1 {
		return "", false
	}
	v := values[0]
	if len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
		return "", false
	}
	tok := strings.TrimLeft(v[7:], " ")
	tok = strings.TrimRight(tok, " ")
	if tok == "" || len(tok) > maxTokenBytes {
		return "", false
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return "", false
		}
	}
	return tok, true
}
