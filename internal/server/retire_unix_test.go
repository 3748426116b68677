//go:build unix

package server

import "syscall"

// shutdownRead shuts a socket down for reading: a listening socket then fails every Accept
// without being closed.
func shutdownRead(fd uintptr) error { return syscall.Shutdown(int(fd), syscall.SHUT_RD) }
