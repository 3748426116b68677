package waf

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

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

// compile returns the matcher for s. path names the statement in errors ("statement.not.and[1]").
func (c *compiler) compile(s config.Statement, path string) (matcher, error) {
	set := 0
	for _, present := range []bool{s.Not != nil, s.And != nil, s.Or != nil, s.OriginVerify != nil, s.ByteMatch != nil} {
		if present {
			set++
		}
	}
	if set != 1 {
		return nil, fmt.Errorf("%s: has %d kinds of statement, want exactly 1 of not, and, or, origin_verify, byte_match", path, set)
	}
	switch {
	case s.Not != nil:
		inner, err := c.compile(*s.Not, path+".not")
		if err != nil {
			return nil, err
		}
		return func(r *http.Request) bool { return !inner(r) }, nil
	case s.And != nil:
		all, err := c.compileList(s.And, path+".and")
		if err != nil {
			return nil, err
		}
		return func(r *http.Request) bool {
			for _, m := range all {
				if !m(r) {
					return false
				}
			}
			return true
		}, nil
	case s.Or != nil:
		some, err := c.compileList(s.Or, path+".or")
		if err != nil {
			return nil, err
		}
		return func(r *http.Request) bool {
			for _, m := range some {
				if m(r) {
					return true
				}
			}
			return false
		}, nil
	case s.OriginVerify != nil:
		return c.originVerify(*s.OriginVerify, path+".origin_verify")
	default:
		return byteMatch(*s.ByteMatch, path+".byte_match")
	}
}

func (c *compiler) compileList(list []config.Statement, path string) ([]matcher, error) {
	if len(list) == 0 {
		return nil, fmt.Errorf("%s: is empty, want at least one statement", path)
	}
	ms := make([]matcher, len(list))
	for i, s := range list {
		m, err := c.compile(s, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		ms[i] = m
	}
	return ms, nil
}

// originVerify matches when the header is present exactly once and holds the secret of an active
// key. A repeated header never matches: which copy an app or an upstream proxy would read is
// not defined, so an attacker could pair a stolen-looking value with a real one.
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
	return func(r *http.Request) bool {
		values := r.Header[name]
		if len(values) != 1 {
			return false
		}
		_, ok := kr.Verify(values[0])
		return ok
	}, nil
}

// byteMatch compares a header's value, case-sensitively, with a search string. An absent header
// never matches. A header sent more than once is compared as its values joined with ", ", the one
// field value RFC 9110 says repeated lines are equivalent to, so that splitting a value over two
// lines neither hides nor fakes a match.
func byteMatch(s config.ByteMatchStatement, path string) (matcher, error) {
	if s.Header == "" {
		return nil, fmt.Errorf("%s: header is empty", path)
	}
	var cmp func(value, search string) bool
	switch s.PositionalConstraint {
	case config.MatchExactly:
		cmp = func(v, s string) bool { return v == s }
	case config.MatchStartsWith:
		cmp = strings.HasPrefix
	case config.MatchEndsWith:
		cmp = strings.HasSuffix
	case config.MatchContains:
		cmp = strings.Contains
	default:
		return nil, fmt.Errorf("%s: unknown positional_constraint %q (write EXACTLY, STARTS_WITH, ENDS_WITH or CONTAINS)", path, s.PositionalConstraint)
	}
	name := textproto.CanonicalMIMEHeaderKey(s.Header)
	search := s.SearchString
	return func(r *http.Request) bool {
		values, ok := r.Header[name]
		if !ok || len(values) == 0 {
			return false
		}
		v := values[0]
		if len(values) > 1 {
			v = strings.Join(values, ", ")
		}
		return cmp(v, search)
	}, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
