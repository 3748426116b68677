package server

import (
	"net/http"
	"time"
)

// Limits are per-listener bounds on what a client may hold: how long it may take to send its
// headers and its whole request, how long a response write may take, how long an idle
// keep-alive connection stays open, and how large the headers may be. A zero field keeps the
// server's default (serve.go), so that a slow client is never held forever.
type Limits struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
}

// Apply sets the non-zero limits on srv.
func (l Limits) Apply(srv *http.Server) {
	if l.ReadHeaderTimeout > 0 {
		srv.ReadHeaderTimeout = l.ReadHeaderTimeout
	}
	if l.ReadTimeout > 0 {
		srv.ReadTimeout = l.ReadTimeout
	}
	if l.WriteTimeout > 0 {
		srv.WriteTimeout = l.WriteTimeout
	}
	if l.IdleTimeout > 0 {
		srv.IdleTimeout = l.IdleTimeout
	}
	if l.MaxHeaderBytes > 0 {
		srv.MaxHeaderBytes = l.MaxHeaderBytes
	}
}

// LimitedHandler is a handler that asks for limits of its own on its listener (the gateway's
// read/write/idle timeouts and max_header_bytes); the topology passes them to Generation.Limits.
type LimitedHandler interface {
	ServerLimits() Limits
}
