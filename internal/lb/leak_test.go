package lb_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/gateway"
	"github.com/rampart-edge/rampart/internal/lb"
	"github.com/rampart-edge/rampart/internal/reliability"
	"go.uber.org/goleak"
)

// TestHangingTargetNoGoroutineLeak runs a gateway and a load balancer in process in front of a
// target that accepts connections and never answers. Requests time out (504, at the load
// balancer's request_timeout), clients that give up early are let go, and once everything is
// shut down not one goroutine of the request path is left behind.
func TestHangingTargetNoGoroutineLeak(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			held.Add(1)
			go func() {
				defer held.Done()
				defer c.Close()
				_, _ = io.Copy(io.Discard, c) // never answers; returns when the peer closes
			}()
		}
	}()

	lbCfg, err := config.Parse("leak.yaml", fmt.Appendf(nil, `version: 1
load_balancers:
  - name: alb
    listeners:
      - listen: 127.0.0.1:1
        default_action: {forward: {target_group: hang}}
    target_groups:
      - name: hang
        targets: [%q]
        request_timeout: 300ms
        health_check: {path: /healthz, interval: 200ms, timeout: 100ms, healthy_threshold: 2, unhealthy_threshold: 2}
`, hang.Addr().String()), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	balancer, err := lb.New(lbCfg.LoadBalancers[0], nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { balancer.Run(ctx); close(ran) }()
	lbSrv := httptest.NewServer(balancer.Handler(0))

	gwCfg, err := config.Parse("leak-gw.yaml", fmt.Appendf(nil, `version: 1
gateways:
  - name: gw
    listen: 127.0.0.1:1
    integration_timeout: 2s
    routes:
      - {path: /hang, methods: [GET], integration: {url: %q}}
`, lbSrv.URL), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gwCfg.Gateways[0], nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	gwSrv := httptest.NewServer(gw)

	client := &http.Client{Transport: &http.Transport{}}
	const n = 6
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx := context.Background()
			if i%3 == 0 { // a client that gives up before the timeout
				var c context.CancelFunc
				rctx, c = context.WithTimeout(rctx, 100*time.Millisecond)
				defer c()
			}
			req, _ := http.NewRequestWithContext(rctx, "GET", gwSrv.URL+"/hang", nil)
			resp, err := client.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	got := map[int]int{}
	for s := range statuses {
		got[s]++
	}
	if got[504] != n-n/3 || got[0] != n/3 {
		t.Errorf("statuses %v: want %d × 504 and %d clients gone", got, n-n/3, n/3)
	}

	client.CloseIdleConnections()
	gwSrv.Close()
	gw.Close()
	lbSrv.Close()
	cancel()
	<-ran
	balancer.Close()
	hang.Close()
	held.Wait()
	reliability.Record(t, reliability.Scenario{Area: "faults under load", Name: "hanging target, gateway and load balancer in process (goleak)",
		Expected: "504 at the target timeout; no goroutine left after shutdown",
		Measured: fmt.Sprintf("statuses %v (0: client gave up); goleak.VerifyNone after shutdown", got), Sent: n, Failed: n - got[504] - got[0]})
}
