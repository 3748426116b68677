package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// statementKinds are the statement keys, in the order messages list them.
var statementKinds = []string{"not", "and", "or", "origin_verify", "byte_match", "regex_match", "ip_set",
	"size_constraint", "sqli_match", "xss_match", "label_match", "managed_rule_group", "mtls", "rate_based"}

// TextTransformationNames returns the text transformations statements accept, in the order the
// docs list them.
func TextTransformationNames() []string {
	return []string{"NONE", "LOWERCASE", "URL_DECODE", "URL_DECODE_UNI", "HTML_ENTITY_DECODE",
		"COMPRESS_WHITE_SPACE", "BASE64_DECODE", "HEX_DECODE", "CMD_LINE", "NORMALIZE_PATH",
		"REMOVE_NULLS", "REPLACE_COMMENTS"}
}

// Enums of the WAF statements.
var (
	positionalConstraints = []string{MatchExactly, MatchStartsWith, MatchEndsWith, MatchContains, MatchContainsWord}
	matchScopes           = []string{"ALL", "KEY", "VALUE"}
	comparisonOperators   = []string{"EQ", "NE", "LE", "LT", "GE", "GT"}
	forwardedPositions    = []string{"FIRST", "LAST", "ANY"}
	fallbackBehaviors     = []string{"MATCH", "NO_MATCH"}
	labelScopes           = []string{"LABEL", "NAMESPACE"}
	oversizeHandlings     = []string{OversizeContinue, OversizeMatch, OversizeNoMatch}
	crsModes              = []string{CRSModeBlock, CRSModeDetect}
)

// maxBodyInspectionLimit bounds body_inspection_limit: the inspected prefix is held in memory for
// every request in flight.
const maxBodyInspectionLimit = 8 << 20

// wafStatementKinds lists the statement kinds of s beyond the original five.
func wafStatementKinds(s *Statement) []string {
	var kinds []string
	for _, k := range []struct {
		name string
		set  bool
	}{
		{"regex_match", s.RegexMatch != nil},
		{"ip_set", s.IPSet != nil},
		{"size_constraint", s.SizeConstraint != nil},
		{"sqli_match", s.SQLiMatch != nil},
		{"xss_match", s.XSSMatch != nil},
		{"label_match", s.LabelMatch != nil},
		{"managed_rule_group", s.ManagedRuleGroup != nil},
		{"mtls", s.MTLS != nil},
		{"rate_based", s.RateBased != nil},
	} {
		if k.set {
			kinds = append(kinds, k.name)
		}
	}
	return kinds
}

