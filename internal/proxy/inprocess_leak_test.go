package proxy

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestInProcessEndsEveryGoroutine runs the ways an in-process exchange can end early and checks
// that no goroutine it started (the handler's, the body probe, the cancellation watcher, the
// gunzip reader) outlives it, as none would once a connection closes.
func TestInProcessEndsEveryGoroutine(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	endless := func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 4096)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
	cases := []struct {
		name    string
		handler http.HandlerFunc
		// run drives the caller's side; it returns once the caller is done with the exchange.
		run func(t *testing.T, ip *InProcess)
	}{
		{
			name: "client cancels mid-body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.ReadAll(r.Body) // blocks: the rest of the body never comes
				w.WriteHeader(http.StatusOK)
			},
			run: func(t *testing.T, ip *InProcess) {
				pr, pw := io.Pipe()
				ctx, cancel := context.WithCancel(context.Background())
				req := mustRequest(t, "POST", "http://127.0.0.1:1/upload", pr).WithContext(ctx)
				req.ContentLength = 1 << 20
				go func() { _, _ = pw.Write(make([]byte, 1000)); cancel() }()
				if _, err := ip.RoundTrip(req); !errors.Is(err, context.Canceled) {
					t.Errorf("RoundTrip error = %v, want context.Canceled", err)
				}
			},
		},
		{
			name: "handler never reads the body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "no thanks")
			},
			run: func(t *testing.T, ip *InProcess) {
				pr, pw := io.Pipe()
				req := mustRequest(t, "POST", "http://127.0.0.1:1/upload", pr)
				wrote := make(chan struct{})
				go func() { // the caller's writer, which ends once the body is closed
					defer close(wrote)
					for {
						if _, err := pw.Write(make([]byte, 512)); err != nil {
							return
						}
					}
				}()
				res, err := ip.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				<-wrote
			},
		},
		{
			name: "handler panics after flush",
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "partial")
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler)
			},
			run: func(t *testing.T, ip *InProcess) {
				res, err := ip.RoundTrip(mustRequest(t, "GET", "http://127.0.0.1:1/p", nil))
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				if _, err := io.ReadAll(res.Body); err == nil {
					t.Error("body read after a panic succeeded, want an error")
				}
			},
		},
		{
			name:    "caller never closes the response body but its context ends",
			handler: endless,
			run: func(t *testing.T, ip *InProcess) {
				ctx, cancel := context.WithCancel(context.Background())
				res, err := ip.RoundTrip(mustRequest(t, "GET", "http://127.0.0.1:1/endless", nil).WithContext(ctx))
				if err != nil {
					t.Fatal(err)
				}
				_, _ = res.Body.Read(make([]byte, 100))
				cancel()
				if _, err := io.ReadAll(res.Body); !errors.Is(err, context.Canceled) {
					t.Errorf("body read after the context ended: %v, want context.Canceled", err)
				}
			},
		},
		{
			name: "probe timer fires, caller gives up",
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.ReadAll(r.Body)
			},
			run: func(t *testing.T, ip *InProcess) {
				pr, _ := io.Pipe() // a GET body whose first byte never comes
				ctx, cancel := context.WithTimeout(context.Background(), probeTimeout+100*time.Millisecond)
				defer cancel()
				req := mustRequest(t, "GET", "http://127.0.0.1:1/probe", nil).WithContext(ctx)
				req.Body = pr
				if _, err := ip.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("RoundTrip error = %v, want the deadline", err)
				}
			},
		},
		{
			name: "probe timer fires, handler ignores the body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "ok")
			},
			run: func(t *testing.T, ip *InProcess) {
				pr, _ := io.Pipe()
				req := mustRequest(t, "GET", "http://127.0.0.1:1/probe", nil)
				req.Body = pr
				res, err := ip.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
			},
		},
		{
			name: "gzip body closed early",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Encoding", "gzip")
				zw := gzip.NewWriter(w)
				for {
					if _, err := zw.Write([]byte(strings.Repeat("z", 4096))); err != nil {
						return
					}
					if err := zw.Flush(); err != nil {
						return
					}
				}
			},
			run: func(t *testing.T, ip *InProcess) {
				res, err := ip.RoundTrip(mustRequest(t, "GET", "http://127.0.0.1:1/gz", nil))
				if err != nil {
					t.Fatal(err)
				}
				if !res.Uncompressed {
					t.Error("response not decompressed")
				}
				_, _ = res.Body.Read(make([]byte, 10))
				_ = res.Body.Close()
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			ip := &InProcess{Handler: tc.handler, Next: failingTransport{t}, Logger: quiet}
			tc.run(t, ip)
		})
	}
}
