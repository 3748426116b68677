package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Unit is one HTTP server: a handler on an open listener.
type Unit struct {
	Name     string // for logs: "gateway public-api", "app items-1"
	Listener net.Listener
	Handler  http.Handler
}

// Limits every server applies; they bound what a slow or hostile client can hold.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10 // over this, net/http answers 431
)

// Serve runs every unit until ctx is done, then shuts them all down gracefully: listeners close at
// once, in-flight requests get up to grace to finish. It returns the first serve error, if a server
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
		srv := &http.Server{
			Handler:           u.Handler,
			ReadHeaderTimeout: readHeaderTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		}
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
	var sw sync.WaitGroup
	for i, srv := range servers {
		sw.Add(1)
		go func() {
			defer sw.Done()
			if err := srv.Shutdown(shutdownCtx); err != nil {
				logger.Warn("shutdown did not finish in time; closing", "server", units[i].Name, "error", err)
				_ = srv.Close()
			}
		}()
	}
	sw.Wait()
	wg.Wait()
	close(errs)
	return <-errs // nil when the channel is empty
}
