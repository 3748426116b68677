package waf

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/corazawaf/libinjection-go"

	"github.com/rampart-edge/rampart/internal/config"
)

// cond is a compiled statement evaluated against one request's context. Statements are compiled
// once, in New, into a tree of these closures, so a request costs only the comparisons.
type cond func(ec *evalCtx) bool

// builder compiles statements. It wraps the compiler of origin_verify statements.
type builder struct {
	*compiler
	oversize  string // the ACL's oversize_handling
	bodyLimit int    // the ACL's body_inspection_limit
	crsExtra  string // directives added before the CRS rules (the regression test's setup)
	shared    *Shared
	crs       []*crsGroup // the managed rule groups the ACL holds a reference to
}

// compile returns the condition for s. path names the statement in errors ("statement.not.and[1]").
func (b *builder) compile(s config.Statement, path string) (cond, error) {
	kinds := []bool{s.Not != nil, s.And != nil, s.Or != nil, s.OriginVerify != nil, s.ByteMatch != nil,
		s.RegexMatch != nil, s.IPSet != nil, s.SizeConstraint != nil, s.SQLiMatch != nil, s.XSSMatch != nil,
		s.LabelMatch != nil, s.ManagedRuleGroup != nil, s.MTLS != nil, s.RateBased != nil}
	set := 0
	for _, present := range kinds {
		if present {
			set++
		}
	}
	if set != 1 {
		return nil, fmt.Errorf("%s: has %d kinds of statement, want exactly 1", path, set)
	}
	switch {
	case s.Not != nil:
		inner, err := b.compile(*s.Not, path+".not")
		if err != nil {
			return nil, err
		}
		return func(ec *evalCtx) bool {
			if inner(ec) {
				return false
			}
			ec.hit = hit{} // what did not match is no evidence
			return true
		}, nil
	case s.And != nil:
		all, err := b.compileList(s.And, path+".and")
		if err != nil {
			return nil, err
		}
		return func(ec *evalCtx) bool {
			for _, m := range all {
				if !m(ec) {
					return false
				}
			}
			return true
		}, nil
	case s.Or != nil:
		some, err := b.compileList(s.Or, path+".or")
		if err != nil {
			return nil, err
		}
		return func(ec *evalCtx) bool {
			for _, m := range some {
				if m(ec) {
					return true
				}
			}
			return false
		}, nil
	case s.OriginVerify != nil:
		m, err := b.originVerify(*s.OriginVerify, path+".origin_verify")
		if err != nil {
			return nil, err
		}
		return func(ec *evalCtx) bool { return m(ec.r) }, nil
	case s.ByteMatch != nil:
		return b.byteMatch(*s.ByteMatch, path+".byte_match")
	case s.RegexMatch != nil:
		st := s.RegexMatch
		at := path + ".regex_match"
		re, err := regexp.Compile(st.Regex)
		if err != nil {
			return nil, fmt.Errorf("%s.regex: %w", at, err)
		}
		return b.fieldCond(st.FieldToMatch, st.TextTransformations, at, re.MatchString)
	case s.IPSet != nil:
		return ipSet(*s.IPSet, path+".ip_set")
	case s.SizeConstraint != nil:
		return b.sizeConstraint(*s.SizeConstraint, path+".size_constraint")
	case s.SQLiMatch != nil:
		return b.fieldCond(s.SQLiMatch.FieldToMatch, s.SQLiMatch.TextTransformations, path+".sqli_match", func(v string) bool {
			found, _ := libinjection.IsSQLi(v)
			return found
		})
	case s.XSSMatch != nil:
		return b.fieldCond(s.XSSMatch.FieldToMatch, s.XSSMatch.TextTransformations, path+".xss_match", libinjection.IsXSS)
	case s.LabelMatch != nil:
		return labelMatch(*s.LabelMatch, path+".label_match")
	case s.RateBased != nil:
		return nil, fmt.Errorf("%s.rate_based: must be a rule's whole statement", path) // rate.go
	case s.MTLS != nil:
		return mtlsCond(*s.MTLS, path+".mtls") // mtls.go
	default:
		return nil, fmt.Errorf("%s.managed_rule_group: must be a rule's whole statement", path)
	}
}

