package topology

import "time"

// drain is the first phase of a stop (docs/reliability.md): /readyz already answers 503 (stopping
// is set), every response now carries Connection: close, and the listeners keep accepting for
// the drain delay, so that an upstream load balancer or Kubernetes stops sending new connections
// and keep-alive clients move off before any socket closes. Each switch's Shutdown then refuses
// new attempts, serves what the kernel has queued and lets in-flight requests finish.
func (t *Topology) drain(slots []*slot) {
	for _, s := range slots {
		s.sw.Drain()
	}
	d := t.opts.DrainDelay
	if d <= 0 {
		return
	}
	t.logger.Info("draining: /readyz answers 503 and responses close their connections; listeners stop accepting after the drain delay", "drain_delay", d.String())
	timer := time.NewTimer(d)
	defer timer.Stop()
	<-timer.C
}
