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

	servers := make([]*http.Server, len(units))
	errs := make(chan error, len(units))
	var wg sync.WaitGroup
	for i, u := range units {
		srv := newHTTPServer(u.Handler, logger)
		servers[i] = srv
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
	tiers := map[int][]int{}
	for i, u := range units {
		tiers[u.Tier] = append(tiers[u.Tier], i)
	}
	for _, tier := range slices.Sorted(maps.Keys(tiers)) {
		var sw sync.WaitGroup
		for _, i := range tiers[tier] {
			sw.Add(1)
			go func() {
				defer sw.Done()
				if err := servers[i].Shutdown(shutdownCtx); err != nil {
					logger.Warn("shutdown did not finish in time; closing", "server", units[i].Name, "error", err)
					_ = servers[i].Close()
				}
			}()
		}
		sw.Wait()
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when the channel is empty
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
