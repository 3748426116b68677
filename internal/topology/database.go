package topology

import (
	"net"
	"net/netip"
)

// appSource is the host of an app's listen address when it names one specific address (not
// 0.0.0.0, ::, or a host name), else the zero Addr (the kernel chooses). The app's connections to a
// networked database leave from it, so that pg_hba.conf can admit the app tier alone even when
// every tier shares one host (docs/deploy.md).
func appSource(listen string) netip.Addr {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}
