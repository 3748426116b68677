package desync

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The guard's goroutines (its accept loop and the TLS handshakes it runs) end when the server
// closes the listener, a handshake that never completes included.
func TestGuardGoroutinesEnd(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	func() {
		cfg := &tls.Config{Certificates: []tls.Certificate{selfSigned(t, "localhost")}, NextProtos: []string{"h2", "http/1.1"}}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		g := &Guard{IdleTimeout: time.Minute}
		srv := &http.Server{Handler: g.Handler(classHandler())}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = srv.Serve(g.Wrap(tls.NewListener(ln, cfg)))
		}()
		stall, err := net.Dial("tcp", ln.Addr().String()) // a handshake that never completes
		if err != nil {
			t.Fatal(err)
		}
		defer stall.Close()
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = srv.Close()
		<-done
	}()
}

// A listener closed while its first Accept starts the accept loop (a server stopped right after
// it started) must not race: the loop is started before Close waits for it, or not at all.
func TestListenerCloseDuringFirstAccept(t *testing.T) {
	g := &Guard{Mode: Defensive}
	for range 200 {
		raw, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln := g.Wrap(raw)
		done := make(chan error, 1)
		go func() {
			_, err := ln.Accept()
			done <- err
		}()
		_ = ln.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
	}
}
