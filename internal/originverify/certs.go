package originverify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CertOptions tune WriteCertificates.
type CertOptions struct {
	// GatewayName is the common name of the gateway's client certificate, which an mtls
	// statement can require (default "rampart-gateway").
	GatewayName string
	// LBHosts are the DNS names and IP addresses the load balancer's certificate is valid for
	// (default 127.0.0.1, ::1 and localhost).
	LBHosts []string
	// Validity is how long the certificates are valid (default one year).
	Validity time.Duration
	// Overwrite replaces existing files; without it WriteCertificates refuses to touch them.
	Overwrite bool
}

// CertFiles are the files WriteCertificates makes, each a PEM file.
type CertFiles struct {
	CA, CAKey           string // the private CA; its key signs nothing else and can go offline
	Gateway, GatewayKey string // the gateway's client certificate (integration tls)
	LB, LBKey           string // the load balancer's server certificate (listener tls)
}

// Organization is the O= of every certificate WriteCertificates makes.
const Organization = "Rampart"

// WriteCertificates creates in dir a private CA and two leaf certificates signed by it: a client
// certificate for the gateway and a server certificate for the load balancer, all ECDSA P-256.
// Private keys are written with mode 0600, the directory with 0700.
func WriteCertificates(dir string, o CertOptions) (CertFiles, error) {
	if o.GatewayName == "" {
		o.GatewayName = "rampart-gateway"
	}
	if len(o.LBHosts) == 0 {
		o.LBHosts = []string{"127.0.0.1", "::1", "localhost"}
	}
	if o.Validity <= 0 {
		o.Validity = 365 * 24 * time.Hour
	}
	files := CertFiles{
		CA: filepath.Join(dir, "ca.pem"), CAKey: filepath.Join(dir, "ca-key.pem"),
		Gateway: filepath.Join(dir, "gateway.pem"), GatewayKey: filepath.Join(dir, "gateway-key.pem"),
		LB: filepath.Join(dir, "lb.pem"), LBKey: filepath.Join(dir, "lb-key.pem"),
	}
	if !o.Overwrite {
		for _, f := range []string{files.CA, files.CAKey, files.Gateway, files.GatewayKey, files.LB, files.LBKey} {
			if _, err := os.Stat(f); err == nil {
				return CertFiles{}, fmt.Errorf("%s already exists; remove it or overwrite explicitly", f)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return CertFiles{}, err
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return CertFiles{}, err
	}
	now := time.Now().Add(-5 * time.Minute) // tolerate a little clock skew between hosts
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return CertFiles{}, err
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "Rampart private CA", Organization: []string{Organization}},
		NotBefore:             now,
		NotAfter:              now.Add(o.Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, caCert, err := sign(caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return CertFiles{}, err
	}
	leaf := func(cn string, usage x509.ExtKeyUsage, hosts []string, certFile, keyFile string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			Subject:     pkix.Name{CommonName: cn, Organization: []string{Organization}},
			NotBefore:   now,
			NotAfter:    now.Add(o.Validity),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
		der, _, err := sign(tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		if err := writeKey(keyFile, key); err != nil {
			return err
		}
		return writePEM(certFile, "CERTIFICATE", der, 0o644)
	}
	if err := writeKey(files.CAKey, caKey); err != nil {
		return CertFiles{}, err
	}
	if err := writePEM(files.CA, "CERTIFICATE", caDER, 0o644); err != nil {
		return CertFiles{}, err
	}
	if err := leaf(o.GatewayName, x509.ExtKeyUsageClientAuth, nil, files.Gateway, files.GatewayKey); err != nil {
		return CertFiles{}, err
	}
	if err := leaf("rampart-lb", x509.ExtKeyUsageServerAuth, o.LBHosts, files.LB, files.LBKey); err != nil {
		return CertFiles{}, err
	}
	return files, nil
}

func sign(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, priv *ecdsa.PrivateKey) ([]byte, *x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return der, cert, err
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: typ, Bytes: der}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
