//go:build linux

package topology

import "golang.org/x/sys/unix"

// attachAcceptAllFilter attaches a socket filter that passes every packet, to learn whether the
// kernel takes socket filters at all (some sandboxes refuse them).
func attachAcceptAllFilter(fd int) error {
	prog := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff}}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
}
