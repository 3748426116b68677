package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Switch owns one listening socket across config reloads. It accepts connections and hands each
// to the HTTP server of the current generation; Install puts a new generation in place without
// closing the socket, so no connection attempt is refused during a reload, and the generation it
// replaces keeps serving the connections it already has until its owner shuts it down.
type Switch struct {
	ln     net.Listener // the raw TCP socket
	logger *slog.Logger

	mu  sync.Mutex
	cur *Serving

	acceptDone chan struct{}
	closing    bool
	running    bool        // Run was called
	stopping   atomic.Bool // stopIntake: Run drains the accept queue, then closes the socket
}

// Generation is what one config generation serves on a Switch: its handler, and the layers its
// connections pass through first.
type Generation struct {
	Name    string // for logs: "gateway public-api"
	Handler http.Handler
	// Allow, when non-empty, is a security group: connections from outside it are reset before
	// any byte of HTTP is read (see Listen).
	Allow []netip.Prefix
	// TLS, when set, makes the generation serve HTTPS.
	TLS *tls.Config
	// Wrap, when set, wraps the generation's listener (the load balancer's desync guard). It sees
	// the TLS listener when TLS is set.
	Wrap func(net.Listener) net.Listener
	// Limits overrides the server's timeouts and header size limit (limits.go); zero: defaults.
	Limits Limits
}

// Open listens on addr. Nothing is served until Install and Run.
func Open(addr string, logger *slog.Logger) (*Switch, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Switch{ln: ln, logger: logger, acceptDone: make(chan struct{})}, nil
}

// Addr is the bound address.
func (s *Switch) Addr() net.Addr { return s.ln.Addr() }

// Install starts serving g and sends every connection accepted from now on to it. It returns the
// generation that served before (nil the first time), still serving the connections it has: the
// caller shuts it down once it may (Serving.Shutdown).
func (s *Switch) Install(g Generation) *Serving {
	f := &feeder{addr: s.ln.Addr(), conns: make(chan net.Conn), closed: make(chan struct{})}
	ln := Filter(f, g.Allow, s.logger)
	if g.TLS != nil {
		ln = tls.NewListener(ln, g.TLS)
	}
	if g.Wrap != nil {
		ln = g.Wrap(ln)
	}
	v := &Serving{name: g.Name, feed: f, ln: ln, done: make(chan struct{}), conns: map[net.Conn]connTrack{}}
	v.srv = newHTTPServer(v.closeWhenDraining(g.Handler), s.logger)
	v.srv.ConnState = v.trackConn
	g.Limits.Apply(v.srv)
	go func() {
		defer close(v.done)
		if err := v.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			s.logger.Error("server stopped", "server", g.Name, "error", err)
		}
	}()
	s.mu.Lock()
	old := s.cur
	s.cur = v
	s.mu.Unlock()
	return old
}

// Current is the generation that gets new connections.
func (s *Switch) Current() *Serving {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Run accepts connections until Close, handing each to the current generation. It returns nil
// after Close, or the accept error that stopped it.
func (s *Switch) Run() error {
	defer close(s.acceptDone)
	s.mu.Lock()
	s.running = true
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.stopping.Load() {
				// The deadline set by stopIntake: serve what is still queued, then close.
				s.finish()
				return nil
			}
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors and the like: back off as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.logger.Warn("accept failed; retrying", "listen", s.Addr().String(), "error", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("accept on %s: %w", s.Addr(), err)
		}
		delay = 0
		s.dispatch(c)
	}
}

// dispatch hands c to the current generation. A generation shut down between the lookup and the
// hand-over refuses it, and the next current one gets it: a connection is never dropped by a swap.
func (s *Switch) dispatch(c net.Conn) {
	for {
		s.mu.Lock()
		v := s.cur
		s.mu.Unlock()
		if v == nil {
			_ = c.Close()
			return
		}
		select {
		case v.feed.conns <- c:
			return
		case <-v.feed.closed:
			s.mu.Lock()
			same := s.cur == v
			s.mu.Unlock()
			if same { // the switch itself is being shut down
				_ = c.Close()
				return
			}
		}
	}
}

// Close stops accepting: the socket closes, so new connection attempts are refused. Connections
// already accepted are served until their generation is shut down.
func (s *Switch) Close() error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	return s.ln.Close()
}

// Shutdown retires the switch (Retire: no connection already queued is reset), then shuts the
// current generation down gracefully (see Serving.Shutdown). Call Drain first, and wait a while,
// to move keep-alive clients off before.
func (s *Switch) Shutdown(ctx context.Context) error {
	if v := s.Retire(ctx); v != nil {
		return v.Shutdown(ctx)
	}
	return nil
}

// Serving is one generation's HTTP server on a Switch.
type Serving struct {
	name     string
	srv      *http.Server
	feed     *feeder
	ln       net.Listener // what srv serves: the feeder, wrapped
	done     chan struct{}
	draining atomic.Bool

	connMu sync.Mutex
	conns  map[net.Conn]connTrack // drain.go
}

// closeWhenDraining answers every request with Connection: close once Drain was called, so
// that each keep-alive connection of a replaced generation closes cleanly after its next
// response instead of being cut while idle (a client that sends a POST on a connection the
// server closes at that moment gets an error, and does not retry it).
func (v *Serving) closeWhenDraining(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v.draining.Load() {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// Drain starts retiring the generation without cutting anything: each of its connections closes
// after its next response. Shutdown then closes those still idle.
func (v *Serving) Drain() { v.draining.Store(true) }

// Shutdown stops the generation gracefully: it takes no new connection, its idle connections
// close, and it returns when its in-flight requests have finished, or closes them when ctx ends
// first.
//
// It first waits, within ctx, until every connection it was handed has had its request read and
// answered (each with Connection: close): net/http's Shutdown would drop a request it reads on a
// connection accepted just before, without an answer.
func (v *Serving) Shutdown(ctx context.Context) error {
	v.feed.close()
	v.Drain()
	<-v.done // Serve has returned: every connection handed over is tracked
	v.settle(ctx)
	err := v.srv.Shutdown(ctx)
	if err != nil {
		_ = v.srv.Close()
		err = fmt.Errorf("%s: in-flight requests did not finish in time: %w", v.name, err)
	}
	// Serve returned on the feeder's close, so the wrapping listeners (the desync guard's accept
	// goroutine) are closed here.
	_ = v.ln.Close()
	return err
}

// feeder is a net.Listener whose connections come from a Switch.
type feeder struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func (f *feeder) Accept() (net.Conn, error) {
	select {
	case c := <-f.conns:
		return c, nil
	case <-f.closed:
		return nil, net.ErrClosed
	}
}

func (f *feeder) close() { f.once.Do(func() { close(f.closed) }) }

func (f *feeder) Close() error { f.close(); return nil }

func (f *feeder) Addr() net.Addr { return f.addr }
