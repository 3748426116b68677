package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

const listenHint = "write host:port, such as 127.0.0.1:8080"

// checker validates a decoded, defaulted Config. It reports through the decoder so that errors
// land at the positions recorded while decoding.
type checker struct {
	*decoder
	cfg *Config

	listens []listenUse
	secrets []string          // sorted secret names, computed once
	hints   map[string]string // did-you-mean hints already computed, by list and name
	// skip, when set, says that the checks of path are not reported: it lies in a part of the
	// file that a narrower Scope does not use and whose values it could not all resolve (scope.go).
	skip func(path string) bool
}

// suggest is didYouMean with a memory: a file that aliases one bad reference many times costs
// one search, not one per copy.
func (c *checker) suggest(kind, got string, candidates []string, what string) string {
	key := kind + "\x00" + got
	if h, ok := c.hints[key]; ok {
		return h
	}
	if c.hints == nil {
		c.hints = map[string]string{}
	}
	h := didYouMean(got, candidates, what)
	c.hints[key] = h
	return h
}

// listenUse is one address some component listens on, for the whole-file duplicate check.
type listenUse struct {
	path       string
	addr       string
	host, port string
}

// errf records an error at path's position, unless path (or a key above it) already failed to
// decode: one mistake gets one message.
func (c *checker) errf(path, hint, format string, args ...any) {
	if c.skip != nil && c.skip(path) {
		return
	}
	for p := path; ; p = parent(p) {
		if c.bad[p] {
			return
		}
		if p == "" {
			break
		}
	}
	c.errAt(c.at(path), path, hint, format, args...)
}

// at is the position of path's value, else of its key, else of the nearest enclosing value.
func (c *checker) at(path string) position {
	for p := path; ; p = parent(p) {
		if pos, ok := c.pos[p]; ok {
			return pos
		}
		if pos, ok := c.keyPos[p]; ok {
			return pos
		}
		if p == "" {
			return position{1, 1}
		}
	}
}

// parent strips the last .key or [index] from a path.
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// set reports whether the file gives path a non-null value.
func (c *checker) set(path string) bool {
	_, ok := c.pos[path]
	return ok
}

// misspelt reports whether one of the keys under path was reported as misspelt, so that a
// "needs one of" error would only repeat it.
func (c *checker) misspelt(path string, keys ...string) bool {
	for _, k := range keys {
		if c.bad[join(path, k)] {
			return true
		}
	}
	return false
}

// line is the line of path, for messages that point back at an earlier definition.
func (c *checker) line(path string) int { return c.at(path).line }

func idx(path, key string, i int) string { return fmt.Sprintf("%s[%d]", join(path, key), i) }

func (c *checker) check() {
	cfg := c.cfg
	if c.set("version") && cfg.Version != DefaultVersion {
		c.errf("version", "this build reads version: 1", "unsupported version %d", cfg.Version)
	}
	if len(cfg.Gateways)+len(cfg.LoadBalancers)+len(cfg.Apps) == 0 && cfg.Web == nil && cfg.Admin == nil && len(c.errs) == 0 {
		c.errf("", "start from examples/rampart.yaml", "nothing to run: define gateways, load_balancers, apps, web or admin")
	}
	c.checkSecrets()
	c.checkGateways()
	c.checkWebACLs()
	c.checkOriginVerify() // validate_originverify.go
	c.checkLoadBalancers()
	c.checkApps()
	c.checkTracing() // validate_observe.go
	if cfg.Web != nil {
		c.listen("web.listen", cfg.Web.Listen)
		if c.set("web.gateway_url") {
			c.httpURL("web.gateway_url", cfg.Web.GatewayURL, "the gateway URL")
		} else if len(cfg.Gateways) == 0 {
			c.errf("web.gateway_url", "set gateway_url, or define a gateway", "required when no gateway is defined")
		}
	}
	if cfg.Admin != nil {
		c.listen("admin.listen", cfg.Admin.Listen)
		c.checkAdmin() // validate_admin.go
	}
	c.checkListenConflicts()
}

// required reports an empty string value and says whether the value is present.
func (c *checker) required(path, v string) bool {
	if v == "" {
		c.errf(path, "", "required")
		return false
	}
	return true
}

