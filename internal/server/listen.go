// Package server owns sockets: listeners (with the private tier's source-address filter) and the
// lifecycle of the HTTP servers on them, including graceful shutdown.
package server

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
)

// Listen opens a TCP listener on addr. When allow is non-empty it is a security group: a connection
// whose source address is outside every prefix is reset as soon as it is accepted, before any byte
// of HTTP is read, so a private-tier service never parses a request from outside its tier.
func Listen(addr string, allow []netip.Prefix, logger *slog.Logger) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return Filter(ln, allow, logger), nil
}

// Filter applies the security group allow to ln (see Listen); with no prefix it returns ln.
func Filter(ln net.Listener, allow []netip.Prefix, logger *slog.Logger) net.Listener {
	if len(allow) == 0 {
		return ln
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &filteredListener{Listener: ln, allow: allow, logger: logger}
}

// ParseAllow parses allow_from entries: CIDRs, or bare addresses meaning a single host.
func ParseAllow(entries []string) ([]netip.Prefix, error) {
	prefixes := make([]netip.Prefix, 0, len(entries))
	for _, e := range entries {
		if p, err := netip.ParsePrefix(e); err == nil {
			prefixes = append(prefixes, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(e)
		if err != nil {
			return nil, fmt.Errorf("allow_from %q: write a CIDR such as 10.0.0.0/24 or an address", e)
		}
		prefixes = append(prefixes, netip.PrefixFrom(a, a.BitLen()))
	}
	return prefixes, nil
}

type filteredListener struct {
	net.Listener
	allow  []netip.Prefix
	logger *slog.Logger
}

// Accept returns the next connection from an allowed source; others are reset and skipped.
func (l *filteredListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.allowed(c.RemoteAddr()) {
			return c, nil
		}
		l.logger.Warn("connection refused by allow_from", "listen", l.Addr().String(), "remote", c.RemoteAddr().String())
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST rather than FIN: the peer sees a refusal, not an empty reply
		}
		_ = c.Close()
	}
}

func (l *filteredListener) allowed(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range l.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
