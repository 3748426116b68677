package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/proxy"
)

// TestInProcessIntegration runs a gateway whose integration is a listener of this process
// (WithLocalHandlers), as `rampart run` builds it: the route's timeout still answers 504 and the
// handler sees a cancellation (as when a connection closes), a panicking handler is a 502,
// server-sent events stream while the handler runs, a client that goes away ends the handler,
// and nothing outlives the gateway.
func TestInProcessIntegration(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ended := make(chan error, 4)
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		ended <- r.Context().Err()
	})
	started := make(chan struct{}, 1)
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
		ended <- r.Context().Err()
	})
	mux.HandleFunc("/panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
			fmt.Fprint(w, "data: second\n\n")
		case <-r.Context().Done():
			ended <- r.Context().Err()
		}
	})
	const lbAddr = "127.0.0.1:1" // never dialled: the handler is called in-process
	local := &proxy.LocalHandlers{}
	if err := local.Add(lbAddr, mux); err != nil {
		t.Fatal(err)
	}
	integ := config.Integration{URL: "http://" + lbAddr}
	cfg := config.Gateway{
		Name: "api",
		CORS: config.CORS{Mode: "standard"},
		Routes: []config.Route{
			{Path: "/slow", Methods: []string{"GET"}, Integration: config.Integration{URL: integ.URL, Timeout: config.Duration{Duration: 100 * time.Millisecond}}},
			{Path: "/hang", Methods: []string{"GET"}, Integration: integ},
			{Path: "/panic", Methods: []string{"GET"}, Integration: integ},
			{Path: "/events", Methods: []string{"GET"}, Integration: integ},
		},
		IntegrationTimeout: config.Duration{Duration: 5 * time.Second},
	}
	gw, err := New(cfg, nil, slog.New(slog.DiscardHandler), WithLocalHandlers(local))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	defer func() {
		srv.Close()
		gw.Close()
	}()

	t.Run("the route's timeout is a 504 and a cancellation for the handler", func(t *testing.T) {
		wantJSON(t, send(t, "GET", srv.URL+"/slow", ""), http.StatusGatewayTimeout, "Endpoint request timed out")
		select {
		case err := <-ended:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("handler's context ended with %v, want context.Canceled as on a closed connection", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the handler's context never ended")
		}
	})
	t.Run("a handler that panics is a 502", func(t *testing.T) {
		wantJSON(t, send(t, "GET", srv.URL+"/panic", ""), http.StatusBadGateway, "Bad Gateway")
	})
	t.Run("server-sent events stream", func(t *testing.T) {
		res, err := http.Get(srv.URL + "/events")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		br := bufio.NewReader(res.Body)
		line, err := br.ReadString('\n')
		if err != nil || line != "data: first\n" {
			t.Fatalf("first event %q, %v", line, err)
		}
		close(release)
		rest, err := io.ReadAll(br)
		if err != nil || !strings.Contains(string(rest), "data: second") {
			t.Fatalf("rest %q, %v", rest, err)
		}
	})
	t.Run("a client that goes away ends the handler", func(t *testing.T) {
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/hang", nil)
		done := make(chan struct{})
		go func() {
			defer close(done)
			res, err := tr.RoundTrip(req)
			if err == nil {
				res.Body.Close()
			}
		}()
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("the request never reached the handler")
		}
		cancel()
		<-done
		select {
		case err := <-ended:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("handler's context ended with %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the handler's context never ended")
		}
	})
}
