package lb

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
)

// conditions is a compiled rule condition set. Conditions are ANDed; the values of one condition
// are ORed. Each header name is a condition of its own; the query pairs form one condition.
type conditions struct {
	paths    []string // case-sensitive
	hosts    []string // lower-cased
	methods  []string // exact
	headers  []headerCond
	query    []queryPair // lower-cased
	sourceIP []netip.Prefix
}

type headerCond struct {
	name   string   // canonical
	values []string // lower-cased patterns
}

type queryPair struct{ key, value string }

func newConditions(c config.Conditions) (conditions, error) {
	out := conditions{paths: c.Path, methods: c.Method}
	for _, h := range c.Host {
		out.hosts = append(out.hosts, strings.ToLower(h))
	}
	names := make([]string, 0, len(c.Header))
	for name := range c.Header {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		hc := headerCond{name: textproto.CanonicalMIMEHeaderKey(name)}
		for _, v := range c.Header[name] {
			hc.values = append(hc.values, strings.ToLower(v))
		}
		out.headers = append(out.headers, hc)
	}
	for k, v := range c.Query {
		out.query = append(out.query, queryPair{strings.ToLower(k), strings.ToLower(v)})
	}
	slices.SortFunc(out.query, func(a, b queryPair) int { return strings.Compare(a.key+"="+a.value, b.key+"="+b.value) })
	for _, s := range c.SourceIP {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return conditions{}, fmt.Errorf("source_ip %q: want a CIDR such as 10.0.0.0/8", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out.sourceIP = append(out.sourceIP, p.Masked())
	}
	return out, nil
}

func (c *conditions) match(r *http.Request) bool {
	if len(c.paths) > 0 && !anyMatch(c.paths, r.URL.Path) {
		return false
	}
	if len(c.hosts) > 0 && !anyMatch(c.hosts, strings.ToLower(hostWithoutPort(r.Host))) {
		return false
	}
	if len(c.methods) > 0 && !slices.Contains(c.methods, r.Method) {
		return false
	}
	for _, h := range c.headers {
		if !headerMatch(h, r.Header[h.name]) {
			return false
		}
	}
	if len(c.query) > 0 && !c.queryMatch(r.URL.RawQuery) {
		return false
	}
	if len(c.sourceIP) > 0 && !c.sourceMatch(r.RemoteAddr) {
		return false
	}
	return true
}

func headerMatch(h headerCond, values []string) bool {
	for _, v := range values {
		if anyMatch(h.values, strings.ToLower(v)) {
			return true
		}
	}
	return false
}

// queryMatch reports whether any query parameter matches any key/value pair. A key of * matches
// any key. Values are compared after percent-decoding, case-insensitively.
func (c *conditions) queryMatch(raw string) bool {
	q, _ := url.ParseQuery(raw) // a malformed pair is skipped, the others still count
	for k, vs := range q {
		lk := strings.ToLower(k)
		for _, v := range vs {
			lv := strings.ToLower(v)
			for _, p := range c.query {
				if wildcardMatch(p.key, lk) && wildcardMatch(p.value, lv) {
					return true
				}
			}
		}
	}
	return false
}

// sourceMatch checks the TCP peer, never X-Forwarded-For, which the client writes.
func (c *conditions) sourceMatch(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range c.sourceIP {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// redirect answers with a redirect built from the request and the configured parts.
type redirect struct {
	protocol, host, port, path, query string
	status                            int
}

func newRedirect(r *config.Redirect) (*redirect, error) {
	rd := &redirect{protocol: r.Protocol, host: r.Host, port: r.Port, path: r.Path, query: r.Query, status: r.Status}
	// Tests and callers that skip config defaults get ALB's defaults.
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&rd.protocol, "#{protocol}")
	def(&rd.host, "#{host}")
	def(&rd.port, "#{port}")
	def(&rd.path, "/#{path}")
	if rd.status == 0 {
		rd.status = config.DefaultRedirectStatus
	}
	if rd.status != http.StatusMovedPermanently && rd.status != http.StatusFound {
		return nil, fmt.Errorf("redirect status %d: want 301 or 302", rd.status)
	}
	return rd, nil
}

func (rd *redirect) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	port := "80"
	if proto == "https" {
		port = "443"
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, p, err := net.SplitHostPort(la.String()); err == nil {
			port = p
		}
	}
	vars := strings.NewReplacer(
		"#{protocol}", proto,
		"#{host}", hostWithoutPort(r.Host),
		"#{port}", port,
		"#{path}", strings.TrimPrefix(r.URL.EscapedPath(), "/"),
		"#{query}", r.URL.RawQuery,
	)
	scheme := strings.ToLower(vars.Replace(rd.protocol))
	host := vars.Replace(rd.host)
	outPort := vars.Replace(rd.port)
	path := vars.Replace(rd.path)
	query := vars.Replace(rd.query)
	if strings.HasPrefix(path, "//") {
		path = "/" + strings.TrimLeft(path, "/") // never a scheme-relative URL to another host
	}
	loc := scheme + "://"
	if (scheme == "http" && outPort == "80") || (scheme == "https" && outPort == "443") || outPort == "" {
		loc += bracket(host)
	} else {
		loc += net.JoinHostPort(host, outPort)
	}
	loc += path
	if query != "" {
		loc += "?" + query
	}
	w.Header().Set("Location", loc)
	w.WriteHeader(rd.status)
}

func bracket(host string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}

// weightedGroup is one target group of a forward action.
type weightedGroup struct {
	group  *targetGroup
	weight int
}

// forwarder sends a request to one of its target groups, by weight, keeping a client on the
// group it first got when group stickiness is on.
type forwarder struct {
	groups      []weightedGroup
	total       int
	stickCookie string        // empty: no group stickiness
	stickFor    time.Duration // cookie lifetime
	lb          *LoadBalancer
}

func (f *forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := f.choose(w, r)
	if g == nil {
		f.lb.fail(w, r, http.StatusServiceUnavailable, "Service Unavailable", reasonNoTargets)
		return
	}
	f.lb.serveGroup(w, r, g)
}

func (f *forwarder) choose(w http.ResponseWriter, r *http.Request) *targetGroup {
	if len(f.groups) == 1 {
		return f.groups[0].group
	}
	if f.stickCookie != "" {
		if c, err := r.Cookie(f.stickCookie); err == nil {
			for _, wg := range f.groups {
				if wg.weight > 0 && wg.group.name == c.Value {
					f.setGroupCookie(w, wg.group.name)
					return wg.group
				}
			}
		}
	}
	if f.total <= 0 {
		return nil
	}
	n := randIntN(f.total)
	for _, wg := range f.groups {
		if n -= wg.weight; n < 0 {
			if f.stickCookie != "" {
				f.setGroupCookie(w, wg.group.name)
			}
			return wg.group
		}
	}
	return nil
}

func (f *forwarder) setGroupCookie(w http.ResponseWriter, name string) {
	c := &http.Cookie{Name: f.stickCookie, Value: name, Path: "/", MaxAge: int(f.stickFor / time.Second), HttpOnly: true, SameSite: http.SameSiteLaxMode}
	w.Header().Add("Set-Cookie", c.String())
}

// fixedResponse answers without contacting a target.
type fixedResponse struct {
	status      int
	contentType string
	body        string
}

func (f *fixedResponse) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	switch {
	case f.contentType != "":
		h.Set("Content-Type", f.contentType)
	case f.body != "":
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(f.status)
	_, _ = w.Write([]byte(f.body))
}

// newAction compiles a rule or default action. ruleKey names the rule in group stickiness cookies.
func (lb *LoadBalancer) newAction(a config.Action, groups map[string]*targetGroup, ruleKey string) (http.Handler, error) {
	n := 0
	for _, set := range []bool{a.Forward != nil, a.FixedResponse != nil, a.Redirect != nil} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return nil, fmt.Errorf("action sets both forward and fixed_response (or redirect), want one")
	case a.Forward != nil:
		return lb.newForwarder(a.Forward, groups, ruleKey)
	case a.Redirect != nil:
		return newRedirect(a.Redirect)
	case a.FixedResponse != nil:
		fr := a.FixedResponse
		if fr.Status < 200 || fr.Status > 599 {
			return nil, fmt.Errorf("fixed_response: status %d: want 200-599", fr.Status)
		}
		return &fixedResponse{status: fr.Status, contentType: fr.ContentType, body: fr.Body}, nil
	default:
		return nil, fmt.Errorf("action sets neither forward nor fixed_response nor redirect")
	}
}

