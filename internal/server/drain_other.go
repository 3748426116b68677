//go:build !linux

package server

import (
	"errors"
	"net"
)

// refuseHandshakes is Linux-only (drain_linux.go). Elsewhere the final Accept pass still takes
// what is queued, but a connection completing between that pass and the close can be reset.
func refuseHandshakes(*net.TCPListener) error { return errors.ErrUnsupported }

// finalAccept is Linux-only (drain_linux.go): elsewhere the socket simply closes.
func finalAccept(*net.TCPListener) ([]net.Conn, error) { return nil, nil }