// unique reports a name that an earlier entry already uses. seen maps names to their paths.
func (c *checker) unique(seen map[string]string, path, name, what string) {
	if name == "" {
		return
	}
	if first, dup := seen[name]; dup {
		c.errf(path, "names must be unique", "duplicate %s name %q (first defined at line %d)", what, name, c.line(first))
		return
	}
	seen[name] = path
}

// secretNames returns the defined secret names, sorted.
func (c *checker) secretNames() []string {
	if c.secrets != nil {
		return c.secrets
	}
	names := make([]string, 0, len(c.cfg.Secrets))
	for n := range c.cfg.Secrets {
		names = append(names, n)
	}
	slices.Sort(names)
	c.secrets = names
	return names
}

// secretRef checks a reference to a keyring by name.
func (c *checker) secretRef(path, name string) {
	if _, ok := c.cfg.Secrets[name]; !ok {
		c.errf(path, c.suggest("secret", name, c.secretNames(), "defined secrets"), "unknown secret %q", name)
	}
}

func (c *checker) checkSecrets() {
	for _, name := range c.secretNames() {
		p := join("secrets", name)
		if !validName(name) {
			c.errf(p, "use letters, digits, '-', '_' and '.'", "invalid secret name %q", name)
		}
		c.required(p+".file", c.cfg.Secrets[name].File)
	}
}

// validName reports whether a secret name can be written inside ${secret:NAME}.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// listen checks a host:port listen address and remembers it for the duplicate check.
func (c *checker) listen(path, addr string) {
	if !c.required(path, addr) {
		return
	}
	host, port, ok := c.hostPort(path, addr, true)
	if ok {
		c.listens = append(c.listens, listenUse{path: path, addr: addr, host: strings.ToLower(host), port: port})
	}
}

// hostPort checks host:port. The host may be an IP, a DNS name or (for listen addresses, when
// allowEmpty) empty, meaning every interface; the port is a number, and port 0 (any free port) is
// allowed only for listen addresses.
func (c *checker) hostPort(path, addr string, listen bool) (host, port string, ok bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		hint := listenHint
		if strings.Count(addr, ":") > 1 && !strings.HasPrefix(addr, "[") {
			hint = "put an IPv6 address in brackets: [::1]:8080"
		}
		c.errf(path, hint, "%q is not host:port", addr)
		return "", "", false
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !listen) {
		c.errf(path, listenHint, "bad port %q in %q", port, addr)
		return "", "", false
	}
	if host == "" && !listen {
		c.errf(path, "write host:port, such as 127.0.0.1:9001", "%q has no host", addr)
		return "", "", false
	}
	if _, err := netip.ParseAddr(host); host != "" && err != nil && !validHostname(host) {
		c.errf(path, listenHint, "bad host %q in %q", host, addr)
		return "", "", false
	}
	return host, port, true
}

// validHostname reports whether s is a DNS name: dot-separated labels of letters, digits and '-'.
func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// checkListenConflicts reports two components listening on the same address. A wildcard host
// (empty, 0.0.0.0 or ::) conflicts with every host on the same port; port 0 never conflicts.
func (c *checker) checkListenConflicts() {
	type portUses struct {
		byHost   map[string]string // host → path of its first use
		first    string            // path of the first use of the port
		wildcard string            // path of the first wildcard use, if any
	}
	ports := map[string]*portUses{}
	for _, u := range c.listens {
		if u.port == "0" {
			continue
		}
		pu := ports[u.port]
		if pu == nil {
			pu = &portUses{byHost: map[string]string{}}
			ports[u.port] = pu
		}
		a, err := netip.ParseAddr(u.host)
		wild := u.host == "" || (err == nil && a.IsUnspecified())
		prev := pu.wildcard
		if prev == "" {
			prev = pu.byHost[u.host]
		}
		if prev == "" && wild {
			prev = pu.first
		}
		if prev != "" {
			c.errf(u.path, "give each listener its own address", "listen address %s is already used by %s (line %d)", u.addr, prev, c.line(prev))
			continue
		}
		pu.byHost[u.host] = u.path
		if pu.first == "" {
			pu.first = u.path
		}
		if wild {
			pu.wildcard = u.path
		}
	}
}

