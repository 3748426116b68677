//go:build linux

package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// refuseHandshakes makes the kernel drop every new connection attempt to ln (a TCP segment with
// SYN and without ACK) while the handshakes already under way complete and queue for Accept. Once
// it is in place, the accept queue only empties: a final Accept pass takes every connection the
// kernel ever completed, and closing the socket afterwards resets none. A client whose SYN was
// dropped sends it again after its retransmission timeout (1s) and then finds the socket closed
// (refused, which it may retry) or the next process listening. Some kernels (sandboxes without
// BPF) refuse socket filters: finalAccept's window of two system calls then remains.
func refuseHandshakes(ln *net.TCPListener) error {
	rc, err := ln.SyscallConn()
	if err != nil {
		return err
	}
	return attachSYNFilter(rc)
}

func attachSYNFilter(rc syscall.RawConn) error {
	// Classic BPF over the TCP header, where a TCP socket's filter starts; byte 13 holds the flags.
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 13},
		{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: 0x12},        // SYN|ACK
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 0x02, Jf: 1}, // SYN alone: a new attempt
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},                          // drop it
		{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff},                 // everything else passes
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("attach SYN filter: %w", serr)
	}
	return nil
}

// finalAccept takes every connection still queued on ln and stops the socket listening right
// after the queue was found empty, in one pass without a scheduling point between the two: the
// window in which the kernel can complete one more connection, which closing would reset, is that
// of two system calls. (With refuseHandshakes in place there is none.) ln is closed by the caller.
func finalAccept(ln *net.TCPListener) ([]net.Conn, error) {
	rc, err := ln.SyscallConn()
	if err != nil {
		return nil, err
	}
	var fds []int
	var aerr error
	if err := rc.Control(func(fd uintptr) {
		for {
			nfd, _, err := unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			if err == unix.EINTR || err == unix.ECONNABORTED {
				continue
			}
			if err != nil {
				if err != unix.EAGAIN {
					aerr = err
				}
				break
			}
			fds = append(fds, nfd)
		}
		// A listening socket shut down for reading stops listening at once, as a close does.
		_ = unix.Shutdown(int(fd), unix.SHUT_RD)
	}); err != nil {
		return nil, err
	}
	conns := make([]net.Conn, 0, len(fds))
	for _, fd := range fds {
		f := os.NewFile(uintptr(fd), "tcp")
		c, err := net.FileConn(f) // a dup of fd, in Go's poller
		_ = f.Close()
		if err != nil {
			aerr = errors.Join(aerr, err)
			continue
		}
		conns = append(conns, c)
	}
	if aerr != nil {
		aerr = fmt.Errorf("final accept: %w", aerr)
	}
	return conns, aerr
}