func (b *builder) compileList(list []config.Statement, path string) ([]cond, error) {
	if len(list) == 0 {
		return nil, fmt.Errorf("%s: is empty, want at least one statement", path)
	}
	ms := make([]cond, len(list))
	for i, s := range list {
		m, err := b.compile(s, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		ms[i] = m
	}
	return ms, nil
}

// fieldCond is the shape of every field statement: for each value of the field, apply the
// transformations, then test. The first value that passes is the hit the log shows. For a body
// field over the inspection limit, oversize_handling decides first.
func (b *builder) fieldCond(f config.FieldToMatch, names []string, at string, test func(string) bool) (cond, error) {
	fld, err := compileField(f, at+".field_to_match")
	if err != nil {
		return nil, err
	}
	tr, err := compileTransforms(names, at)
	if err != nil {
		return nil, err
	}
	oversize := b.oversize
	return func(ec *evalCtx) bool {
		if fld.body {
			ec.readBody()
			if ec.oversize {
				switch oversize {
				case config.OversizeMatch:
					ec.hit = hit{field: fld.name, value: "(body over the inspection limit)", set: true}
					return true
				case config.OversizeNoMatch:
					return false
				}
			}
		}
		return fld.each(ec, func(key, v string) bool {
			t := v
			if tr != nil {
				t = tr(v)
			}
			if !test(t) {
				return false
			}
			name := fld.name
			if key != "" && !strings.HasSuffix(name, ":"+key) {
				name += ":" + key
			}
			ec.hit = hit{field: name, value: v, set: true}
			return true
		})
	}, nil
}

// byteMatch compares a field with a search string, case-sensitively (add LOWERCASE to ignore
// case). The header shorthand is field_to_match: {single_header: NAME}.
func (b *builder) byteMatch(s config.ByteMatchStatement, at string) (cond, error) {
	f := config.FieldToMatch{SingleHeader: s.Header}
	switch {
	case s.FieldToMatch != nil && s.Header != "":
		return nil, fmt.Errorf("%s: sets both header and field_to_match", at)
	case s.FieldToMatch != nil:
		f = *s.FieldToMatch
	case s.Header == "":
		return nil, fmt.Errorf("%s: header is empty", at)
	}
	search := s.SearchString
	var test func(string) bool
	switch s.PositionalConstraint {
	case config.MatchExactly:
		test = func(v string) bool { return v == search }
	case config.MatchStartsWith:
		test = func(v string) bool { return strings.HasPrefix(v, search) }
	case config.MatchEndsWith:
		test = func(v string) bool { return strings.HasSuffix(v, search) }
	case config.MatchContains:
		test = func(v string) bool { return strings.Contains(v, search) }
	case config.MatchContainsWord:
		test = func(v string) bool { return containsWord(v, search) }
	default:
		return nil, fmt.Errorf("%s: unknown positional_constraint %q (write EXACTLY, STARTS_WITH, ENDS_WITH, CONTAINS or CONTAINS_WORD)", at, s.PositionalConstraint)
	}
	return b.fieldCond(f, s.TextTransformations, at, test)
}

func isWordByte(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// containsWord reports whether w occurs in v with a non-word character (or the start or end of
// v) on each side, as AWS WAF's CONTAINS_WORD.
func containsWord(v, w string) bool {
	for off := 0; off <= len(v); {
		i := strings.Index(v[off:], w)
		if i < 0 {
			return false
		}
		i += off
		j := i + len(w)
		if (i == 0 || !isWordByte(v[i-1])) && (j == len(v) || !isWordByte(v[j])) {
			return true
		}
		off = i + 1
	}
	return false
}

// sizeConstraint compares a field's length in bytes (after transformations). The size of the
// body is its Content-Length when the client sent one, so it is known without reading it.
func (b *builder) sizeConstraint(s config.SizeConstraintStatement, at string) (cond, error) {
	size := s.Size
	var cmp func(n int) bool
	switch s.ComparisonOperator {
	case "EQ":
		cmp = func(n int) bool { return n == size }
	case "NE":
		cmp = func(n int) bool { return n != size }
	case "LE":
		cmp = func(n int) bool { return n <= size }
	case "LT":
		cmp = func(n int) bool { return n < size }
	case "GE":
		cmp = func(n int) bool { return n >= size }
	case "GT":
		cmp = func(n int) bool { return n > size }
	default:
		return nil, fmt.Errorf("%s: unknown comparison_operator %q (write EQ, NE, LE, LT, GE or GT)", at, s.ComparisonOperator)
	}
	c, err := b.fieldCond(s.FieldToMatch, s.TextTransformations, at, func(v string) bool { return cmp(len(v)) })
	if err != nil || s.FieldToMatch.Body == nil || len(s.TextTransformations) > 0 {
		return c, err
	}
	return func(ec *evalCtx) bool {
		if n := ec.r.ContentLength; n >= 0 {
			if cmp(int(min(n, int64(^uint(0)>>1)))) {
				ec.hit = hit{field: "body", value: fmt.Sprintf("(%d bytes)", n), set: true}
				return true
			}
			return false
		}
		return c(ec)
	}, nil
}

// ipSet matches the source address, or the address a forwarded-IP header gives, against CIDRs.
func ipSet(s config.IPSetStatement, at string) (cond, error) {
	prefixes := make([]netip.Prefix, 0, len(s.Addresses))
	for i, a := range s.Addresses {
		p, err := config.ParseCIDR(a)
		if err != nil {
			return nil, fmt.Errorf("%s.addresses[%d]: %q is not an IP address or CIDR", at, i, a)
		}
		prefixes = append(prefixes, p)
	}
	in := func(a netip.Addr) bool {
		a = a.Unmap()
		for _, p := range prefixes {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if s.ForwardedIP == nil {
		return func(ec *evalCtx) bool {
			a, ok := sourceAddr(ec.r)
			if ok && in(a) {
				ec.hit = hit{field: "source_ip", value: a.String(), set: true}
				return true
			}
			return false
		}, nil
	}
	f := *s.ForwardedIP
	header := strings.TrimSpace(f.Header)
	if header == "" {
		return nil, fmt.Errorf("%s.forwarded_ip.header: is empty", at)
	}
	fallback := f.FallbackBehavior == "MATCH"
	position := f.Position
	if position == "" {
		position = "FIRST"
	}
	name := "header:" + header
	return func(ec *evalCtx) bool {
		raw := strings.Join(ec.r.Header.Values(header), ",")
		var addrs []netip.Addr
		for part := range strings.SplitSeq(raw, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			a, err := netip.ParseAddr(part)
			if err != nil {
				if ap, err2 := netip.ParseAddrPort(part); err2 == nil {
					a, err = ap.Addr(), nil
				}
			}
			if err != nil {
				// AWS: an invalid address makes the fallback behavior apply.
				return fallback
			}
			addrs = append(addrs, a)
		}
		if len(addrs) == 0 {
			return fallback
		}
		switch position {
		case "FIRST":
			addrs = addrs[:1]
		case "LAST":
			addrs = addrs[len(addrs)-1:]
		}
		for _, a := range addrs {
			if in(a) {
				ec.hit = hit{field: name, value: a.String(), set: true}
				return true
			}
		}
		return false
	}, nil
}

// labelMatch matches a label that an earlier rule added to this request.
func labelMatch(s config.LabelMatchStatement, at string) (cond, error) {
	if s.Key == "" {
		return nil, fmt.Errorf("%s.key: is empty", at)
	}
	key := s.Key
	switch s.Scope {
	case "", "LABEL":
		return func(ec *evalCtx) bool {
			for _, l := range ec.labels {
				if l == key {
					return true
				}
			}
			return false
		}, nil
	case "NAMESPACE":
		if !strings.HasSuffix(key, ":") {
			key += ":"
		}
		return func(ec *evalCtx) bool {
			for _, l := range ec.labels {
				if strings.HasPrefix(l, key) {
					return true
				}
			}
			return false
		}, nil
	}
	return nil, fmt.Errorf("%s.scope: unknown scope %q (write LABEL or NAMESPACE)", at, s.Scope)
}