// httpURL checks an absolute http(s) URL. The URL is not echoed: it may hold credentials.
func (c *checker) httpURL(path, raw, what string) bool {
	if !c.required(path, raw) {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		c.errf(path, "write an absolute URL such as http://127.0.0.1:8081", "%s must be an absolute http:// or https:// URL", what)
		return false
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		c.errf(path, "remove the #fragment", "%s must not have a fragment", what)
		return false
	}
	return true
}

// enum checks that v is one of valid, hinting at the nearest value.
func (c *checker) enum(path, what, v string, valid []string) bool {
	if slices.Contains(valid, v) {
		return true
	}
	list := strings.Join(valid, ", ")
	hint := "use one of " + list
	if s, ok := closest(v, valid); ok {
		hint = fmt.Sprintf("did you mean %q? (one of %s)", s, list)
	}
	c.errf(path, hint, "unknown %s %q", what, v)
	return false
}

// positive reports a duration written as zero where zero makes no sense.
func (c *checker) positive(path string, d Duration) {
	if c.set(path) && d.Duration <= 0 {
		c.errf(path, "write a positive duration, such as 5s", "must be greater than 0")
	}
}

// method checks an HTTP method name.
func (c *checker) method(path, m string) {
	switch {
	case m == "*" || m == "ANY":
		c.errf(path, "list the methods, such as [GET, POST]", "method %q is not a wildcard here", m)
	case !isToken(m):
		c.errf(path, "a method is a token such as GET or POST", "invalid method %q", m)
	case strings.ToUpper(m) != m:
		c.errf(path, fmt.Sprintf("methods are case-sensitive: write %s", strings.ToUpper(m)), "method %q must be uppercase", m)
	}
}

// methods checks a method list: each valid, none repeated.
func (c *checker) methods(path string, ms []string) {
	seen := map[string]bool{}
	for i, m := range ms {
		p := fmt.Sprintf("%s[%d]", path, i)
		c.method(p, m)
		if seen[m] {
			c.errf(p, "", "method %s is listed twice", m)
		}
		seen[m] = true
	}
}

func (c *checker) checkGateways() {
	names := map[string]string{}
	for i := range c.cfg.Gateways {
		g := &c.cfg.Gateways[i]
		p := idx("", "gateways", i)
		if c.required(p+".name", g.Name) {
			c.unique(names, p+".name", g.Name, "gateway")
		}
		c.listen(p+".listen", g.Listen)
		c.positive(p+".integration_timeout", g.IntegrationTimeout)
		c.checkCORS(p+".cors", &g.CORS)
		for _, h := range g.RequestHeaders {
			hp := join(p+".request_headers", h.Name)
			for _, s := range h.Value.Secrets() {
				c.secretRef(hp, s)
			}
		}
		c.checkRoutes(p, g.Routes)
		c.checkGatewayAccess(p, g) // validate_gateway.go
	}
}

func (c *checker) checkCORS(p string, cors *CORS) {
	c.enum(p+".mode", "CORS mode", cors.Mode, []string{CORSEnforce, CORSStandard, CORSShadow})
	seen := map[string]string{}
	for i, o := range cors.AllowOrigins {
		op := idx(p, "allow_origins", i)
		if o == "*" {
			if cors.AllowCredentials {
				c.errf(op, "list the origins, such as [\"https://app.example.com\"]; browsers refuse * on credentialed requests", "origin * cannot be used with allow_credentials: true")
			}
		} else if msg, hint := checkOrigin(o); msg != "" {
			c.errf(op, hint, "%s", msg)
			continue
		}
		if first, dup := seen[o]; dup {
			c.errf(op, "", "origin %q is listed twice (first at line %d)", o, c.line(first))
		}
		seen[o] = op
	}
	if c.set(p + ".allow_methods") {
		// The default is the routes' methods, which the route checks already cover.
		c.methods(p+".allow_methods", cors.AllowMethods)
	}
	for _, list := range []struct {
		key  string
		vals []string
	}{{"allow_headers", cors.AllowHeaders}, {"expose_headers", cors.ExposeHeaders}} {
		for i, h := range list.vals {
			if h != "*" && !isToken(h) {
				c.errf(idx(p, list.key, i), "a header name is letters, digits and !#$%&'*+-.^_`|~", "invalid header name %q", h)
			}
		}
	}
}

