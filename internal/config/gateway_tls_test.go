package config

import (
	"strings"
	"testing"
)

// A gateway's tls has the keys of a load balancer listener's: certificates (chosen by SNI, the
// first the default when cert_file is left out) and min_version (1.2 unless it says 1.3).
func TestGatewayTLSKeys(t *testing.T) {
	for _, tc := range []struct {
		name, tls string
		want      []string // error substrings; none: valid
		min       string
	}{
		{name: "certificates only", tls: `{certificates: [{cert_file: a.pem, key_file: a.key}, {cert_file: b.pem, key_file: b.key}]}`, min: "1.2"},
		{name: "cert_file and 1.3", tls: `{cert_file: a.pem, key_file: a.key, min_version: "1.3"}`, min: "1.3"},
		{name: "bad min_version", tls: `{cert_file: a.pem, key_file: a.key, min_version: "1.1"}`,
			want: []string{`gateways[0].tls.min_version: unknown TLS version "1.1"`}},
		{name: "certificate without key", tls: `{certificates: [{cert_file: a.pem}]}`,
			want: []string{"gateways[0].tls.certificates[0].key_file: required"}},
		{name: "no certificate", tls: `{min_version: "1.3"}`,
			want: []string{"gateways[0].tls.cert_file: required", "gateways[0].tls.key_file: required"}},
		{name: "cert_file without key_file next to certificates", tls: `{cert_file: a.pem, certificates: [{cert_file: b.pem, key_file: b.key}]}`,
			want: []string{"gateways[0].tls.key_file: required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("t.yaml", []byte(`
gateways:
  - name: api
    listen: 127.0.0.1:8443
    tls: `+tc.tls+`
    routes: [{path: /a, methods: [GET], integration: {url: "http://127.0.0.1:1"}}]
`), nil)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if got := cfg.Gateways[0].TLS.MinVersion; got != tc.min {
					t.Fatalf("min_version %q, want %q", got, tc.min)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
