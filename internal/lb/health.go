package lb

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
)

// statusMatcher is a parsed health check matcher such as "200-399" or "200,302".
type statusMatcher []statusRange

type statusRange struct{ lo, hi int }

func parseStatusMatcher(s string) (statusMatcher, error) {
	var m statusMatcher
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		loS, hiS, isRange := strings.Cut(part, "-")
		lo, err := parseStatus(loS)
		if err != nil {
			return nil, fmt.Errorf("matcher %q: %w", s, err)
		}
		hi := lo
		if isRange {
			if hi, err = parseStatus(hiS); err != nil {
				return nil, fmt.Errorf("matcher %q: %w", s, err)
			}
			if hi < lo {
				return nil, fmt.Errorf("matcher %q: range %s is empty", s, part)
			}
		}
		m = append(m, statusRange{lo, hi})
	}
	return m, nil
}

func parseStatus(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 100 || n > 599 {
		return 0, fmt.Errorf("%q is not an HTTP status code (100-599)", s)
	}
	return n, nil
}

func (m statusMatcher) match(code int) bool {
	for _, r := range m {
		if r.lo <= code && code <= r.hi {
			return true
		}
	}
	return false
}

// healthCheck is a compiled config.HealthCheck.
type healthCheck struct {
	path               string
	interval, timeout  time.Duration
	healthyThreshold   int
	unhealthyThreshold int
	matcher            statusMatcher
	port               string // empty: the target's own port
}

func newHealthCheck(hc config.HealthCheck) (healthCheck, error) {
	switch {
	case !strings.HasPrefix(hc.Path, "/"):
		return healthCheck{}, fmt.Errorf("health check path %q: want an absolute path such as /healthz", hc.Path)
	case hc.Interval.Duration <= 0:
		return healthCheck{}, fmt.Errorf("health check interval %v: want a positive duration", hc.Interval.Duration)
	case hc.Timeout.Duration <= 0:
		return healthCheck{}, fmt.Errorf("health check timeout %v: want a positive duration", hc.Timeout.Duration)
	case hc.HealthyThreshold < 1 || hc.UnhealthyThreshold < 1:
		return healthCheck{}, fmt.Errorf("health check thresholds %d/%d: want at least 1", hc.HealthyThreshold, hc.UnhealthyThreshold)
	}
	m, err := parseStatusMatcher(hc.Matcher)
	if err != nil {
		return healthCheck{}, fmt.Errorf("health check %w", err)
	}
	var port string
	if hc.Port != 0 {
		if hc.Port < 1 || hc.Port > 65535 {
			return healthCheck{}, fmt.Errorf("health check port %d: want 1-65535", hc.Port)
		}
		port = strconv.Itoa(hc.Port)
	}
	return healthCheck{
		port:               port,
		path:               hc.Path,
		interval:           hc.Interval.Duration,
		timeout:            hc.Timeout.Duration,
		healthyThreshold:   hc.HealthyThreshold,
		unhealthyThreshold: hc.UnhealthyThreshold,
		matcher:            m,
	}, nil
}

// probe makes one health check request to addr through rt, over scheme (http or https) and returns nil when the status
// matches. It uses the RoundTripper directly so that a redirect is judged by its own status.
func (hc healthCheck) probe(ctx context.Context, rt http.RoundTripper, scheme, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, hc.timeout)
	defer cancel()
	if hc.port != "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			addr = net.JoinHostPort(host, hc.port)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+hc.path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "rampart-health-check")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return err
	}
	// Drain a little so the connection can be reused; health bodies are small.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if !hc.matcher.match(resp.StatusCode) {
		return fmt.Errorf("status %d does not match", resp.StatusCode)
	}
	return nil
}

// checkLoop probes t every interval, the first time at once, until ctx is done. It is the only
// writer of t's consecutive success and failure counts.
func (g *targetGroup) checkLoop(ctx context.Context, rt http.RoundTripper, scheme string, t *target) {
	ticker := time.NewTicker(g.hc.interval)
	defer ticker.Stop()
	var successes, failures int
	for {
		err := g.hc.probe(ctx, rt, scheme, t.addr)
		if ctx.Err() != nil {
			return // a probe cut short by shutdown says nothing about the target
		}
		if err == nil {
			successes, failures = successes+1, 0
			if !t.healthy.Load() && successes >= g.hc.healthyThreshold {
				g.setHealth(t, true, nil)
			}
		} else {
			successes, failures = 0, failures+1
			if t.healthy.Load() && failures >= g.hc.unhealthyThreshold {
				g.setHealth(t, false, err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
