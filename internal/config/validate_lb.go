package config

import (
	"fmt"
	"mime"
	"net/netip"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"
)

// algorithms are the balancing algorithms this build implements.
var algorithms = []string{RoundRobin, LeastOutstandingRequests, WeightedRandom}

func (c *checker) checkLoadBalancers() {
	names := map[string]string{}
	acls := c.webACLNames()
	aclSet := map[string]bool{}
	for _, a := range acls {
		aclSet[a] = true
	}
	for i := range c.cfg.LoadBalancers {
		lb := &c.cfg.LoadBalancers[i]
		p := idx("", "load_balancers", i)
		if c.required(p+".name", lb.Name) {
			c.unique(names, p+".name", lb.Name, "load balancer")
		}
		if lb.Egress != "" {
			if _, err := netip.ParseAddr(lb.Egress); err != nil {
				c.errf(p+".egress", "write an IP address of this host, such as 127.0.0.3", "egress %q is not an IP address", lb.Egress)
			}
		}
		c.positive(p+".idle_timeout", lb.IdleTimeout)
		c.enum(p+".desync_mitigation_mode", "desync mitigation mode", lb.DesyncMitigationMode, []string{DesyncMonitor, DesyncDefensive, DesyncStrictest})
		c.enum(p+".x_forwarded_for", "x_forwarded_for mode", lb.XForwardedFor, []string{XFFAppend, XFFPreserve, XFFRemove})
		var groups []string
		groupSet := map[string]bool{}
		tgNames := map[string]string{}
		for j := range lb.TargetGroups {
			tg := &lb.TargetGroups[j]
			tp := idx(p, "target_groups", j)
			if c.required(tp+".name", tg.Name) {
				c.unique(tgNames, tp+".name", tg.Name, "target group")
				if !groupSet[tg.Name] {
					groups = append(groups, tg.Name)
					groupSet[tg.Name] = true
				}
			}
			c.checkTargetGroup(tp, tg)
		}
		for j := range lb.Listeners {
			l := &lb.Listeners[j]
			lp := idx(p, "listeners", j)
			c.listen(lp+".listen", l.Listen)
			c.listenerTLSKeys(lp+".tls", l.TLS)
			if l.WebACL != "" && !aclSet[l.WebACL] {
				c.errf(lp+".web_acl", c.suggest("web ACL", l.WebACL, acls, "defined web ACLs"), "unknown web ACL %q", l.WebACL)
			}
			priorities := map[int]string{}
			for k := range l.Rules {
				r := &l.Rules[k]
				rp := idx(lp, "rules", k)
				c.priority(priorities, rp+".priority", r.Priority, 1)
				c.conditions(rp+".conditions", &r.Conditions)
				c.action(rp+".action", &r.Action, groups, groupSet)
			}
			c.action(lp+".default_action", &l.DefaultAction, groups, groupSet)
		}
	}
}

