package waf

import (
	"fmt"
	"net/http"
	"net/textproto"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/originverify"
)

// matcher is a compiled statement. Statements are compiled once, in New, into a tree of these
// closures, so a request costs only the comparisons themselves.
type matcher func(r *http.Request) bool

// compiler turns config statements into matchers and records the headers that carry secrets.
type compiler struct {
	keyrings      map[string]*originverify.Keyring
	secretHeaders []string // canonical names, in order of first appearance
}

// originVerify matches when the header is present exactly once and holds, in mode static (the
// default), the secret of an active key, or in mode signed, a token for this very request signed
// with an active key, within the allowed clock skew and not seen before. A repeated header never
// matches: which copy an app or an upstream proxy would read is not defined, so an attacker could
// pair a stolen-looking value with a real one.
func (c *compiler) originVerify(s config.OriginVerifyStatement, path string) (matcher, error) {
	if s.Header == "" {
		return nil, fmt.Errorf("%s: header is empty", path)
	}
	kr := c.keyrings[s.Secret]
	if kr == nil {
		return nil, fmt.Errorf("%s: secret %q has no keyring", path, s.Secret)
	}
	name := textproto.CanonicalMIMEHeaderKey(s.Header)
	if !containsString(c.secretHeaders, name) {
		c.secretHeaders = append(c.secretHeaders, name)
	}
	switch s.Mode {
	case "", config.OriginVerifyStatic:
		return func(r *http.Request) bool {
			values := r.Header[name]
			if len(values) != 1 {
				return false
			}
			_, ok := kr.Verify(values[0])
			return ok
		}, nil
	case config.OriginVerifySigned:
		v := kr.SignedVerifier(s.MaxSkew.Duration)
		return func(r *http.Request) bool {
			values := r.Header[name]
			if len(values) != 1 {
				return false
			}
			_, err := v.VerifyRequest(r, values[0])
			return err == nil
		}, nil
	default:
		return nil, fmt.Errorf("%s: unknown mode %q (write static or signed)", path, s.Mode)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
