package topology

import (
	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/lb"
)

// listenerTLS makes the endpoint just added for listener li serve HTTPS when li has tls, and notes
// its client-certificate policy for the banner.
func (t *generation) listenerTLS(li config.Listener) error {
	if li.TLS == nil {
		return nil
	}
	// Certificates chosen by SNI, min_version and ALPN h2 (lb/tls.go).
	cfg, err := lb.ListenerTLSConfig(li.TLS)
	if err != nil {
		return err
	}
	e := &t.endpoints[len(t.endpoints)-1]
	e.tls = cfg
	note := ", TLS"
	switch {
	case li.TLS.RequireClientCert:
		note = ", mTLS (client certificate required)"
	case li.TLS.ClientCAFile != "":
		note = ", TLS (client certificate verified if sent)"
	}
	e.Note += note
	t.Endpoints[len(t.Endpoints)-1].Note += note
	return nil
}
