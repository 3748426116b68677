package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// lbTargets reads GET /targets of the admin listener: address → state of load balancer alb's
// group g.
func lbTargets(t *testing.T, admin string) map[string]string {
	t.Helper()
	r := do(t, "GET", "http://"+admin+"/targets", "")
	var body struct {
		LoadBalancers []struct {
			Name   string `json:"name"`
			Groups []struct {
				Name    string `json:"name"`
				Targets []struct {
					Address string `json:"address"`
					State   string `json:"state"`
				} `json:"targets"`
			} `json:"target_groups"`
		} `json:"load_balancers"`
	}
	if err := json.Unmarshal([]byte(r.body), &body); err != nil {
		t.Fatalf("GET /targets: %d %q: %v", r.status, r.body, err)
	}
	out := map[string]string{}
	for _, lb := range body.LoadBalancers {
		for _, g := range lb.Groups {
			if lb.Name == "alb" && g.Name == "g" {
				for _, tg := range g.Targets {
					out[tg.Address] = tg.State
				}
			}
		}
	}
	return out
}

// TestLBDrainThroughAdminAPI: a target registered through the admin API is health checked
// before it gets traffic; a deregistered one gets no new request, its slow in-flight request
// still finishes 200, and it is gone after deregistration_delay.
func TestLBDrainThroughAdminAPI(t *testing.T) {
	release := make(chan struct{})
	var slowStarted, slowHealth atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			slowHealth.Add(1)
			return
		}
		slowStarted.Add(1)
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "slow")
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	var fastHealth atomic.Int64
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			fastHealth.Add(1)
			return
		}
		io.WriteString(w, "fast")
	}))
	t.Cleanup(fast.Close)
	slowAddr, fastAddr := slow.Listener.Addr().String(), fast.Listener.Addr().String()

	dir := t.TempDir()
	listen, admin := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`version: 1
admin: {listen: %[2]s}
load_balancers:
  - name: alb
    listeners:
      - listen: %[1]s
        default_action: {forward: {target_group: g}}
    target_groups:
      - name: g
        targets: ["%[3]s"]
        deregistration_delay: 3s
        health_check: {path: /healthz, interval: 200ms, timeout: 100ms, healthy_threshold: 2, unhealthy_threshold: 2}
`, listen, admin, slowAddr)
	if err := os.WriteFile(filepath.Join(dir, "drain.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, dir, "run", "-c", "drain.yaml")
	waitHTTP(t, p, "http://"+listen+"/")

	inflight := make(chan response, 1)
	go func() {
		r, err := tryDo("GET", "http://"+listen+"/slow", "")
		if err != nil {
			r.body = err.Error()
		}
		inflight <- r
	}()
	eventually(t, 10*time.Second, func() error {
		if slowStarted.Load() < 2 { // waitHTTP's request, then /slow
			return fmt.Errorf("the slow request has not reached the target")
		}
		return nil
	})

	if r := do(t, "POST", "http://"+admin+"/targets/alb/g", fmt.Sprintf(`{"address": %q}`, fastAddr)); r.status != 201 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	eventually(t, 10*time.Second, func() error {
		if st := lbTargets(t, admin)[fastAddr]; st != "healthy" {
			return fmt.Errorf("registered target is %q", st)
		}
		return nil
	})
	if fastHealth.Load() < 2 {
		t.Errorf("the registered target got %d health checks before traffic, want at least healthy_threshold", fastHealth.Load())
	}

	deregistered := time.Now()
	if r := do(t, "DELETE", "http://"+admin+"/targets/alb/g/"+slowAddr, ""); r.status != 202 {
		t.Fatalf("deregister: %d %s", r.status, r.body)
	}
	if st := lbTargets(t, admin)[slowAddr]; st != "draining" {
		t.Errorf("deregistered target with a request in flight is %q, want draining", st)
	}
	before := slowStarted.Load()
	for range 10 {
		if r := do(t, "GET", "http://"+listen+"/x", ""); r.status != 200 || r.body != "fast" {
			t.Fatalf("new request while draining: %d %q, want the other target", r.status, r.body)
		}
	}
	if slowStarted.Load() != before {
		t.Error("a new request reached the draining target")
	}
	eventually(t, 10*time.Second, func() error {
		if _, ok := lbTargets(t, admin)[slowAddr]; ok {
			return fmt.Errorf("the draining target is still listed")
		}
		return nil
	})
	if d := time.Since(deregistered); d < 2500*time.Millisecond {
		t.Errorf("the target was removed after %s, before deregistration_delay (3s) with a request in flight", d)
	}
	close(release)
	select {
	case r := <-inflight:
		if r.status != 200 || r.body != "slow" {
			t.Errorf("the in-flight request on the drained target = %d %q, want 200", r.status, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the in-flight request did not finish")
	}
	if strings.Contains(p.output(), "panic") {
		t.Errorf("the process panicked:\n%s", p.output())
	}
}