func (lb *LoadBalancer) newForwarder(fw *config.Forward, groups map[string]*targetGroup, ruleKey string) (*forwarder, error) {
	f := &forwarder{lb: lb}
	refs := fw.TargetGroups
	if fw.TargetGroup != "" {
		if len(refs) > 0 {
			return nil, fmt.Errorf("forward sets target_group and target_groups, want one")
		}
		refs = []config.WeightedTargetGroup{{Name: fw.TargetGroup, Weight: 1}}
	}
	if len(refs) == 0 {
		return nil, fmt.Errorf("forward: no target group")
	}
	for _, ref := range refs {
		g := groups[ref.Name]
		if g == nil {
			return nil, fmt.Errorf("forward: target group %q is not defined", ref.Name)
		}
		if ref.Weight < 0 || ref.Weight > config.MaxTargetGroupWeight {
			return nil, fmt.Errorf("forward: target group %q: weight %d: want 0-%d", ref.Name, ref.Weight, config.MaxTargetGroupWeight)
		}
		f.groups = append(f.groups, weightedGroup{group: g, weight: ref.Weight})
		f.total += ref.Weight
	}
	if s := fw.Stickiness; s != nil && len(f.groups) > 1 {
		f.stickCookie = "RampartLBTG-" + ruleKey
		f.stickFor = s.Duration.Duration
		if f.stickFor <= 0 {
			f.stickFor = config.DefaultGroupStickiness
		}
	}
	return f, nil
}
