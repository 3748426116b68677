package topology

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestReloadKeepsKnownUnhealthyTargetsDown: a reload builds a new load balancer; a target the
// running one knows to be down must not be handed traffic again until its checks pass.
func TestReloadKeepsKnownUnhealthyTargetsDown(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lb.yaml")
	lbAddr, down := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1") // nothing listens on down
	write := func(interval string) {
		yaml := fmt.Sprintf(`version: 1
load_balancers:
  - name: lb
    listeners:
      - listen: %s
        default_action: {forward: {target_group: app}}
    target_groups:
      - name: app
        targets: ["%s"]
        health_check: {path: /healthz, interval: %s, timeout: 50ms, healthy_threshold: 2, unhealthy_threshold: 2}
`, lbAddr, down, interval)
		if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("100ms")
	topo := serveFile(t, path, Selection{Kinds: map[Kind]bool{KindLB: true}}, &syncBuffer{})
	healthy := func() bool { return topo.current().lbs["lb"].TargetHealth()["app"][down] }
	waitFor(t, "the target marked unhealthy", func() bool { return !healthy() })

	// With a 1 h interval, the new generation's own checks cannot mark it down again in time:
	// only what it inherited can.
	write("1h")
	if err := topo.Reload(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	if healthy() {
		t.Fatal("after the reload, a target known to be down is healthy again")
	}
}
