package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"
)

// brokenListener fails every Accept with a permanent error, as a listener wrapper whose own
// context ended would.
type brokenListener struct{ net.Listener }

func (brokenListener) Accept() (net.Conn, error) { return nil, errors.New("wrapper stopped") }

// TestSwitchServerStoppedOnItsOwn: when a generation's server stops by itself (its listener
// wrapper failed), the accept loop does not block forever handing it a connection: the connection
// is closed, the loop goes on, and the switch still closes.
func TestSwitchServerStoppedOnItsOwn(t *testing.T) {
	sw, err := Open("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	sw.Install(Generation{Name: "broken", Handler: http.NotFoundHandler(), Wrap: func(ln net.Listener) net.Listener { return brokenListener{ln} }})
	runDone := make(chan error, 1)
	go func() { runDone <- sw.Run() }()
	for i := range 2 { // the second one finds the loop still accepting
		c, err := net.DialTimeout("tcp", sw.Addr().String(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			t.Fatalf("connection %d: %v, want it closed at once", i, err)
		}
		c.Close()
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-runDone:
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return after Close: the accept loop is stuck")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
