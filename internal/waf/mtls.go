package waf

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rampart-edge/rampart/internal/config"
)

// mtlsCond matches a request that came over TLS with a client certificate the listener verified
// (tls.client_ca_file) and, when subjects are listed, whose subject is one of them, compared as
// the listener's client_subjects are: the RFC 2253 string of crypto/x509. A certificate the
// listener did not verify (no client_ca_file) never matches, whatever it claims.
func mtlsCond(s config.MTLSStatement, at string) (cond, error) {
	for i, subj := range s.Subjects {
		if !strings.Contains(subj, "=") {
			return nil, fmt.Errorf("%s.subjects[%d]: %q is not a distinguished name", at, i, subj)
		}
	}
	subjects := slices.Clone(s.Subjects)
	return func(ec *evalCtx) bool {
		st := ec.r.TLS
		if st == nil || len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
			return false
		}
		subject := st.VerifiedChains[0][0].Subject.String()
		if len(subjects) > 0 && !slices.Contains(subjects, subject) {
			return false
		}
		ec.hit = hit{field: "client_cert_subject", value: subject, set: true}
		return true
	}, nil
}
