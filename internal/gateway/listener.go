package gateway

import (
	"crypto/tls"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/lb"
	"github.com/rampart-edge/rampart/internal/server"
)

// listenerSettings are what the gateway asks of the server its listener runs on.
type listenerSettings struct {
	limits server.Limits
	tls    *tls.Config
}

// newListenerSettings reads the gateway's listener keys. The certificate is loaded here, so a
// missing or mismatched file fails the start (or the reload) with the gateway's name.
func newListenerSettings(cfg config.Gateway) (listenerSettings, error) {
	s := listenerSettings{limits: server.Limits{
		ReadHeaderTimeout: cfg.ReadHeaderTimeout.Duration,
		ReadTimeout:       cfg.ReadTimeout.Duration,
		WriteTimeout:      cfg.WriteTimeout.Duration,
		IdleTimeout:       cfg.IdleTimeout.Duration,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
	}}
	if t := cfg.TLS; t != nil {
		// The same tls as a load balancer listener's: certificates chosen by SNI, min_version,
		// the client-certificate policy, and HTTP/2 first by ALPN (browsers multiplex API calls
		// over one connection; net/http serves h2 on a TLS listener whose config offers it).
		tc, err := lb.ListenerTLSConfig(t)
		if err != nil {
			return s, err // "tls: …" already
		}
		s.tls = tc
	}
	return s, nil
}

// ServerLimits are the gateway's listener timeouts and header size limit (server.LimitedHandler).
func (g *Gateway) ServerLimits() server.Limits { return g.listener.limits }

// ServerTLS is the gateway's TLS config with HTTP/2, or nil for plain HTTP.
func (g *Gateway) ServerTLS() *tls.Config { return g.listener.tls }
