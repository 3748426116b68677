//go:build !linux

package topology

import "errors"

// attachAcceptAllFilter: socket filters are Linux-only (internal/server/drain_linux.go).
func attachAcceptAllFilter(int) error { return errors.ErrUnsupported }