// checkOrigin checks one allow_origins entry other than "*". It returns the message and hint for
// a bad one, or an empty message.
func checkOrigin(o string) (msg, hint string) {
	const example = "write an origin such as https://app.example.com"
	if o == "null" {
		return `origin "null" cannot be allowed`, "sandboxed iframes, file:// pages and some redirects all send Origin: null, so allowing it allows all of them"
	}
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok || scheme == "" {
		return fmt.Sprintf("origin %q is not scheme://host[:port]", o), example
	}
	if lower := strings.ToLower(o); lower != o {
		return fmt.Sprintf("origin %q must be lowercase", o), fmt.Sprintf("browsers send origins in lowercase: write %s", lower)
	}
	for i, r := range scheme {
		if !(r >= 'a' && r <= 'z' || i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.')) {
			return fmt.Sprintf("origin %q has an invalid scheme", o), example
		}
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		return fmt.Sprintf("origin %q has a path", o), fmt.Sprintf("an origin is scheme://host[:port] with no path, not even /: write %s://%s", scheme, rest[:i])
	}
	if strings.Contains(rest, "@") {
		return fmt.Sprintf("origin %q has user information", o), example
	}
	host, port := rest, ""
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return fmt.Sprintf("origin %q has an unclosed [", o), example
		}
		host = rest[1:end]
		after := rest[end+1:]
		if after != "" {
			var ok bool
			if port, ok = strings.CutPrefix(after, ":"); !ok {
				return fmt.Sprintf("origin %q is not scheme://host[:port]", o), example
			}
		}
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Zone() != "" {
			return fmt.Sprintf("origin %q has a bad IPv6 address", o), example
		}
	} else if h, p, ok := strings.Cut(rest, ":"); ok {
		host, port = h, p
	}
	if port != "" || strings.HasSuffix(rest, ":") {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return fmt.Sprintf("origin %q has a bad port", o), "a port is a number from 1 to 65535"
		}
	}
	if strings.HasPrefix(rest, "[") {
		return "", ""
	}
	if host == "" {
		return fmt.Sprintf("origin %q has no host", o), example
	}
	if strings.Contains(host, "*") {
		wildHint := fmt.Sprintf("a wildcard is a whole leftmost label: write %s://*.example.com", scheme)
		labels := strings.Split(host, ".")
		if labels[0] != "*" || strings.Contains(strings.Join(labels[1:], "."), "*") {
			return fmt.Sprintf("wildcard in origin %q must be a whole leftmost DNS label", o), wildHint
		}
		if len(labels) < 3 {
			return fmt.Sprintf("wildcard origin %q would match every site under a top-level domain", o), wildHint
		}
		host = strings.Join(labels[1:], ".")
		if _, err := netip.ParseAddr(host); err == nil {
			return fmt.Sprintf("wildcard origin %q is over an IP address", o), wildHint
		}
	}
	if !originHost(host) {
		return fmt.Sprintf("origin %q has a bad host", o), example
	}
	return "", ""
}

// originHost reports whether h is the host of an origin: an IPv4 address, or DNS labels of
// letters, digits, '-' and '_' whose last label is not all digits. It agrees with the cors
// package, so that what passes here is what the gateway accepts.
func originHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		a, err := netip.ParseAddr(h)
		return err == nil && a.Is4()
	}
	return true
}

func (c *checker) checkRoutes(gp string, routes []Route) {
	byShape := map[string]map[string]string{} // shape → method → path of the route that has it
	for i := range routes {
		r := &routes[i]
		p := idx(gp, "routes", i)
		shape, ok := c.routePath(p+".path", r.Path)
		if len(r.Methods) == 0 {
			if !c.set(p + ".methods") {
				c.errf(p+".methods", "list the methods, such as [GET, POST]", "required")
			} else {
				c.errf(p+".methods", "list the methods, such as [GET, POST]", "a route needs at least one method")
			}
		}
		c.methods(p+".methods", r.Methods)
		if ok {
			if byShape[shape] == nil {
				byShape[shape] = map[string]string{}
			}
			for j, m := range r.Methods {
				if first, dup := byShape[shape][m]; dup && first != p {
					c.errf(fmt.Sprintf("%s.methods[%d]", p, j), "remove one of the two, or give them different paths",
						"%s %s is already routed by %s (line %d)", m, r.Path, first, c.line(first))
					continue
				}
				byShape[shape][m] = p
			}
		}
		c.httpURL(p+".integration.url", r.Integration.URL, "integration.url")
		c.positive(p+".integration.timeout", r.Integration.Timeout)
	}
}

