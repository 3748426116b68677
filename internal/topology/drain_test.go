package topology

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/observe"
)

// TestStopDrains: on a stop with a drain delay, /readyz answers 503 at once while every listener
// keeps serving, each response with Connection: close; the listeners close only after the delay.
func TestStopDrains(t *testing.T) {
	const drainDelay = 700 * time.Millisecond
	dir := t.TempDir()
	path := filepath.Join(dir, "rampart.yaml")
	gw, lbAddr, app, adminAddr := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	fileConfig(t, dir, path, gw, lbAddr, app, adminAddr, "http://o.example")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	topo, err := Build(ctx, cfg, Selection{Kinds: map[Kind]bool{KindGateway: true, KindLB: true, KindApp: true, KindAdmin: true}},
		Options{Logger: slog.New(slog.DiscardHandler), ConfigPath: path, Redactor: &observe.Redactor{}, DrainDelay: drainDelay})
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- topo.Serve(ctx, 2*time.Second) }()

	client := &http.Client{Timeout: 5 * time.Second}
	get := func(url string) (int, bool, error) {
		resp, err := client.Get(url)
		if err != nil {
			return 0, false, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Close, nil
	}
	waitFor(t, "ready", func() bool { code, _, _ := get("http://" + adminAddr + "/readyz"); return code == 200 })
	if code, closes, err := get("http://" + app + "/healthz"); err != nil || code != 200 || closes {
		t.Fatalf("before the stop: %d, Connection: close %v, %v", code, closes, err)
	}

	stopped := time.Now()
	stop()
	waitFor(t, "readyz 503", func() bool { code, _, _ := get("http://" + adminAddr + "/readyz"); return code == 503 })
	for _, url := range []string{"http://" + app + "/healthz", "http://" + adminAddr + "/healthz"} {
		code, closes, err := get(url)
		if err != nil || code != 200 || !closes {
			t.Errorf("%s while draining: %d, Connection: close %v, %v", url, code, closes, err)
		}
	}
	if el := time.Since(stopped); el >= drainDelay {
		t.Fatalf("the checks took %v, longer than the drain delay: rerun on a less loaded machine", el)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if el := time.Since(stopped); el < drainDelay {
		t.Errorf("Serve returned %v after the stop, before the drain delay of %v", el, drainDelay)
	}
	if c, err := net.DialTimeout("tcp", app, 3*time.Second); err == nil {
		c.Close()
		t.Error("the app listener still accepts after Serve returned")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Logf("dial after the stop: %v", err)
	}
}
