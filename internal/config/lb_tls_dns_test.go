package config

import (
	"testing"
	"time"
)

// The load balancer keys of HTTPS listeners, HTTPS and DNS targets parse, and their defaults
// apply (docs/load-balancer.md).
func TestLBTLSAndDNSKeys(t *testing.T) {
	const file = `version: 1
load_balancers:
  - name: alb
    listeners:
      - listen: 127.0.0.1:8443
        tls:
          certificates: [{cert_file: a.pem, key_file: a.key}, {cert_file: b.pem, key_file: b.key}]
        default_action: {forward: {target_group: secure}}
      - listen: 127.0.0.1:8444
        tls: {cert_file: d.pem, key_file: d.key, min_version: 1.3}
        default_action: {forward: {target_group: plain}}
      - listen: 127.0.0.1:8080
        default_action: {redirect: {protocol: HTTPS, port: "443", status_code: 302}}
    target_groups:
      - name: secure
        protocol: HTTPS
        ca_file: ca.pem
        server_name: items.internal
        dns_refresh: 10s
        targets: ["items.internal:9443"]
      - name: plain
        targets: ["127.0.0.2:9001"]
`
	cfg, err := Parse("lb.yaml", []byte(file), lookupTestEnv)
	if err != nil {
		t.Fatalf("valid file rejected:\n%v", err)
	}
	lb := cfg.LoadBalancers[0]
	if tls := lb.Listeners[0].TLS; tls.MinVersion != TLSVersion12 || len(tls.TLSCertificatePairs()) != 2 || tls.TLSCertificatePairs()[0].CertFile != "a.pem" {
		t.Errorf("listener 0 tls = %+v, want min_version 1.2 and a.pem as the default certificate", tls)
	}
	if got := lb.Listeners[1].TLS.MinVersion; got != TLSVersion13 {
		t.Errorf("min_version: 1.3 (unquoted) = %q", got)
	}
	if pairs := lb.Listeners[1].TLS.TLSCertificatePairs(); len(pairs) != 1 || pairs[0].CertFile != "d.pem" {
		t.Errorf("cert_file alone = %+v", pairs)
	}
	if r := lb.Listeners[2].DefaultAction.Redirect; r.Status != 302 || r.Path != "/#{path}" {
		t.Errorf("status_code: 302 gave %+v", r)
	}
	secure, plain := lb.TargetGroups[0], lb.TargetGroups[1]
	if secure.Protocol != ProtocolHTTPS || secure.CAFile != "ca.pem" || secure.ServerName != "items.internal" || secure.DNSRefresh.Duration != 10*time.Second {
		t.Errorf("secure group = %+v", secure)
	}
	if plain.Protocol != ProtocolHTTP || plain.DNSRefresh.Duration != DefaultDNSRefresh {
		t.Errorf("defaults: protocol %q, dns_refresh %v", plain.Protocol, plain.DNSRefresh)
	}
}
