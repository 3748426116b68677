package config

import (
	"net"
	"strings"
)

// MinAdminTokenLen is the shortest admin.token accepted: a token is a credential for every admin
// route (reload, target registration), so a guessable one is refused at load time.
const MinAdminTokenLen = 16

// checkAdmin checks admin.token. An admin listener bound to anything but a loopback address can be
// reached from the network, so it must have a token; on loopback the token is optional (every
// local user can reach it then, as with any local port).
func (c *checker) checkAdmin() {
	a := c.cfg.Admin
	if a.Token != "" {
		if len(a.Token) < MinAdminTokenLen {
			c.errf("admin.token", "generate one with: openssl rand -hex 32", "too short (%d characters, want at least %d)", len(a.Token), MinAdminTokenLen)
		}
		if strings.ContainsAny(a.Token, " \t\r\n") {
			c.errf("admin.token", "a bearer token is one word", "contains whitespace")
		}
		return
	}
	host, _, err := net.SplitHostPort(a.Listen)
	if err != nil {
		return // admin.listen already reported
	}
	if !LoopbackHost(host) {
		c.errf("admin.listen", "set admin.token (such as ${env:RAMPART_ADMIN_TOKEN}), or listen on 127.0.0.1",
			"%q is reachable from the network, so the admin API needs admin.token", a.Listen)
	}
}

// LoopbackHost reports whether a listen host is a loopback address or localhost. An empty host
// means every interface, which is not loopback.
func LoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
