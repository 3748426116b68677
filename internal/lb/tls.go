package lb

import (
	"crypto/tls"
	"fmt"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/server"
)

// ListenerTLSConfig builds the TLS config of an HTTPS listener: its default certificate
// (cert_file, else the first of certificates) and the others of certificates, chosen by the name
// the client asks for by SNI; min_version (TLS 1.2 unless "1.3"); HTTP/2 and HTTP/1.1 offered
// by ALPN; and the client-certificate policy (origin verification's mTLS). The topology serves
// the listener through tls.NewListener with it, then through the listener's desync guard.
func ListenerTLSConfig(t *config.ListenerTLS) (*tls.Config, error) {
	pairs := t.TLSCertificatePairs()
	if len(pairs) == 0 {
		return nil, fmt.Errorf("tls: no certificate: set cert_file and key_file, or certificates")
	}
	cfg, err := server.ServerTLSConfig(server.TLSOptions{
		CertFile:          pairs[0].CertFile,
		KeyFile:           pairs[0].KeyFile,
		ClientCAFile:      t.ClientCAFile,
		RequireClientCert: t.RequireClientCert,
		ClientSubjects:    t.ClientSubjects,
	})
	if err != nil {
		return nil, err
	}
	// crypto/tls picks the first certificate that suits the client's SNI name (and signature
	// algorithms), and Certificates[0], the default, when none does.
	// The index in errors is the one in certificates: pairs starts with cert_file when it is set.
	offset := len(pairs) - len(t.Certificates)
	for i, p := range pairs[1:] {
		cert, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: certificates[%d]: load certificate %s and key %s: %w", i+1-offset, p.CertFile, p.KeyFile, err)
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	switch t.MinVersion {
	case "", config.TLSVersion12:
		cfg.MinVersion = tls.VersionTLS12
	case config.TLSVersion13:
		cfg.MinVersion = tls.VersionTLS13
	default:
		return nil, fmt.Errorf("tls: min_version %q: want 1.2 or 1.3", t.MinVersion)
	}
	// net/http serves HTTP/2 on a connection that negotiated h2 (its Server sets that up when
	// its own TLSConfig is nil, as internal/server's is).
	cfg.NextProtos = []string{"h2", "http/1.1"}
	return cfg, nil
}
