package config

import (
	"fmt"
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
	for i := range c.cfg.LoadBalancers {
		for j := range c.cfg.LoadBalancers[i].Listeners {
			t := c.cfg.LoadBalancers[i].Listeners[j].TLS
			if t == nil {
				continue
			}
			p := idx(idx("", "load_balancers", i), "listeners", j) + ".tls"
			c.required(p+".cert_file", t.CertFile)
			c.required(p+".key_file", t.KeyFile)
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
}