// routePath checks a route path template and returns its shape: the path with every {param}
// replaced by {}, so that /items/{id} and /items/{key} are seen as the same route.
func (c *checker) routePath(path, tmpl string) (string, bool) {
	if !c.required(path, tmpl) {
		return "", false
	}
	if !strings.HasPrefix(tmpl, "/") {
		c.errf(path, "write /"+tmpl, "route path %q must start with /", tmpl)
		return "", false
	}
	if strings.ContainsAny(tmpl, "?#") {
		c.errf(path, "match on the path only", "route path %q must not have a query or fragment", tmpl)
		return "", false
	}
	if tmpl == "/" {
		return tmpl, true
	}
	segs := strings.Split(tmpl[1:], "/")
	params := map[string]bool{}
	for i, s := range segs {
		if s == "" {
			// The gateway matches cleaned paths, which never have an empty segment.
			c.errf(path, "write /a/b, not /a//b or /a/", "route path %q has an empty segment", tmpl)
			return "", false
		}
		if s == "." || s == ".." {
			c.errf(path, "write the path without . and .. segments", "route path %q has a %s segment", tmpl, s)
			return "", false
		}
		if !strings.ContainsAny(s, "{}") {
			continue
		}
		name, ok := strings.CutPrefix(s, "{")
		if ok {
			name, ok = strings.CutSuffix(name, "}")
		}
		if !ok || strings.ContainsAny(name, "{}") {
			c.errf(path, "a parameter is a whole segment, such as /items/{id}", "parameter in %q must be a whole path segment", tmpl)
			return "", false
		}
		if !paramName(name) {
			c.errf(path, "a parameter name is letters, digits and _, such as {id}", "bad parameter name %q in %q", name, tmpl)
			return "", false
		}
		if params[name] {
			c.errf(path, "give each parameter its own name", "parameter {%s} appears twice in %q", name, tmpl)
			return "", false
		}
		params[name] = true
		segs[i] = "{}"
	}
	return "/" + strings.Join(segs, "/"), true
}

func paramName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func (c *checker) webACLNames() []string {
	var names []string
	for _, a := range c.cfg.WebACLs {
		if a.Name != "" && !slices.Contains(names, a.Name) {
			names = append(names, a.Name)
		}
	}
	return names
}

func (c *checker) checkWebACLs() {
	names := map[string]string{}
	for i := range c.cfg.WebACLs {
		a := &c.cfg.WebACLs[i]
		p := idx("", "web_acls", i)
		if c.required(p+".name", a.Name) {
			c.unique(names, p+".name", a.Name, "web ACL")
		}
		c.enum(p+".default_action", "default action", a.DefaultAction, []string{ActionAllow, ActionBlock})
		ruleNames := map[string]string{}
		priorities := map[int]string{}
		for j := range a.Rules {
			r := &a.Rules[j]
			rp := idx(p, "rules", j)
			if c.required(rp+".name", r.Name) {
				c.unique(ruleNames, rp+".name", r.Name, "rule")
			}
			c.priority(priorities, rp+".priority", r.Priority, 0)
			c.enum(rp+".action", "rule action", r.Action, []string{ActionAllow, ActionBlock, ActionCount})
			c.statement(rp+".statement", &r.Statement)
			c.wafRule(rp, a, r)
		}
		c.webACLOptions(p, a)
	}
	c.gatewayWebACLs()
}

// priority checks a rule priority: present, at least min, at most 50000 (as in AWS), unique.
func (c *checker) priority(seen map[int]string, path string, v, min int) {
	if !c.set(path) {
		c.errf(path, "rules are evaluated by priority, lowest first", "required")
		return
	}
	if v < min || v > 50000 {
		c.errf(path, "", "priority %d is not between %d and 50000", v, min)
		return
	}
	if first, dup := seen[v]; dup {
		c.errf(path, "give each rule its own priority", "priority %d is already used by %s (line %d)", v, first, c.line(first))
		return
	}
	seen[v] = path
}

