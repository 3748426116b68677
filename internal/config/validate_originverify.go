package config

import (
	"fmt"
	"net/url"
	"strings"
)

// maxSkewLimit bounds origin_verify.max_skew: a longer window makes a captured token useful for
// longer and the replay cache larger, without helping any real clock.
const maxSkewLimit = 10 * 60 // seconds

// checkOriginVerify checks what origin verification adds to the file: the mode and skew of
// origin_verify statements, ${signed:NAME} references, and the TLS of load balancer listeners and
// gateway integrations.
func (c *checker) checkOriginVerify() {
	for i := range c.cfg.WebACLs {
		for j := range c.cfg.WebACLs[i].Rules {
			p := idx(idx("", "web_acls", i), "rules", j) + ".statement"
			c.originVerifyStatements(p, &c.cfg.WebACLs[i].Rules[j].Statement)
		}
	}
	for i := range c.cfg.Gateways {
		g := &c.cfg.Gateways[i]
		p := idx("", "gateways", i)
		for _, h := range g.RequestHeaders {
			for _, part := range h.Value.Parts {
				if part.Kind == RefSigned && len(h.Value.Parts) != 1 {
					c.errf(join(p+".request_headers", h.Name), fmt.Sprintf(`write the reference alone: %s: "${signed:%s}"`, h.Name, part.Text),
						"${signed:%s} must be the whole header value: the verifier reads the token alone", part.Text)
				}
			}
		}
		for j := range g.Routes {
			rp := idx(p, "routes", j) + ".integration"
			t := g.Routes[j].Integration.TLS
			if t == nil {
				continue
			}
			if !strings.HasPrefix(g.Routes[j].Integration.URL, "https://") {
				c.errf(rp+".tls", "write the url as https://…, or remove tls", "tls applies to an https:// integration url only")
			}
			c.certPair(rp+".tls", t.CertFile, t.KeyFile)
		}
	}
	c.mtlsPlacement()
	for i := range c.cfg.LoadBalancers {
		for j := range c.cfg.LoadBalancers[i].Listeners {
			t := c.cfg.LoadBalancers[i].Listeners[j].TLS
			if t == nil {
				continue
			}
			p := idx(idx("", "load_balancers", i), "listeners", j) + ".tls"
			if len(t.Certificates) == 0 || t.CertFile != "" || t.KeyFile != "" { // else the first of certificates is the default (validate_lb.go)
				c.required(p+".cert_file", t.CertFile)
				c.required(p+".key_file", t.KeyFile)
			}
			if len(t.ClientSubjects) > 0 && !t.RequireClientCert {
				c.errf(p+".require_client_cert", "set require_client_cert: true", "client_subjects needs require_client_cert: true, or a client without a certificate gets in")
			}
			for k, subj := range t.ClientSubjects {
				if !strings.Contains(subj, "=") {
					c.errf(idx(p, "client_subjects", k), fmt.Sprintf("write a distinguished name such as \"CN=%s\"", subj), "subject %q is not a distinguished name", subj)
				}
			}
			if t.RequireClientCert && t.ClientCAFile == "" {
				c.errf(p+".client_ca_file", "name the CA that signs client certificates, such as .rampart/certs/ca.pem (rampart certs init makes one)",
					"required when require_client_cert is true")
			}
		}
	}
}

// certPair reports a client certificate given without its key, or the other way round.
func (c *checker) certPair(p, cert, key string) {
	switch {
	case cert != "" && key == "":
		c.errf(p+".key_file", "set key_file next to cert_file", "required when cert_file is set")
	case cert == "" && key != "":
		c.errf(p+".cert_file", "set cert_file next to key_file", "required when key_file is set")
	}
}

// originVerifyStatements walks a statement tree and checks each origin_verify in it.
func (c *checker) originVerifyStatements(p string, s *Statement) {
	if s.Not != nil {
		c.originVerifyStatements(p+".not", s.Not)
	}
	for i := range s.And {
		c.originVerifyStatements(idx(p, "and", i), &s.And[i])
	}
	for i := range s.Or {
		c.originVerifyStatements(idx(p, "or", i), &s.Or[i])
	}
	if s.RateBased != nil && s.RateBased.ScopeDownStatement != nil {
		c.originVerifyStatements(p+".rate_based.scope_down_statement", s.RateBased.ScopeDownStatement)
	}
	ov := s.OriginVerify
	if ov == nil {
		return
	}
	op := p + ".origin_verify"
	signed := ov.Mode == OriginVerifySigned
	if c.set(op+".mode") && !c.enum(op+".mode", "origin_verify mode", ov.Mode, []string{OriginVerifyStatic, OriginVerifySigned}) {
		return
	}
	if c.set(op + ".max_skew") {
		switch {
		case !signed:
			c.errf(op+".max_skew", "set mode: signed, or remove max_skew", "max_skew applies to mode signed only")
		case ov.MaxSkew.Duration <= 0:
			c.errf(op+".max_skew", "write a positive duration, such as 30s", "must be greater than 0")
		case ov.MaxSkew.Seconds() > maxSkewLimit:
			c.errf(op+".max_skew", "keep clocks in sync with NTP and use at most 10m", "max_skew %s is longer than 10m", ov.MaxSkew.Duration)
		}
	}
	c.replayStore(op, ov, signed)
}

