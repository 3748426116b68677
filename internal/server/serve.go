package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Unit is one HTTP server: a handler on an open listener.
type Unit struct {
	Name     string // for logs: "gateway public-api", "app items-1"
	Listener net.Listener
	Handler  http.Handler
	// Tier orders shutdown: every unit of a lower tier has finished its in-flight requests before
	// a higher tier starts shutting down, so a request the gateway accepted can still cross the
	// load balancer to an app while the process stops.
	Tier int
}

// Limits every server applies; they bound what a slow or hostile client can hold.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10 // over this, net/http answers 431
)

// MaxHeaderBytes is the header limit of every listener that does not set its own (Limits): a
// caller that serves one of them in-process applies it too (proxy.LocalHandlers).
const MaxHeaderBytes = maxHeaderBytes

// Serve runs every unit until ctx is done, then shuts them down gracefully, tier by tier: a tier's
// listeners close and its in-flight requests finish before the next tier begins. All tiers share
// one grace period. It returns the first serve error, if a server
// failed on its own before ctx was done (the others are then shut down too).
func Serve(ctx context.Context, units []Unit, grace time.Duration, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type running struct {
		Unit
		srv *http.Server
	}
	servers := make([]running, len(units))
	errs := make(chan error, len(units))
	var wg sync.WaitGroup
	for i, u := range units {
		srv := newHTTPServer(u.Handler, logger)
		servers[i] = running{u, srv}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(u.Listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("%s: %w", u.Name, err)
				cancel()
			}
		}()
	}

	<-ctx.Done()
	shutdownCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer stop()
	ByTier(servers, func(r running) int { return r.Tier }, func(r running) {
		if err := r.srv.Shutdown(shutdownCtx); err != nil {
			logger.Warn("shutdown did not finish in time; closing", "server", r.Name, "error", err)
			_ = r.srv.Close()
		}
	})
	wg.Wait()
	close(errs)
	return <-errs // nil when the channel is empty
}

// ByTier calls stop for every item, tier by tier from the lowest: the items of one tier
// concurrently, the next tier once every call for this one has returned. Every graceful shutdown
// of several servers goes through it (Serve, and the topology's stop and reloads), so that a
// request an outer tier accepted can still cross the inner ones while they stop.
func ByTier[T any](items []T, tier func(T) int, stop func(T)) {
	tiers := map[int][]T{}
	for _, it := range items {
		tiers[tier(it)] = append(tiers[tier(it)], it)
	}
	for _, k := range slices.Sorted(maps.Keys(tiers)) {
		var wg sync.WaitGroup
		for _, it := range tiers[k] {
			wg.Go(func() { stop(it) })
		}
		wg.Wait()
	}
}

// newHTTPServer is the http.Server every listener uses, with the limits above.
func newHTTPServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// "OPTIONS *" goes to the handler like any request: net/http would otherwise answer it
		// itself, unseen by access logs and by the load balancer's per-request desync verdicts.
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
}
