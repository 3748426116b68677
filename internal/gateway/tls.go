package gateway

import (
	"net/http"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/proxy"
	"github.com/rampart-edge/rampart/internal/server"
)

// routeTransport returns the transport of a route: the gateway's shared one, or for an integration
// with tls, a transport of its own that verifies the backend with the configured CA and presents
// the gateway's client certificate (mTLS to the load balancer).
func (g *Gateway) routeTransport(t *config.IntegrationTLS) (http.RoundTripper, error) {
	if t == nil {
		return g.transport, nil
	}
	cfg, err := server.ClientTLSConfig(t.CAFile, t.CertFile, t.KeyFile)
	if err != nil {
		return nil, err
	}
	tr, err := proxy.NewTransport("")
	if err != nil {
		return nil, err
	}
	tr.TLSClientConfig = cfg
	g.tlsRoutes = append(g.tlsRoutes, tr)
	return tr, nil
}