// replayStore checks where a signed statement remembers nonces: memory (the default) or a
// redis:// URL, which then needs on_store_error. The URL is never echoed: it may hold a password.
func (c *checker) replayStore(op string, ov *OriginVerifyStatement, signed bool) {
	redis := false
	if c.set(op + ".replay_store") {
		switch {
		case !signed:
			c.errf(op+".replay_store", "set mode: signed, or remove replay_store", "replay_store applies to mode signed only: a static key has no nonce")
			return
		case ov.ReplayStore == ReplayStoreMemory:
		default:
			u, err := url.Parse(ov.ReplayStore)
			if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
				c.errf(op+".replay_store", "write memory, or redis://HOST:PORT/DB (rediss:// for TLS; a password may come from ${env:NAME})",
					"replay_store must be memory or a redis:// URL")
				return
			}
			redis = true
		}
	}
	switch {
	case c.set(op+".on_store_error") && !redis:
		c.errf(op+".on_store_error", "remove it, or set replay_store: redis://HOST:PORT/DB", "on_store_error applies to a Redis replay_store only")
	case c.set(op + ".on_store_error"):
		c.enum(op+".on_store_error", "store error policy", ov.OnStoreError, []string{StoreErrorAllow, StoreErrorDeny})
	case redis:
		c.errf(op+".on_store_error", "write on_store_error: deny (refuse the request) or allow (accept it; this process still refuses its own replays)",
			"required with a Redis replay_store: say what happens when Redis cannot be reached")
	}
}

// mtlsStatement checks the subjects of an mtls statement at path sp.
func (c *checker) mtlsStatement(sp string, m *MTLSStatement) {
	for k, subj := range m.Subjects {
		if !strings.Contains(subj, "=") {
			c.errf(idx(sp, "subjects", k), fmt.Sprintf("write a distinguished name such as \"CN=%s\"", subj), "subject %q is not a distinguished name", subj)
		}
	}
}

// mtlsPlacement reports a web ACL with an mtls statement used where no client certificate is
// verified: by a gateway (its listener is plain HTTP) or by a load balancer listener without
// tls.client_ca_file. There the statement could never match.
func (c *checker) mtlsPlacement() {
	where := map[string]string{} // ACL name → path of its first mtls statement
	for i, a := range c.cfg.WebACLs {
		for j := range a.Rules {
			p := idx(idx("", "web_acls", i), "rules", j) + ".statement"
			if at := findMTLS(p, &a.Rules[j].Statement); at != "" && where[a.Name] == "" {
				where[a.Name] = at
			}
		}
	}
	if len(where) == 0 {
		return
	}
	for i, g := range c.cfg.Gateways {
		if at := where[g.WebACL]; at != "" {
			c.errf(idx("", "gateways", i)+".web_acl", "use that web ACL on a load balancer listener with tls.client_ca_file",
				"web ACL %q has an mtls statement (%s, line %d) that never matches at a gateway: its listener has no TLS", g.WebACL, at, c.line(at))
		}
	}
	for i := range c.cfg.LoadBalancers {
		for j, l := range c.cfg.LoadBalancers[i].Listeners {
			at := where[l.WebACL]
			if at == "" || (l.TLS != nil && l.TLS.ClientCAFile != "") {
				continue
			}
			c.errf(idx(idx("", "load_balancers", i), "listeners", j)+".web_acl", "add tls: {cert_file: …, key_file: …, client_ca_file: …} to the listener (rampart certs init makes them)",
				"web ACL %q has an mtls statement (%s, line %d) that never matches here: this listener verifies no client certificate", l.WebACL, at, c.line(at))
		}
	}
}

// findMTLS returns the path of the first mtls statement in s, or "".
func findMTLS(p string, s *Statement) string {
	switch {
	case s.MTLS != nil:
		return p + ".mtls"
	case s.Not != nil:
		return findMTLS(p+".not", s.Not)
	case s.RateBased != nil && s.RateBased.ScopeDownStatement != nil:
		return findMTLS(p+".rate_based.scope_down_statement", s.RateBased.ScopeDownStatement)
	}
	for i := range s.And {
		if at := findMTLS(idx(p, "and", i), &s.And[i]); at != "" {
			return at
		}
	}
	for i := range s.Or {
		if at := findMTLS(idx(p, "or", i), &s.Or[i]); at != "" {
			return at
		}
	}
	return ""
}