// statement checks a WAF statement: exactly one kind, and that kind's fields.
func (c *checker) statement(p string, s *Statement) {
	var kinds []string
	if s.Not != nil {
		kinds = append(kinds, "not")
	}
	if c.set(p+".and") || s.And != nil {
		kinds = append(kinds, "and")
	}
	if c.set(p+".or") || s.Or != nil {
		kinds = append(kinds, "or")
	}
	if s.OriginVerify != nil {
		kinds = append(kinds, "origin_verify")
	}
	if s.ByteMatch != nil {
		kinds = append(kinds, "byte_match")
	}
	kinds = append(kinds, wafStatementKinds(s)...)
	all := strings.Join(statementKinds, ", ")
	switch len(kinds) {
	case 0:
		if c.misspelt(p, statementKinds...) {
			return
		}
		c.errf(p, "set one of "+all, "a statement needs exactly one kind")
		return
	case 1:
	default:
		c.errf(p, "split them with and: [...] or or: [...]", "a statement sets exactly one of %s; this one sets %s", all, strings.Join(kinds, " and "))
		return
	}
	switch kinds[0] {
	case "not":
		c.statement(p+".not", s.Not)
	case "and", "or":
		list := s.And
		if kinds[0] == "or" {
			list = s.Or
		}
		if len(list) < 2 {
			c.errf(p+"."+kinds[0], "with one statement, write that statement without "+kinds[0], "%s needs at least two statements", kinds[0])
		}
		for i := range list {
			c.statement(idx(p, kinds[0], i), &list[i])
		}
	case "origin_verify":
		ov := s.OriginVerify
		op := p + ".origin_verify"
		if c.required(op+".header", ov.Header) && !isToken(ov.Header) {
			c.errf(op+".header", "", "invalid header name %q", ov.Header)
		}
		if c.required(op+".secret", ov.Secret) {
			c.secretRef(op+".secret", ov.Secret)
		}
	case "byte_match":
		c.byteMatch(p+".byte_match", s.ByteMatch)
	default:
		c.wafStatement(p, kinds[0], s)
	}
}

// checkLoadBalancers and its helpers are in validate_lb.go.

func (c *checker) checkApps() {
	names := map[string]string{}
	for i := range c.cfg.Apps {
		a := &c.cfg.Apps[i]
		p := idx("", "apps", i)
		if c.required(p+".name", a.Name) {
			c.unique(names, p+".name", a.Name, "app")
		}
		if len(a.Listen) == 0 {
			c.errf(p+".listen", "list host:port addresses, such as [\"127.0.0.2:9001\"]", "an app needs at least one listen address")
		}
		for j, l := range a.Listen {
			c.listen(idx(p, "listen", j), l)
		}
		for j, s := range a.AllowFrom {
			ap := idx(p, "allow_from", j)
			if norm, msg, hint := normalizePrefix(s); msg != "" {
				c.errf(ap, hint, "%s", msg)
			} else {
				a.AllowFrom[j] = norm
			}
		}
		if a.Database != "" {
			if msg := checkDatabase(a.Database); msg != "" {
				c.errf(p+".database", "write sqlite:PATH or postgres://user@host/db", "%s", msg)
			}
		}
	}
}

// normalizePrefix reads a CIDR or a bare IP (a /32 or /128) and returns it in CIDR form.
func normalizePrefix(s string) (norm, msg, hint string) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()).String(), "", ""
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return "", fmt.Sprintf("%q is not a CIDR or an IP address", s), "write a CIDR such as 10.0.0.0/8, or an IP such as 127.0.0.3"
	}
	if pfx.Masked() != pfx {
		return "", fmt.Sprintf("%q has bits set after the prefix length", s), "write " + pfx.Masked().String()
	}
	return pfx.String(), "", ""
}

// checkDatabase checks a database reference without echoing it: a URL may hold a password.
func checkDatabase(db string) string {
	if path, ok := strings.CutPrefix(db, "sqlite:"); ok {
		if path == "" {
			return "sqlite: needs a file path"
		}
		return ""
	}
	if strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://") {
		if _, err := url.Parse(db); err != nil {
			return "the postgres URL does not parse"
		}
		return ""
	}
	return "database must be sqlite:PATH or a postgres:// URL"
}