// labelRE is the grammar of labels: colon-separated parts of letters, digits, '_', '-' and '.'.
var labelRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)*$`)

// crsFieldRE is a ModSecurity variable with an optional key, as a field exclusion names it. It
// leaves out quotes, spaces and commas so that a value cannot change the directive it is put in.
var crsFieldRE = regexp.MustCompile(`^[A-Z_]+(:[A-Za-z0-9_.\-\[\]/^$*+?|(){}\\]+)?$`)

// crsTagRE is a CRS tag such as attack-sqli or paranoia-level/2.
var crsTagRE = regexp.MustCompile(`^[A-Za-z0-9_./-]+$`)

// byteMatch checks a byte_match statement: a header (the shorthand) or field_to_match.
func (c *checker) byteMatch(bp string, bm *ByteMatchStatement) {
	switch {
	case bm.Header != "" && bm.FieldToMatch != nil:
		c.errf(bp+".field_to_match", "header: NAME is short for field_to_match: {single_header: NAME}; keep one", "set header or field_to_match, not both")
	case bm.FieldToMatch != nil:
		c.fieldToMatch(bp+".field_to_match", bm.FieldToMatch)
	default:
		if !c.set(bp + ".header") {
			c.errf(bp+".header", "or set field_to_match, such as {uri_path: {}}", "required")
		} else if !isToken(bm.Header) {
			c.errf(bp+".header", "", "invalid header name %q", bm.Header)
		}
	}
	if c.required(bp+".positional_constraint", bm.PositionalConstraint) {
		c.enum(bp+".positional_constraint", "positional constraint", bm.PositionalConstraint, positionalConstraints)
	}
	c.required(bp+".search_string", bm.SearchString)
	c.transformations(bp+".text_transformations", bm.TextTransformations)
}

// wafStatement checks the statement kinds added with the AWS-grade rule engine.
func (c *checker) wafStatement(p, kind string, s *Statement) {
	sp := p + "." + kind
	switch kind {
	case "regex_match":
		st := s.RegexMatch
		c.fieldToMatch(sp+".field_to_match", &st.FieldToMatch)
		if c.required(sp+".regex", st.Regex) {
			if _, err := regexp.Compile(st.Regex); err != nil {
				c.errf(sp+".regex", "write an RE2 expression (no backreferences or lookaround)", "bad regex: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			}
		}
		c.transformations(sp+".text_transformations", st.TextTransformations)
	case "ip_set":
		st := s.IPSet
		if len(st.Addresses) == 0 {
			c.errf(sp+".addresses", "list CIDRs such as [10.0.0.0/8, \"2001:db8::/32\"]", "needs at least one address")
		}
		for i, a := range st.Addresses {
			if _, err := ParseCIDR(a); err != nil {
				c.errf(idx(sp, "addresses", i), "write an address or a CIDR, such as 192.0.2.0/24 or 2001:db8::/32", "%q is not an IP address or CIDR", a)
			}
		}
		if f := st.ForwardedIP; f != nil {
			fp := sp + ".forwarded_ip"
			if c.required(fp+".header", f.Header) && !isToken(f.Header) {
				c.errf(fp+".header", "", "invalid header name %q", f.Header)
			}
			if f.Position != "" {
				c.enum(fp+".position", "position", f.Position, forwardedPositions)
			}
			if f.FallbackBehavior != "" {
				c.enum(fp+".fallback_behavior", "fallback behavior", f.FallbackBehavior, fallbackBehaviors)
			}
		}
	case "size_constraint":
		st := s.SizeConstraint
		c.fieldToMatch(sp+".field_to_match", &st.FieldToMatch)
		if c.required(sp+".comparison_operator", st.ComparisonOperator) {
			c.enum(sp+".comparison_operator", "comparison operator", st.ComparisonOperator, comparisonOperators)
		}
		if !c.set(sp + ".size") {
			c.errf(sp+".size", "the size in bytes to compare with", "required")
		} else if st.Size < 0 {
			c.errf(sp+".size", "", "size %d is negative", st.Size)
		}
		c.transformations(sp+".text_transformations", st.TextTransformations)
	case "sqli_match", "xss_match":
		st := s.SQLiMatch
		if kind == "xss_match" {
			st = s.XSSMatch
		}
		c.fieldToMatch(sp+".field_to_match", &st.FieldToMatch)
		c.transformations(sp+".text_transformations", st.TextTransformations)
	case "label_match":
		st := s.LabelMatch
		if st.Scope != "" {
			c.enum(sp+".scope", "label scope", st.Scope, labelScopes)
		}
		key := st.Key
		if st.Scope == "NAMESPACE" {
			if !strings.HasSuffix(key, ":") && key != "" {
				c.errf(sp+".key", fmt.Sprintf("write %q", key+":"), "a namespace ends with ':'")
				return
			}
			key = strings.TrimSuffix(key, ":")
		}
		if c.required(sp+".key", st.Key) && !labelRE.MatchString(key) {
			c.errf(sp+".key", "use letters, digits, '_', '-' and '.', with ':' between parts", "invalid label %q", st.Key)
		}
	case "managed_rule_group":
		c.managedRuleGroup(p, sp, s.ManagedRuleGroup)
	case "mtls":
		c.mtlsStatement(sp, s.MTLS) // validate_originverify.go
	case "rate_based":
		c.rateBased(p, sp, s.RateBased) // validate_waf_rate.go
	}
}

// managedRuleGroup checks a managed_rule_group statement; p is the statement's path.
func (c *checker) managedRuleGroup(p, sp string, g *ManagedRuleGroupStatement) {
	if !strings.HasSuffix(p, "].statement") {
		c.errf(sp, "give the managed rule group a rule of its own", "a managed rule group must be a rule's whole statement, not part of not, and or or")
	}
	if c.required(sp+".name", g.Name) {
		c.enum(sp+".name", "managed rule group", g.Name, []string{ManagedGroupOWASPCRS})
	}
	if c.set(sp+".paranoia_level") && (g.ParanoiaLevel < 1 || g.ParanoiaLevel > 4) {
		c.errf(sp+".paranoia_level", "1 (default, fewest false positives) to 4 (most rules)", "paranoia level %d is not between 1 and 4", g.ParanoiaLevel)
	}
	if c.set(sp+".inbound_anomaly_threshold") && (g.InboundAnomalyThreshold < 1 || g.InboundAnomalyThreshold > 10000) {
		c.errf(sp+".inbound_anomaly_threshold", "5 (the default) blocks on one critical rule", "threshold %d is not between 1 and 10000", g.InboundAnomalyThreshold)
	}
	if c.set(sp + ".mode") {
		c.enum(sp+".mode", "mode", g.Mode, crsModes)
	}
	ep := sp + ".exclusions"
	for i, id := range g.Exclusions.RuleIDs {
		if id < 1 || id > 999999 {
			c.errf(idx(ep, "rule_ids", i), "CRS rule ids are numbers such as 942100", "rule id %d is out of range", id)
		}
	}
	for i, tag := range g.Exclusions.Tags {
		if !crsTagRE.MatchString(tag) {
			c.errf(idx(ep, "tags", i), "a CRS tag such as attack-sqli or paranoia-level/3", "invalid tag %q", tag)
		}
	}
	for i, f := range g.Exclusions.Fields {
		fp := idx(ep, "fields", i)
		if f.RuleID < 1 || f.RuleID > 999999 {
			c.errf(fp+".rule_id", "CRS rule ids are numbers such as 942100", "rule id %d is out of range", f.RuleID)
		}
		if c.required(fp+".field", f.Field) && !crsFieldRE.MatchString(f.Field) {
			c.errf(fp+".field", "write a ModSecurity variable such as ARGS:password or REQUEST_COOKIES:session", "invalid field %q", f.Field)
		}
	}
}

// fieldToMatch checks that exactly one part of the request is selected, and its parameters.
func (c *checker) fieldToMatch(p string, f *FieldToMatch) {
	var set []string
	add := func(name string, ok bool) {
		if ok {
			set = append(set, name)
		}
	}
	add("single_header", f.SingleHeader != "" || c.set(p+".single_header"))
	add("all_headers", f.AllHeaders != nil)
	add("cookie", f.Cookie != "" || c.set(p+".cookie"))
	add("all_cookies", f.AllCookies != nil)
	add("uri_path", f.URIPath != nil)
	add("query_string", f.QueryString != nil)
	add("single_query_argument", f.SingleQueryArgument != "" || c.set(p+".single_query_argument"))
	add("all_query_arguments", f.AllQueryArguments != nil)
	add("method", f.Method != nil)
	add("body", f.Body != nil)
	add("json_body", f.JSONBody != nil)
	add("form_field", f.FormField != "" || c.set(p+".form_field"))
	const kinds = "single_header, all_headers, cookie, all_cookies, uri_path, query_string, single_query_argument, all_query_arguments, method, body, json_body or form_field"
	switch len(set) {
	case 0:
		if !c.misspelt(p, "single_header", "all_headers", "cookie", "all_cookies", "uri_path", "query_string",
			"single_query_argument", "all_query_arguments", "method", "body", "json_body", "form_field") {
			c.errf(p, "such as {uri_path: {}} or {single_header: User-Agent}", "set one of %s", kinds)
		}
		return
	case 1:
	default:
		c.errf(p, "use one statement per field, combined with or: [...]", "selects %s; set exactly one", strings.Join(set, " and "))
		return
	}
	fp := p + "." + set[0]
	switch set[0] {
	case "single_header":
		if !isToken(f.SingleHeader) {
			c.errf(fp, "", "invalid header name %q", f.SingleHeader)
		}
	case "cookie", "single_query_argument", "form_field":
		v := map[string]string{"cookie": f.Cookie, "single_query_argument": f.SingleQueryArgument, "form_field": f.FormField}[set[0]]
		c.required(fp, v)
	case "all_headers", "all_cookies", "all_query_arguments", "json_body":
		s := map[string]*MatchScope{"all_headers": f.AllHeaders, "all_cookies": f.AllCookies, "all_query_arguments": f.AllQueryArguments, "json_body": f.JSONBody}[set[0]]
		if s.MatchScope != "" {
			c.enum(fp+".match_scope", "match scope", s.MatchScope, matchScopes)
		}
	}
}

// transformations checks a list of text transformation names.
func (c *checker) transformations(p string, list []string) {
	names := TextTransformationNames()
	for i, t := range list {
		c.enum(fmt.Sprintf("%s[%d]", p, i), "text transformation", t, names)
	}
}

// wafRule checks the parts of a rule that depend on its action and its ACL.
func (c *checker) wafRule(rp string, a *WebACL, r *WAFRule) {
	for i, l := range r.Labels {
		if !labelRE.MatchString(l) {
			c.errf(idx(rp, "labels", i), "use letters, digits, '_', '-' and '.', with ':' between parts, such as bots:scanner", "invalid label %q", l)
		}
	}
	if r.CustomResponse != "" {
		if r.Action != ActionBlock {
			c.errf(rp+".custom_response", "remove it, or make the action block", "only a block rule sends a custom response")
		} else if _, ok := a.CustomResponses[r.CustomResponse]; !ok {
			c.errf(rp+".custom_response", c.suggest("custom response", r.CustomResponse, customResponseNames(a), "defined custom_responses"), "unknown custom response %q", r.CustomResponse)
		}
	}
	if r.Statement.ManagedRuleGroup != nil && r.Action == ActionAllow {
		c.errf(rp+".action", "use block (or count, or mode: detect, to only log)", "a managed rule group rule cannot allow")
	}
}

func customResponseNames(a *WebACL) []string {
	names := make([]string, 0, len(a.CustomResponses))
	for n := range a.CustomResponses {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// webACLOptions checks the ACL-wide settings: body inspection and custom responses.
func (c *checker) webACLOptions(p string, a *WebACL) {
	if c.set(p+".body_inspection_limit") && (a.BodyInspectionLimit < 1 || a.BodyInspectionLimit > maxBodyInspectionLimit) {
		c.errf(p+".body_inspection_limit", "a number of bytes, such as 16384 (the default)", "body_inspection_limit %d is not between 1 and %d", a.BodyInspectionLimit, maxBodyInspectionLimit)
	}
	if c.set(p + ".oversize_handling") {
		c.enum(p+".oversize_handling", "oversize handling", a.OversizeHandling, oversizeHandlings)
	}
	c.webACLStore(p, a) // validate_waf_rate.go
	names := customResponseNames(a)
	for _, name := range names {
		cr := a.CustomResponses[name]
		cp := join(p+".custom_responses", name)
		if !c.set(cp+".status") || cr.Status < 200 || cr.Status > 599 {
			c.errf(cp+".status", "a status between 200 and 599, such as 429", "status %d is not between 200 and 599", cr.Status)
		}
		for h := range cr.Headers {
			if !isToken(h) {
				c.errf(join(cp+".headers", h), "", "invalid header name %q", h)
			} else if strings.ContainsAny(cr.Headers[h], "\r\n") {
				c.errf(join(cp+".headers", h), "", "a header value cannot contain a line break")
			}
		}
	}
	if a.DefaultCustomResponse != "" {
		dp := p + ".default_custom_response"
		if a.DefaultAction != ActionBlock {
			c.errf(dp, "remove it, or set default_action: block", "only a default block sends a custom response")
		} else if _, ok := a.CustomResponses[a.DefaultCustomResponse]; !ok {
			c.errf(dp, c.suggest("custom response", a.DefaultCustomResponse, names, "defined custom_responses"), "unknown custom response %q", a.DefaultCustomResponse)
		}
	}
}

// gatewayWebACLs checks the web_acl references of gateways.
func (c *checker) gatewayWebACLs() {
	acls := c.webACLNames()
	for i, g := range c.cfg.Gateways {
		if g.WebACL != "" && !slices.Contains(acls, g.WebACL) {
			c.errf(idx("", "gateways", i)+".web_acl", c.suggest("web ACL", g.WebACL, acls, "defined web ACLs"), "unknown web ACL %q", g.WebACL)
		}
	}
}

// ParseCIDR parses an ip_set address: a CIDR, or a bare address meaning a single host. IPv4
// addresses written in IPv6 form (::ffff:192.0.2.1) are unmapped, as request addresses are.
func ParseCIDR(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("address %q has a zone", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
