package server

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// Shutdown of a listener in three steps, so that no connection the kernel accepted is lost
// (net/http's Shutdown closes the socket at once, which resets the connections still queued in
// the kernel, and drops a request it reads on a connection it had just accepted):
//
//  1. Drain: every response carries Connection: close, so keep-alive clients move off while the
//     socket still accepts (the caller waits its drain delay meanwhile).
//  2. Retire (stopIntake): new connection attempts are dropped by the kernel (refuseHandshakes,
//     where it takes socket filters), the connections already queued are accepted in one last
//     pass (finalAccept) and served, and the socket stops listening right after that pass. A
//     reload that removes a listen address takes this step and the next, without a drain delay.
//  3. Serving.Shutdown: once every connection has had its request read and answered (or ctx
//     ends), net/http's Shutdown closes what is left idle.
const (
	// acceptSettle is how long the final Accept pass waits for more connections once new
	// attempts are refused: handshakes the kernel had already answered complete within a
	// round trip.
	acceptSettle = 200 * time.Millisecond
	// newConnPatience is how long a connection may stay without a request and still hold the
	// shutdown: its first request is normally a round trip (and a TLS handshake) behind its
	// connect; one that sends nothing for longer is idle (a browser's preconnect).
	newConnPatience = 2 * time.Second
	drainPoll       = 5 * time.Millisecond
)

// Drain marks the current generation draining: every response carries Connection: close from
// now on, while the socket keeps accepting. Shutdown then stops accepting.
func (s *Switch) Drain() {
	if v := s.Current(); v != nil {
		v.Drain()
	}
}

// Retire takes the switch out of service for good without cutting anything it already has: the
// current generation drains (Drain: each of its responses closes its connection), new connection
// attempts are refused, the connections the kernel has queued are accepted and handed to that
// generation, and the socket is closed before Retire returns, so that the address can be listened
// on again at once (a reload that removes an address, then one that adds it back). It returns
// that generation, still serving its connections and in-flight requests: the caller shuts it down
// (Serving.Shutdown) once it may. When ctx ends before the accept pass is over, the socket closes
// at once.
func (s *Switch) Retire(ctx context.Context) *Serving {
	s.Drain()
	s.stopIntake(ctx)
	// stopIntake closes the socket itself, except when Run had already stopped on an accept error.
	_ = s.Close()
	return s.Current()
}

// stopIntake stops accepting without resetting a connection the kernel has queued: new attempts
// are refused first, what is queued is accepted and handed to the current generation, then the
// socket closes. It returns once Run has returned, or ctx is done (the socket is closed then).
func (s *Switch) stopIntake(ctx context.Context) {
	s.mu.Lock()
	closing, running := s.closing, s.running
	s.mu.Unlock()
	tl, ok := s.ln.(*net.TCPListener)
	if closing || !running || !ok {
		_ = s.Close()
		return
	}
	// With new attempts refused, Run keeps accepting for acceptSettle so that the handshakes
	// under way complete; without (a kernel without socket filters), it goes to its final pass
	// at once. Either way it takes what is queued (finalAccept), then closes.
	settle := acceptSettle
	if err := refuseHandshakes(tl); err != nil {
		s.logger.Debug("cannot refuse new connections while draining the accept queue", "listen", s.Addr().String(), "error", err)
		settle = 0
	}
	s.stopping.Store(true)
	_ = tl.SetDeadline(time.Now().Add(settle))
	select {
	case <-s.acceptDone:
	case <-ctx.Done():
		_ = s.Close()
		<-s.acceptDone
	}
}

// connTrack is what Serving knows of one connection, from http.Server.ConnState.
type connTrack struct {
	state http.ConnState
	since time.Time // when it became new
	h2    bool      // HTTP/2: Connection: close means nothing there; Shutdown sends GOAWAY
}

func (v *Serving) trackConn(c net.Conn, st http.ConnState) {
	v.connMu.Lock()
	defer v.connMu.Unlock()
	switch st {
	case http.StateClosed, http.StateHijacked:
		delete(v.conns, c)
		return
	}
	ct := v.conns[c]
	if st == http.StateNew {
		ct.since = time.Now()
	} else if tc, ok := c.(*tls.Conn); ok && !ct.h2 {
		// Past StateNew the handshake is done, so ConnectionState does not wait for it.
		ct.h2 = tc.ConnectionState().NegotiatedProtocol == "h2"
	}
	ct.state = st
	v.conns[c] = ct
}

// busy reports whether a connection is within a request, or so new that its first request may
// still be on the way: net/http's Shutdown would drop such a request unanswered once read.
func (v *Serving) busy(now time.Time) bool {
	v.connMu.Lock()
	defer v.connMu.Unlock()
	for _, ct := range v.conns {
		if ct.h2 {
			continue
		}
		if ct.state == http.StateActive || ct.state == http.StateNew && now.Sub(ct.since) < newConnPatience {
			return true
		}
	}
	return false
}

// settle waits until no connection is busy, or ctx is done. Every response carries
// Connection: close by then, so each busy connection closes after its answer.
func (v *Serving) settle(ctx context.Context) {
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	for v.busy(time.Now()) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// finish is Run's last step after stopIntake: it hands every connection still queued to the
// current generation and closes the socket.
func (s *Switch) finish() {
	if tl, ok := s.ln.(*net.TCPListener); ok {
		conns, err := finalAccept(tl)
		if err != nil {
			s.logger.Warn("draining the accept queue", "listen", s.Addr().String(), "error", err)
		}
		for _, c := range conns {
			s.dispatch(c)
		}
	}
	_ = s.Close()
}
