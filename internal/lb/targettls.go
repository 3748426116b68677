package lb

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/server"
)

// HTTPS to targets (protocol: HTTPS): proxied requests and health checks alike go over TLS,
// verified against ca_file (the system roots when it is empty) and against server_name, or else
// the target's DNS name when it came from one (dns.go), or else its IP address.

// targetTLS sets g up to speak HTTPS to its targets when cfg asks for it: the scheme, and a
// DialTLSContext on tr (the group's transport, which keeps the egress address) that chooses the
// name to verify per target.
func (g *targetGroup) targetTLS(cfg config.TargetGroup, tr *http.Transport) error {
	switch cfg.Protocol {
	case "", config.ProtocolHTTP:
		g.scheme = "http"
		return nil
	case config.ProtocolHTTPS:
	default:
		return fmt.Errorf("protocol %q: want HTTP or HTTPS", cfg.Protocol)
	}
	base, err := server.ClientTLSConfig(cfg.CAFile, "", "")
	if err != nil {
		return fmt.Errorf("ca_file: %w", err)
	}
	base.ServerName = cfg.ServerName
	g.scheme = "https"
	dial := tr.DialContext
	tr.TLSClientConfig = base
	tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		raw, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c := base.Clone()
		if c.ServerName == "" {
			c.ServerName = g.serverNameFor(addr)
		}
		tc := tls.Client(raw, c)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			// A failed handshake is a failed connection (nothing was sent): retried on another
			// target and logged as TargetConnectionError, as a refused connect is.
			return nil, &net.OpError{Op: "dial", Net: network, Addr: raw.RemoteAddr(), Err: fmt.Errorf("tls handshake (server name %q): %w", c.ServerName, err)}
		}
		return tc, nil
	}
	return nil
}

// serverNameFor is the name a target's certificate must carry when server_name is not set: the
// DNS name it was resolved from, or its host (an IP address, checked against the IP SANs). addr
// is a health check's address when health_check.port is set: the target is then found by its
// IP address alone.
func (g *targetGroup) serverNameFor(addr string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	host, _, _ := net.SplitHostPort(addr)
	if t := g.find(addr); t != nil {
		return cmp.Or(t.dnsName, host)
	}
	if g.hc.port != "" {
		for _, t := range g.targets {
			if h, _, _ := net.SplitHostPort(t.addr); h == host && t.dnsName != "" {
				return t.dnsName
			}
		}
	}
	return host
}
