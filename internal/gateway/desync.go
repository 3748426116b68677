package gateway

import "net"

// WrapListener returns ln with the gateway's request-smuggling guard (internal/desync, defensive
// mode) on every connection, so that a request whose framing servers could read differently,
// such as one with both Content-Length and Transfer-Encoding, is answered and its connection
// closed instead of being split into two requests on the way to a backend. It makes the gateway a
// desync.ListenerWrapper, which the topology applies to the gateway's listener.
func (g *Gateway) WrapListener(ln net.Listener) net.Listener { return g.guard.Wrap(ln) }
