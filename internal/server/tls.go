package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
)

// TLSOptions describe a TLS listener. Files are PEM.
type TLSOptions struct {
	CertFile, KeyFile string
	// ClientCAFile, when set, verifies the client certificates that clients present.
	ClientCAFile string
	// RequireClientCert fails every handshake without a certificate that ClientCAFile verifies,
	// so that a request from anyone else is never read.
	RequireClientCert bool
	// ClientSubjects, when non-empty, admits only verified client certificates whose subject,
	// in crypto/x509's RFC 2253 form ("CN=rampart-gateway,O=Rampart"), is listed.
	ClientSubjects []string
}

// ServerTLSConfig loads the files of o into a TLS config for a listener: TLS 1.2 at least, and the
// client-certificate policy o asks for.
func ServerTLSConfig(o TLSOptions) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load certificate %s and key %s: %w", o.CertFile, o.KeyFile, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if o.ClientCAFile != "" {
		pool, err := LoadCertPool(o.ClientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if o.RequireClientCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	} else if o.RequireClientCert {
		return nil, fmt.Errorf("tls: require_client_cert needs client_ca_file")
	}
	if len(o.ClientSubjects) > 0 {
		if !o.RequireClientCert {
			return nil, fmt.Errorf("tls: client_subjects needs require_client_cert")
		}
		allowed := slices.Clone(o.ClientSubjects)
		// VerifyConnection runs after chain verification, on every handshake, resumed ones too.
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
				return errors.New("client certificate not verified")
			}
			if !slices.Contains(allowed, cs.VerifiedChains[0][0].Subject.String()) {
				return errors.New("client certificate subject is not allowed")
			}
			return nil
		}
	}
	return cfg, nil
}

// ClientTLSConfig loads a TLS client config: the CA that verifies the server (system roots when
// caFile is empty) and an optional client certificate.
func ClientTLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := LoadCertPool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: load client certificate %s and key %s: %w", certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// LoadCertPool reads PEM certificates from file into a pool.
func LoadCertPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("tls: %s holds no PEM certificate", file)
	}
	return pool, nil
}