func (c *checker) conditions(p string, cond *Conditions) {
	if len(cond.Path)+len(cond.Host)+len(cond.Method)+len(cond.Header)+len(cond.Query)+len(cond.SourceIP) == 0 {
		c.errf(p, "a rule that matches every request is the listener's default_action", "a rule needs at least one condition: path, host, method, header, query or source_ip")
		return
	}
	for i, v := range cond.Path {
		if !strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "*") {
			c.errf(idx(p, "path", i), "write a pattern such as /items/*", "path pattern %q must start with / or *", v)
		}
	}
	for i, v := range cond.Host {
		if v == "" {
			c.errf(idx(p, "host", i), "write a pattern such as *.example.com", "empty host pattern")
		}
	}
	for i, m := range cond.Method {
		if !isToken(m) || strings.ToUpper(m) != m {
			c.errf(idx(p, "method", i), "write an upper-case method such as GET or POST", "bad method %q", m)
		}
	}
	for _, name := range sortedKeys(cond.Header) {
		hp := join(p+".header", name)
		if !isToken(name) {
			c.errf(hp, "a header name is letters, digits and !#$%&'*+-.^_`|~", "invalid header name %q", name)
			continue
		}
		if len(cond.Header[name]) == 0 {
			c.errf(hp, "list the values to match, such as [\"beta\", \"canary-*\"]", "header %s needs at least one value", textproto.CanonicalMIMEHeaderKey(name))
		}
	}
	for _, k := range sortedKeys(cond.Query) {
		if k == "" {
			c.errf(join(p+".query", k), "write the query key, or * for any key", "empty query key")
		}
	}
	for i, s := range cond.SourceIP {
		sp := idx(p, "source_ip", i)
		if norm, msg, hint := normalizePrefix(s); msg != "" {
			c.errf(sp, hint, "%s", msg)
		} else {
			cond.SourceIP[i] = norm
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// action checks a listener action: exactly one of forward, redirect and fixed_response.
func (c *checker) action(p string, a *Action, groups []string, groupSet map[string]bool) {
	var kinds []string
	if a.Forward != nil {
		kinds = append(kinds, "forward")
	}
	if a.Redirect != nil {
		kinds = append(kinds, "redirect")
	}
	if a.FixedResponse != nil {
		kinds = append(kinds, "fixed_response")
	}
	switch {
	case len(kinds) == 0:
		if c.misspelt(p, "forward", "fixed_response", "redirect") {
			return
		}
		c.errf(p, "set forward: {target_group: NAME}, redirect: {protocol: HTTPS} or fixed_response: {status: 404}", "an action needs forward, redirect or fixed_response")
		return
	case len(kinds) > 1:
		c.errf(p, "remove all but one", "an action sets exactly one of forward, redirect and fixed_response, not %s", strings.Join(kinds, " and "))
		return
	}
	switch {
	case a.Forward != nil:
		c.forward(p+".forward", a.Forward, groups, groupSet)
	case a.Redirect != nil:
		c.redirect(p+".redirect", a.Redirect)
	default:
		fr := a.FixedResponse
		fp := p + ".fixed_response"
		if c.set(fp) && !c.set(fp+".status") {
			c.errf(fp+".status", "such as 404 or 503", "required")
		} else if fr.Status < 200 || fr.Status > 599 {
			c.errf(fp+".status", "", "status %d is not between 200 and 599", fr.Status)
		}
		if _, _, err := mime.ParseMediaType(fr.ContentType); err != nil {
			c.errf(fp+".content_type", "write a media type such as text/plain", "bad content type %q", fr.ContentType)
		}
	}
}

func (c *checker) groupRef(path, name string, groups []string, groupSet map[string]bool) {
	if c.required(path, name) && !groupSet[name] {
		c.errf(path, c.suggest(strings.SplitN(path, ".", 2)[0], name, groups, "target groups of this load balancer"), "unknown target group %q", name)
	}
}

func (c *checker) forward(fp string, f *Forward, groups []string, groupSet map[string]bool) {
	switch {
	case f.TargetGroup != "" && len(f.TargetGroups) > 0:
		c.errf(fp, "use target_groups alone, with a weight for each", "set target_group or target_groups, not both")
		return
	case len(f.TargetGroups) == 0:
		if c.misspelt(fp, "target_group", "target_groups") {
			return
		}
		c.groupRef(fp+".target_group", f.TargetGroup, groups, groupSet)
		if f.Stickiness != nil {
			c.errf(fp+".stickiness", "group stickiness needs target_groups with weights", "stickiness applies to a forward to several target groups")
		}
		return
	}
	seen := map[string]string{}
	total := 0
	for i, wg := range f.TargetGroups {
		wp := idx(fp, "target_groups", i)
		c.groupRef(wp+".name", wg.Name, groups, groupSet)
		if first, dup := seen[wg.Name]; dup && wg.Name != "" {
			c.errf(wp+".name", "list each group once", "target group %q is already listed at line %d", wg.Name, c.line(first))
		}
		seen[wg.Name] = wp + ".name"
		if wg.Weight < 0 || wg.Weight > MaxTargetGroupWeight {
			c.errf(wp+".weight", "", "weight %d is not between 0 and %d", wg.Weight, MaxTargetGroupWeight)
		}
		total += wg.Weight
	}
	if total == 0 {
		c.errf(fp+".target_groups", "give at least one group a weight above 0", "every weight is 0: no request could be forwarded")
	}
	if s := f.Stickiness; s != nil {
		c.positive(fp+".stickiness.duration", s.Duration)
	}
}

func (c *checker) redirect(rp string, r *Redirect) {
	switch r.Protocol {
	case "HTTP", "HTTPS", "#{protocol}":
	default:
		c.errf(rp+".protocol", "write HTTP, HTTPS or #{protocol}", "unknown protocol %q", r.Protocol)
	}
	if r.Host == "" {
		c.errf(rp+".host", "write a host name or #{host}", "empty host")
	}
	if r.Port != "#{port}" {
		if n, err := strconv.Atoi(r.Port); err != nil || n < 1 || n > 65535 {
			c.errf(rp+".port", "write a port 1-65535 or #{port}", "bad port %q", r.Port)
		}
	}
	if !strings.HasPrefix(r.Path, "/") {
		c.errf(rp+".path", "write a path such as /#{path} or /new/#{path}", "path %q must start with /", r.Path)
	}
	for _, part := range []struct{ key, v string }{{"protocol", r.Protocol}, {"host", r.Host}, {"port", r.Port}, {"path", r.Path}, {"query", r.Query}} {
		if msg := checkPlaceholders(part.v); msg != "" {
			c.errf(rp+"."+part.key, "the placeholders are #{protocol}, #{host}, #{port}, #{path} and #{query}", "%s", msg)
		}
	}
	if strings.HasPrefix(r.Query, "?") {
		c.errf(rp+".query", "write the query without its leading ?", "query %q starts with ?", r.Query)
	}
	statusKey := rp + ".status"
	if c.set(rp + ".status_code") {
		statusKey = rp + ".status_code"
		if c.set(rp + ".status") {
			c.errf(statusKey, "keep one of them", "status_code is another name for status: set one, not both")
		}
	}
	if r.Status != 301 && r.Status != 302 {
		c.errf(statusKey, "write 301 (permanent) or 302 (temporary)", "redirect status %d is not 301 or 302", r.Status)
	}
	if r.Protocol == "#{protocol}" && r.Host == "#{host}" && r.Port == "#{port}" && r.Path == "/#{path}" && r.Query == "#{query}" {
		c.errf(rp, "change at least one of protocol, host, port, path and query", "this redirect points at the request's own URL: clients would loop")
	}
}

// checkPlaceholders reports an unknown #{…} placeholder.
func checkPlaceholders(s string) string {
	for {
		i := strings.Index(s, "#{")
		if i < 0 {
			return ""
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return fmt.Sprintf("unterminated placeholder %q", s[i:])
		}
		switch name := s[i+2 : i+end]; name {
		case "protocol", "host", "port", "path", "query":
		default:
			return fmt.Sprintf("unknown placeholder #{%s}", name)
		}
		s = s[i+end+1:]
	}
}

func (c *checker) checkTargetGroup(p string, tg *TargetGroup) {
	if !slices.Contains(algorithms, tg.Algorithm) {
		c.errf(p+".algorithm", "write one of "+strings.Join(algorithms, ", "), "unknown algorithm %q", tg.Algorithm)
	}
	if len(tg.Targets) == 0 {
		c.errf(p+".targets", "list host:port addresses, such as [\"127.0.0.2:9001\"]", "a target group needs at least one target")
	}
	seen := map[string]string{}
	for i, t := range tg.Targets {
		tp := idx(p, "targets", i)
		if _, _, ok := c.hostPort(tp, t, false); !ok {
			continue
		}
		if first, dup := seen[t]; dup {
			c.errf(tp, "", "target %s is listed twice (first at line %d)", t, c.line(first))
		}
		seen[t] = tp
	}
	for _, addr := range sortedKeys(tg.Weights) {
		wp := join(p+".weights", addr)
		if _, ok := seen[addr]; !ok {
			c.errf(wp, c.suggest("targets of "+p, addr, tg.Targets, "targets of this group"), "%s is not a target of this group", addr)
		}
		if w := tg.Weights[addr]; w < 1 || w > MaxTargetGroupWeight {
			c.errf(wp, "", "weight %d is not between 1 and %d", w, MaxTargetGroupWeight)
		}
	}
	h := &tg.HealthCheck
	hp := p + ".health_check"
	if !strings.HasPrefix(h.Path, "/") {
		c.errf(hp+".path", "write a path such as /healthz", "health check path %q must start with /", h.Path)
	}
	c.positive(hp+".interval", h.Interval)
	c.positive(hp+".timeout", h.Timeout)
	if h.Interval.Duration > 0 && h.Timeout.Duration >= h.Interval.Duration {
		c.errf(hp+".timeout", "a check must finish before the next one starts",
			"timeout %s%s must be shorter than interval %s%s", h.Timeout.Duration, c.defaulted(hp+".timeout"), h.Interval.Duration, c.defaulted(hp+".interval"))
	}
	for _, t := range []struct {
		key string
		v   int
	}{{"healthy_threshold", h.HealthyThreshold}, {"unhealthy_threshold", h.UnhealthyThreshold}} {
		if t.v < 2 || t.v > 10 {
			c.errf(hp+"."+t.key, "", "%s %d is not between 2 and 10", t.key, t.v)
		}
	}
	if msg := checkMatcher(h.Matcher); msg != "" {
		c.errf(hp+".matcher", "write codes and ranges such as 200-399 or 200,302", "%s", msg)
	}
	if c.set(hp+".port") && (h.Port < 1 || h.Port > 65535) {
		c.errf(hp+".port", "leave it out to check the target's own port", "port %d is not between 1 and 65535", h.Port)
	}

	c.positive(p+".request_timeout", tg.RequestTimeout)
	c.targetProtocol(p, tg)
	if s := tg.Stickiness; s != nil {
		sp := p + ".stickiness"
		if c.enum(sp+".type", "stickiness type", s.Type, []string{StickinessLBCookie, StickinessAppCookie}) {
			switch s.Type {
			case StickinessAppCookie:
				if s.CookieName == "" {
					c.errf(sp+".cookie_name", "name the cookie your application sets, such as SESSIONID", "app_cookie stickiness needs cookie_name")
				} else if !isToken(s.CookieName) || strings.HasPrefix(s.CookieName, "RampartLB") {
					c.errf(sp+".cookie_name", "a cookie name is a token and must not start with RampartLB (reserved)", "bad cookie name %q", s.CookieName)
				}
			case StickinessLBCookie:
				if s.CookieName != "" {
					c.errf(sp+".cookie_name", "remove it: lb_cookie uses the load balancer's own cookie", "cookie_name applies to app_cookie stickiness only")
				}
			}
		}
		c.positive(sp+".duration", s.Duration)
		if s.Duration.Duration > 7*24*3600e9 {
			c.errf(sp+".duration", "at most 7 days, as in AWS", "duration %s is too long", s.Duration.Duration)
		}
	}
	if r := tg.Retry; r != nil {
		rp := p + ".retry"
		if r.Attempts < 1 || r.Attempts > 5 {
			c.errf(rp+".attempts", "1 means no retry; at most 5", "attempts %d is not between 1 and 5", r.Attempts)
		}
		for i, code := range r.OnStatus {
			if code < 500 || code > 599 {
				c.errf(idx(rp, "on_status", i), "retry on 5xx statuses such as 502 or 503", "status %d is not between 500 and 599", code)
			}
		}
		for i, m := range r.Methods {
			if !isToken(m) || strings.ToUpper(m) != m {
				c.errf(idx(rp, "methods", i), "write an upper-case method such as GET", "bad method %q", m)
			}
		}
	}
	if o := tg.OutlierDetection; o != nil {
		op := p + ".outlier_detection"
		if o.Consecutive5xx < 1 || o.Consecutive5xx > 1000 {
			c.errf(op+".consecutive_5xx", "", "consecutive_5xx %d is not between 1 and 1000", o.Consecutive5xx)
		}
		c.positive(op+".ejection_time", o.EjectionTime)
		if o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100 {
			c.errf(op+".max_ejection_percent", "", "max_ejection_percent %d is not between 0 and 100", o.MaxEjectionPercent)
		}
	}
}

// defaulted marks a value in a message as the default when the file does not set it.
func (c *checker) defaulted(path string) string {
	if c.set(path) {
		return ""
	}
	return " (the default)"
}

// checkMatcher checks a health check matcher: comma-separated codes and lo-hi ranges in 200..599.
func checkMatcher(m string) string {
	if m == "" {
		return "empty matcher"
	}
	for _, part := range strings.Split(m, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		l, err1 := strconv.Atoi(lo)
		h, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil {
			return fmt.Sprintf("bad matcher %q", m)
		}
		if l < 200 || h > 599 || l > h {
			return fmt.Sprintf("matcher %q: codes must be between 200 and 599, low before high", m)
		}
	}
	return ""
}

// targetProtocol checks protocol, ca_file, server_name and dns_refresh of a target group.
func (c *checker) targetProtocol(p string, tg *TargetGroup) {
	if !c.enum(p+".protocol", "target protocol", tg.Protocol, []string{ProtocolHTTP, ProtocolHTTPS}) {
		return
	}
	if tg.Protocol != ProtocolHTTPS {
		for _, k := range []struct{ key, v string }{{"ca_file", tg.CAFile}, {"server_name", tg.ServerName}} {
			if k.v != "" {
				c.errf(p+"."+k.key, "set protocol: HTTPS, or remove it", "%s applies to protocol HTTPS only", k.key)
			}
		}
	}
	if tg.ServerName != "" && !validHostname(tg.ServerName) {
		c.errf(p+".server_name", "write the DNS name in the targets' certificate, such as items.internal", "server_name %q is not a DNS name", tg.ServerName)
	}
	c.positive(p+".dns_refresh", tg.DNSRefresh)
	if d := tg.DNSRefresh.Duration; d > 0 && d < time.Second {
		c.errf(p+".dns_refresh", "at least 1s; the default is 60s", "dns_refresh %s is too short", d)
	}
}

// listenerTLSKeys checks the certificates and min_version of a load balancer listener's tls (the
// client-certificate keys are checked with origin verification).
func (c *checker) listenerTLSKeys(p string, t *ListenerTLS) {
	if t == nil {
		return
	}
	for i, cert := range t.Certificates {
		cp := idx(p, "certificates", i)
		if cert.CertFile == "" {
			c.errf(cp+".cert_file", "name the PEM certificate (chain) for this name", "required")
		}
		if cert.KeyFile == "" {
			c.errf(cp+".key_file", "name the PEM private key of cert_file", "required")
		}
	}
	c.enum(p+".min_version", "TLS version", t.MinVersion, []string{TLSVersion12, TLSVersion13})
}
